package config

import "time"

// DockerInput tails Docker's json-file logs.
type DockerInput struct {
	// Root is Docker's containers directory. Default /var/lib/docker/containers.
	Root string `yaml:"root"`
	// Tag is a template for each event's tag. Placeholders: {name} (container
	// name without the leading slash), {id} (full id), {short_id} (12 chars),
	// {stream}, {label:KEY}, {field:KEY} (a field of the parsed JSON payload).
	// A placeholder without a value renders as "unknown". Default "docker.{name}".
	Tag string `yaml:"tag"`
	// ParseJSON parses a log payload that is a JSON object into record fields.
	ParseJSON bool `yaml:"parse_json"`
	// Parser parses the log payload into record fields (its keys below);
	// parse_json: true is parser {type: json}.
	Parser *Parser `yaml:"parser"`
	// Multiline joins the lines of one message (a stack trace) per stream.
	Multiline *Multiline `yaml:"multiline"`
	// MaxLineBytes truncates longer (joined) lines; the rest is skipped and
	// counted. Default 1 MiB.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// IncludeLabels adds the container's labels as a "labels" map. Default true.
	IncludeLabels *bool `yaml:"include_labels"`
	// PollInterval paces discovery's fallback: new and rotated files are
	// picked up at once through inotify, and the root is also rescanned every
	// 10 x PollInterval (every PollInterval while some directory could not be
	// watched, and open files without a watch are polled that often).
	// Default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// CheckpointInterval is how often offsets are committed. Default 1s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// ReadFromHead reads files found at first start from the beginning.
	// Default true (an agent must not lose what was logged before it started).
	ReadFromHead *bool `yaml:"read_from_head"`
	// PartialFlushTimeout emits a dangling partial line after this long. Default 5s.
	PartialFlushTimeout time.Duration `yaml:"partial_flush_timeout"`
	// RotateWait is how long a rotated file is still read for lines the
	// runtime writes through its old descriptor, while the new file has no
	// data yet (as Fluent Bit's rotate_wait). Default 5s.
	RotateWait time.Duration `yaml:"rotate_wait"`
	// MaxOpenFiles caps the log files this input holds open at once; idle
	// ones are closed and reopened when they change. 0 (the default): the
	// process budget, the soft RLIMIT_NOFILE minus a reserve, shared by
	// every file input.
	MaxOpenFiles int `yaml:"max_open_files"`
}

// DefaultDockerInput returns a DockerInput with every default applied.
func DefaultDockerInput() DockerInput {
	return DockerInput{
		Root:                "/var/lib/docker/containers",
		Tag:                 "docker.{name}",
		MaxLineBytes:        1 << 20,
		IncludeLabels:       ptr(true),
		PollInterval:        time.Second,
		CheckpointInterval:  time.Second,
		ReadFromHead:        ptr(true),
		PartialFlushTimeout: 5 * time.Second,
		RotateWait:          5 * time.Second,
	}
}

func (d *DockerInput) setDefaults() { *d = DefaultDockerInput() }

func (d *DockerInput) check(v *checker, p string) {
	if d.Root == "" {
		v.errorf(p+".root", "must not be empty")
	}
	if d.Tag == "" {
		v.errorf(p+".tag", "must not be empty")
	} else if err := checkTemplate(d.Tag, false); err != nil {
		v.invalid(p+".tag", d.Tag, "tag template", err)
	}
	v.positiveInt(p+".max_line_bytes", d.MaxLineBytes)
	v.positive(p+".poll_interval", d.PollInterval)
	v.positive(p+".checkpoint_interval", d.CheckpointInterval)
	v.positive(p+".partial_flush_timeout", d.PartialFlushTimeout)
	v.positive(p+".rotate_wait", d.RotateWait)
	v.checkParser(p, d.Parser, d.ParseJSON)
	v.checkMultiline(p, d.Multiline, d.MaxLineBytes)
	if d.MaxOpenFiles < 0 {
		v.errorf(p+".max_open_files", "must not be negative, got %d", d.MaxOpenFiles)
	}
}

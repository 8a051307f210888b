package config

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// CRIInput tails the Kubernetes container logs the kubelet and the CRI
// runtime (containerd, CRI-O) write:
// <root>/<namespace>_<pod>_<uid>/<container>/<restart>.log.
type CRIInput struct {
	// Root is the kubelet's pod logs directory (KubeletConfiguration
	// podLogsDir). Default /var/log/pods.
	Root string `yaml:"root"`
	// Tag is a template for each event's tag. Placeholders: {namespace},
	// {pod}, {pod_id} (the pod's uid), {container}, {stream},
	// {field:KEY} (a field of the JSON payload). A placeholder without a
	// value renders as "unknown". Default "kube.{namespace}.{pod}.{container}".
	Tag string `yaml:"tag"`
	// ParseJSON parses a log payload that is a JSON object into record fields.
	ParseJSON bool `yaml:"parse_json"`
	// MaxLineBytes truncates longer (joined) lines; the rest is skipped and
	// counted. Default 1 MiB.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// PollInterval paces discovery's fallback: new pods, containers and
	// rotated files are picked up at once through inotify, and the root is
	// also rescanned every 10 x PollInterval (every PollInterval while some
	// directory could not be watched). Default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// CheckpointInterval is how often offsets are committed. Default 1s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// ReadFromHead reads files found at first start from the beginning.
	// Default true (an agent must not lose what was logged before it started).
	ReadFromHead *bool `yaml:"read_from_head"`
	// PartialFlushTimeout emits a dangling partial (P) line after this long.
	// Default 5s.
	PartialFlushTimeout time.Duration `yaml:"partial_flush_timeout"`
	// IncludeNamespaces, if set, reads only the pods of namespaces matching
	// one of these patterns (path.Match syntax: "team-*", "prod").
	IncludeNamespaces []string `yaml:"include_namespaces"`
	// ExcludeNamespaces leaves out the pods of namespaces matching one of
	// these patterns (it wins over IncludeNamespaces).
	ExcludeNamespaces []string `yaml:"exclude_namespaces"`
}

// DefaultCRIInput returns a CRIInput with every default applied.
func DefaultCRIInput() CRIInput {
	return CRIInput{
		Root:                "/var/log/pods",
		Tag:                 "kube.{namespace}.{pod}.{container}",
		MaxLineBytes:        1 << 20,
		PollInterval:        time.Second,
		CheckpointInterval:  time.Second,
		ReadFromHead:        ptr(true),
		PartialFlushTimeout: 5 * time.Second,
	}
}

func (c *CRIInput) setDefaults() { *c = DefaultCRIInput() }

func (c *CRIInput) check(v *checker, p string) {
	if c.Root == "" {
		v.errorf(p+".root", "must not be empty")
	}
	if c.Tag == "" {
		v.errorf(p+".tag", "must not be empty")
	} else if _, err := CompileCRITag(c.Tag); err != nil {
		v.invalid(p+".tag", c.Tag, "tag template", err)
	}
	v.positiveInt(p+".max_line_bytes", c.MaxLineBytes)
	v.positive(p+".poll_interval", c.PollInterval)
	v.positive(p+".checkpoint_interval", c.CheckpointInterval)
	v.positive(p+".partial_flush_timeout", c.PartialFlushTimeout)
	for _, l := range []struct {
		key  string
		pats []string
	}{{"include_namespaces", c.IncludeNamespaces}, {"exclude_namespaces", c.ExcludeNamespaces}} {
		for i, pat := range l.pats {
			if err := checkNamespacePattern(pat); err != nil {
				v.errorf(p+"."+l.key+"["+strconv.Itoa(i)+"]", "%v", err)
			}
		}
	}
}

// CompileCRITag compiles a cri input's tag template: the Kubernetes
// placeholders (record.AllowKube), without {label:KEY} (pod labels need
// the Kubernetes API, which the cri input does not read).
func CompileCRITag(s string) (*record.Template, error) {
	tpl, err := record.Compile(s, record.AllowKube)
	if err != nil {
		return nil, err
	}
	if tpl.Uses(record.Label) {
		return nil, errors.New(`placeholder "{label:KEY}" is not available in a cri input's tag (pod labels need the Kubernetes API; use {namespace}, {pod}, {pod_id}, {container}, {stream} or {field:KEY})`)
	}
	return tpl, nil
}

// checkNamespacePattern checks one include_namespaces/exclude_namespaces
// pattern.
func checkNamespacePattern(pat string) error {
	if pat == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(pat, ""); err != nil {
		return fmt.Errorf("invalid pattern %q (path.Match syntax: *, ?, [a-z])", pat)
	}
	return nil
}

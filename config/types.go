package config

import "time"

// Config is the whole agent configuration, as loaded from one YAML file.
type Config struct {
	// DataDir holds all on-disk state: buffer/<output id>/ and
	// inputs/<input id>/. Default /var/lib/sluice.
	DataDir string `yaml:"data_dir"`
	// LogLevel of the agent's own logs: debug, info, warn, error. Default info.
	LogLevel string `yaml:"log_level"`
	// MetricsAddr, if set, serves Prometheus metrics on http://ADDR/metrics.
	MetricsAddr string `yaml:"metrics_addr"`
	// ShutdownGrace bounds how long outputs may drain after SIGTERM.
	// Default 30s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	Inputs  []Input  `yaml:"inputs"`
	Outputs []Output `yaml:"outputs"`
	Routes  []Route  `yaml:"routes"`
	// DefaultOutput receives events that match no route. Empty means such
	// events are counted as unrouted and not stored.
	DefaultOutput string `yaml:"default_output"`

	// File is the path the config was loaded from (not a YAML key).
	File string `yaml:"-"`
}

// Input is one input component. Exactly the section matching Type is set.
type Input struct {
	ID   string `yaml:"id"`
	Type string `yaml:"type"` // "docker" or "forward"

	Docker  *DockerInput  `yaml:"-"`
	Forward *ForwardInput `yaml:"-"`

	Line int `yaml:"-"` // line of the component in the file, for messages
}

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
	// MaxLineBytes truncates longer (joined) lines; the rest is skipped and
	// counted. Default 1 MiB.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// IncludeLabels adds the container's labels as a "labels" map. Default true.
	IncludeLabels *bool `yaml:"include_labels"`
	// PollInterval is how often the root is scanned for new and rotated files.
	// Default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// CheckpointInterval is how often offsets are committed. Default 1s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// ReadFromHead reads files found at first start from the beginning.
	// Default true (an agent must not lose what was logged before it started).
	ReadFromHead *bool `yaml:"read_from_head"`
	// PartialFlushTimeout emits a dangling partial line after this long. Default 5s.
	PartialFlushTimeout time.Duration `yaml:"partial_flush_timeout"`
}

// ForwardInput is a Fluentd Forward protocol server.
type ForwardInput struct {
	// Listen is a TCP address. Default 127.0.0.1:24224 when neither listen
	// nor unix is configured; with unix configured and listen absent (or
	// empty), there is no TCP listener.
	Listen string `yaml:"listen"`
	// Unix is a unix socket path (FireLens uses /var/run/fluent.sock).
	Unix string `yaml:"unix"`
	// UnixMode is the socket's file mode. Default 0666.
	UnixMode *uint32 `yaml:"unix_mode"`
	// Tag, if set, overrides the tag sent by the client. Same placeholders as
	// DockerInput.Tag plus {tag} (the client's tag).
	Tag string `yaml:"tag"`
	// ParseJSON parses a log payload that is a JSON object into record fields.
	ParseJSON bool `yaml:"parse_json"`
	// MaxMessageBytes caps one request on the wire. Default 16 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxDecompressedBytes caps one decompressed request. Default 64 MiB.
	MaxDecompressedBytes int `yaml:"max_decompressed_bytes"`
	// MaxConnections caps concurrent connections. Default 1024.
	MaxConnections int `yaml:"max_connections"`
	// PartialTimeout flushes an incomplete partial message after this long. Default 5s.
	PartialTimeout time.Duration `yaml:"partial_timeout"`
	// MaxPartialBytes caps a reassembled partial message. Default 1 MiB.
	MaxPartialBytes int `yaml:"max_partial_bytes"`

	TLS      *TLS      `yaml:"tls"`
	Security *Security `yaml:"security"`
}

// Output is one output component with its own disk queue.
type Output struct {
	ID   string `yaml:"id"`
	Type string `yaml:"type"` // "forward", "file" or "stdout"
	// Buffer is the output's disk queue; every type, stdout included, gets
	// the defaults of Buffer for the keys not set.
	Buffer Buffer `yaml:"buffer"`

	Forward *ForwardOutput `yaml:"-"`
	File    *FileOutput    `yaml:"-"`
	Stdout  *StdoutOutput  `yaml:"-"`

	Line int `yaml:"-"`
}

// Buffer configures an output's disk queue.
type Buffer struct {
	// MaxBytes caps the queue on disk. Default 1 GiB. Accepts 512MiB, 1GiB, etc.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment file is closed. Default 8 MiB.
	SegmentBytes ByteSize `yaml:"segment_bytes"`
	// Overflow is "drop_oldest" (default) or "block".
	Overflow string `yaml:"overflow"`
	// Fsync is "always" (each chunk) or "interval" (default).
	Fsync string `yaml:"fsync"`
	// FsyncInterval applies to Fsync "interval". Default 1s.
	FsyncInterval time.Duration `yaml:"fsync_interval"`
	// ChunkBytes is the target size of one chunk's entries. Default 1 MiB.
	ChunkBytes ByteSize `yaml:"chunk_bytes"`
}

// ForwardOutput sends chunks to Fluentd/Fluent Bit/Sluice servers.
type ForwardOutput struct {
	Servers []ForwardServer `yaml:"servers"`
	// Compress is "none" (default) or "gzip".
	Compress string `yaml:"compress"`
	// CompressLevel is the gzip level 1..9. Default 1 (fastest).
	CompressLevel int `yaml:"compress_level"`
	// RequireAck waits for each chunk's ack before deleting it. Default true.
	RequireAck *bool `yaml:"require_ack"`
	// AckTimeout bounds the wait for one ack. Default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// MaxInFlight is the number of unacked chunks per connection. Default 8.
	MaxInFlight int `yaml:"max_in_flight"`
	// ConnectTimeout bounds one dial plus handshake. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// HeartbeatInterval probes down servers (and idle ones). Default 1s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// RetryInitial and RetryMax bound the exponential back-off with jitter.
	// Defaults 1s and 60s.
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`
	// MaxRetries gives up on a chunk after this many retries (MaxRetries+1
	// failed sends; the chunk is dropped, counted and logged); 0 (default)
	// retries forever (the data waits on disk).
	MaxRetries int `yaml:"max_retries"`

	TLS      *TLS      `yaml:"tls"`
	Security *Security `yaml:"security"`
}

// ForwardServer is one destination of a forward output.
type ForwardServer struct {
	Address string `yaml:"address"` // host:port, or unix:///path
	Weight  int    `yaml:"weight"`  // default 60, as in Fluentd
	Standby bool   `yaml:"standby"` // used only when every active server is down
	// Username/Password for the handshake's user authentication.
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// FileOutput writes JSON lines to a file.
type FileOutput struct {
	Path string `yaml:"path"`
}

// StdoutOutput writes JSON lines to the agent's stdout.
type StdoutOutput struct{}

// TLS configures a TLS client or server.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// ClientAuth (server side) requires a client certificate signed by CAFile.
	ClientAuth bool `yaml:"client_auth"`
}

// Security configures the Forward protocol handshake.
type Security struct {
	SelfHostname string `yaml:"self_hostname"`
	SharedKey    Secret `yaml:"shared_key"`
	// Users (server side) enables user authentication.
	Users []User `yaml:"users"`
}

// User is one username/password pair accepted by a forward input.
type User struct {
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// Route sends events whose tag matches Match (and, if set, whose record
// field Field equals Value) to Outputs.
type Route struct {
	// Match is a Fluentd-style pattern: "app.*", "app.**", "{a,b}.*", "*".
	// Several patterns may be separated by spaces.
	Match   string   `yaml:"match"`
	Field   string   `yaml:"field"`
	Value   string   `yaml:"value"`
	Outputs []string `yaml:"outputs"`
	// Continue lets later routes also match (default false: first match wins).
	Continue bool `yaml:"continue"`

	Line int `yaml:"-"`
}

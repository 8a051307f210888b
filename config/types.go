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

	// Inputs are where events come from. At least one.
	Inputs []Input `yaml:"inputs"`
	// Outputs are where events go, each with its own disk queue. At
	// least one.
	Outputs []Output `yaml:"outputs"`
	// Routes send events to outputs by tag (and record fields), in order.
	Routes []Route `yaml:"routes"`
	// Processors reshape, drop, re-tag, throttle and redact events, in
	// order, before routing.
	Processors []Processor `yaml:"processors"`
	// DefaultOutput receives events that match no route. Empty means such
	// events are counted as unrouted and not stored.
	DefaultOutput string `yaml:"default_output"`

	// File is the path the config was loaded from (not a YAML key).
	File string `yaml:"-"`
}

// Input is one input component. Exactly the section matching Type is set.
//
// The section fields are the input types: the type tag of a field is the
// value of "type" that selects it, and its doc tag the type's summary
// (see Types). A type whose struct has no fields may leave its section nil.
type Input struct {
	// ID names the input in metrics and logs, and its state directory
	// (inputs/<id> under data_dir: read offsets). Required, unique among
	// the inputs: letters, digits, '_', '.' and '-'.
	ID string `yaml:"id"`
	// Type selects the input type, whose keys go inline. Required.
	Type string `yaml:"type"`

	Docker  *DockerInput  `yaml:"-" type:"docker" doc:"tails Docker's json-file logs"`
	Forward *ForwardInput `yaml:"-" type:"forward" doc:"Forward protocol server (Docker's fluentd log driver, FireLens, Fluent Bit)"`
	CRI     *CRIInput     `yaml:"-" type:"cri" doc:"tails Kubernetes CRI container logs (/var/log/pods, containerd and CRI-O)"`

	Line int `yaml:"-"` // line of the component in the file, for messages
}

// Output is one output component with its own disk queue. Exactly the
// section matching Type is set; the section fields are the output types,
// as for Input.
type Output struct {
	// ID names the output in routes, metrics and logs, and its disk queue
	// (buffer/<id> under data_dir). Required, unique among the outputs:
	// letters, digits, '_', '.' and '-'.
	ID string `yaml:"id"`
	// Type selects the output type, whose keys go inline. Required.
	Type string `yaml:"type"`
	// Buffer is the output's disk queue; every type, stdout included, gets
	// the defaults of the buffer keys it does not set.
	Buffer Buffer `yaml:"buffer"`
	// Delivery is the batching, retry and dead-letter settings of outputs
	// built on the delivery engine; the keys not set take the type's
	// defaults.
	Delivery Delivery `yaml:"delivery"`

	Forward *ForwardOutput `yaml:"-" type:"forward" doc:"Forward protocol client (acks, gzip, TLS, handshake, failover)"`
	File    *FileOutput    `yaml:"-" type:"file" doc:"JSON lines appended to a file, fsynced before each ack"`
	Stdout  *StdoutOutput  `yaml:"-" type:"stdout" doc:"JSON lines on the agent's standard output"`
	S3      *S3Output      `yaml:"-" type:"s3" doc:"archive to S3 or an S3-compatible store: objects of JSON or raw lines, gzip or zstd, multipart for large ones"`

	CloudWatchLogs *CloudWatchLogsOutput `yaml:"-" type:"cloudwatch_logs" doc:"Amazon CloudWatch Logs (PutLogEvents): group and stream names from templates, created when missing, every batch limit kept, rejected events dead-lettered by reason"`
	Kinesis        *KinesisOutput        `yaml:"-" type:"kinesis" doc:"Amazon Kinesis Data Streams (PutRecords): partition key from a field or random, only the failed records retried"`
	Firehose       *FirehoseOutput       `yaml:"-" type:"firehose" doc:"Amazon Data Firehose (PutRecordBatch): newline-delimited JSON or raw records, optional aggregation, only the failed records retried"`

	Elasticsearch *ElasticsearchOutput `yaml:"-" type:"elasticsearch" doc:"_bulk API client for Elasticsearch, OpenSearch and compatible servers (per-item retries, dead letters, stable ids, gzip, SigV4)"`
	Kafka         *KafkaOutput         `yaml:"-" type:"kafka" doc:"Kafka producer (franz-go): topic per log type from a template, key and headers, acks=all and idempotent by default, zstd/lz4/snappy/gzip, TLS and SASL PLAIN/SCRAM"`

	Line int `yaml:"-"`
}

// Buffer configures an output's disk queue.
type Buffer struct {
	// MaxBytes caps the queue on disk. Default 1 GiB. Accepts 512MiB, 1GiB, etc.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment file is closed; no chunk
	// (and so no event) may be larger, and the queue holds at least two.
	// Default 8 MiB, or a quarter of MaxBytes when that is smaller, but at
	// least the longest line an input accepts (max_line_bytes of a docker
	// or cri input, max_partial_bytes of a forward input) plus 64 KiB; a
	// MaxBytes below two such segments is refused. A value set in the file
	// is kept as it is: it must be at most half of MaxBytes.
	SegmentBytes ByteSize `yaml:"segment_bytes"`
	// Overflow is "drop_oldest" (default) or "block".
	Overflow string `yaml:"overflow"`
	// Fsync is "always" (each chunk) or "interval" (default).
	Fsync string `yaml:"fsync"`
	// FsyncInterval applies to Fsync "interval". Default 1s.
	FsyncInterval time.Duration `yaml:"fsync_interval"`
	// ChunkBytes is the target size of one chunk's entries. Default 1 MiB,
	// or a quarter of SegmentBytes when that is smaller.
	ChunkBytes ByteSize `yaml:"chunk_bytes"`
}

// TLS configures a TLS client or server.
type TLS struct {
	// Enabled turns TLS on.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that verify the other side's
	// certificate. Default (client side): the system's CAs.
	CAFile string `yaml:"ca_file"`
	// CertFile is the PEM certificate this side presents: the server's
	// (required for a server), or a client certificate.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// ServerName (client side) is the name the server's certificate is
	// verified against (and sent as SNI). Default: the address's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify (client side) accepts any server certificate:
	// for tests only, it makes TLS open to interception.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// ClientAuth (server side) requires a client certificate signed by CAFile.
	ClientAuth bool `yaml:"client_auth"`
}

// Security configures the Forward protocol handshake.
type Security struct {
	// SelfHostname is the hostname this side sends in the handshake.
	// Default: the machine's hostname.
	SelfHostname string `yaml:"self_hostname"`
	// SharedKey is the key both sides must share. Required.
	SharedKey Secret `yaml:"shared_key"`
	// Users (server side) enables user authentication.
	Users []User `yaml:"users"`
}

// User is one username/password pair accepted by a forward input.
type User struct {
	// Username a client authenticates as. Required, unique.
	Username string `yaml:"username"`
	// Password of Username. Required.
	Password Secret `yaml:"password"`
}

// Route sends events whose tag matches Match (and, if set, whose record
// field Field equals Value, and for which When holds) to Outputs.
type Route struct {
	// Match is a Fluentd-style pattern: "app.*", "app.**", "{a,b}.*", "*".
	// Several patterns may be separated by spaces.
	Match string `yaml:"match"`
	// Field, if set, is a top-level record field whose value must equal
	// value for the route to take the event.
	Field string `yaml:"field"`
	// Value is the string field must equal; an event whose field is
	// absent or not a string never does.
	Value string `yaml:"value"`
	// When is a condition on the record the route also requires.
	When *Condition `yaml:"when"`
	// Outputs are the ids of the outputs the route sends to. At least one.
	Outputs []string `yaml:"outputs"`
	// Continue lets later routes also match (default false: first match wins).
	Continue bool `yaml:"continue"`

	Line int `yaml:"-"`
}

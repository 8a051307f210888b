package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// KafkaOutput produces events to Apache Kafka (and Kafka-compatible
// brokers: Redpanda, Amazon MSK, Confluent, WarpStream) with franz-go:
// one Kafka record per event, its value the event's JSON record (or its
// raw log line), its timestamp the event time. A chunk of the queue is
// acknowledged only once every one of its records was acknowledged by the
// broker (acks=all and the idempotent producer by default).
//
// The type's defaults for the delivery keys not set:
// workers 4, flush_interval 100ms, max_in_flight_bytes 16MiB, and eager
// batches: a batch is handed to the producer as soon as a worker is
// free, and the producer itself groups records per partition (linger).
type KafkaOutput struct {
	// Brokers are the seed brokers, host:port; the cluster's other brokers
	// are discovered from their metadata. Required.
	Brokers []string `yaml:"brokers"`
	// Topic names each event's topic. It may hold {tag}, {tag[N]} (the
	// N-th dot-separated part of the tag, from 0) and {field:KEY} (a record
	// field; KEY may be a dotted path into nested maps): one topic per log
	// type is e.g. logs-{field:log_type}. In placeholder values every
	// character a topic name cannot hold (letters, digits, '.', '_' and '-'
	// only) becomes '_'; a missing value renders as "unknown". Default
	// logs.
	Topic string `yaml:"topic"`
	// KeyField, if set, is the record field whose value is the record key
	// (a dotted path into nested maps): records with equal keys go to the
	// same partition, in order. Strings are taken as they are, numbers and
	// booleans in their JSON spelling; an event without the field has no
	// key (records are spread over the partitions). Default: no key.
	KeyField string `yaml:"key_field"`
	// Format is "json" (default: the value is the record as a JSON object
	// plus time_key and tag_key) or "raw" (the value is the raw_key field
	// as it is, its one trailing newline removed; an event without that
	// string field is sent as its JSON object).
	Format string `yaml:"format"`
	// RawKey is the record field format raw sends. Default log.
	RawKey string `yaml:"raw_key"`
	// TimeKey names the event-time field added to JSON values; "" adds
	// none (the record's timestamp carries the time either way). Default
	// @timestamp.
	TimeKey string `yaml:"time_key"`
	// TimeFormat is rfc3339nano (default), epoch_seconds, epoch_millis or
	// epoch_nanos.
	TimeFormat string `yaml:"time_format"`
	// TagKey, if set, adds the event's tag to JSON values under this name.
	TagKey string `yaml:"tag_key"`
	// TagHeader, if set, is the name of a record header holding the
	// event's tag. Default tag.
	TagHeader string `yaml:"tag_header"`
	// Headers are further record headers: a static value, or with field
	// the value of that record field (a header is left out for an event
	// without the field).
	Headers []KafkaHeader `yaml:"headers"`

	// Acks is "all" (default: the leader waits for every in-sync replica),
	// "leader" or "none" (no answer at all: delivery is not confirmed).
	Acks string `yaml:"acks"`
	// Idempotent turns on the idempotent producer (default true): retries
	// of the producer never write a record twice nor reorder a partition.
	// It needs acks all (and, on brokers before 3.0, the IDEMPOTENT_WRITE
	// permission on the cluster).
	Idempotent *bool `yaml:"idempotent"`
	// Compression of record batches: zstd (default), lz4, snappy, gzip or
	// none. zstd needs brokers 2.1 or later.
	Compression string `yaml:"compression"`
	// CompressionLevel is the codec's level: gzip 1 to 9, zstd 1 (fastest)
	// to 4 (best); 0 (default) is the fastest level of both (1), which
	// keeps the agent's CPU low. Other codecs take no level.
	CompressionLevel int `yaml:"compression_level"`
	// MaxMessageBytes bounds one record batch (the producer's
	// max.message.bytes): keep it at or below the broker's message.max.bytes
	// and the topics' max.message.bytes. An event whose record alone is
	// larger is dead-lettered (reason too_large) without being sent.
	// Default 1000000.
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// MaxBatchBytes and MaxBatchEvents bound the records handed to the
	// producer at once by one worker (the delivery engine's batch); the
	// queue is acknowledged per batch. Default 1MiB.
	MaxBatchBytes ByteSize `yaml:"max_batch_bytes"`
	// MaxBatchEvents bounds the records of one batch (see
	// MaxBatchBytes). Default 5000.
	MaxBatchEvents int `yaml:"max_batch_events"`
	// Linger is how long a partition's batch waits for more records before
	// it is sent (linger.ms). Default 0: the delivery engine hands over
	// whole batches already, and records that arrive while requests are in
	// flight are batched anyway; a linger only adds latency to every
	// batch (measured: 30% less throughput with 5ms).
	Linger time.Duration `yaml:"linger"`
	// RequestTimeout bounds the broker's answer to one produce request
	// (request.timeout.ms). Default 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// DeliveryTimeout bounds how long the producer tries a record
	// (delivery.timeout.ms) before the delivery engine takes over with its
	// own back-off (delivery.retry_initial...). A record sent without an
	// answer yet is never given up (the idempotent producer must learn its
	// outcome). Default 1m; at least request_timeout + linger.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
	// DialTimeout bounds a connection to a broker. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ClientID is sent to the brokers (client.id: quotas, logs). Default
	// sluice.
	ClientID string `yaml:"client_id"`
	// AutoCreateTopics asks the broker to create a missing topic when its
	// metadata is fetched (as the Java producer does); the broker's
	// auto.create.topics.enable still decides. Default true. Records for a
	// topic that does not exist are retried (they stay queued) and logged.
	AutoCreateTopics *bool `yaml:"auto_create_topics"`

	// TLS encrypts the connections to the brokers when enabled (CA, client
	// certificate, server name; insecure_skip_verify only when set).
	TLS *TLS `yaml:"tls"`
	// SASL authenticates to the brokers.
	SASL *KafkaSASL `yaml:"sasl"`
}

// KafkaHeader is one record header of a kafka output.
type KafkaHeader struct {
	// Name is the header's key. Required.
	Name string `yaml:"name"`
	// Value is the header's static value.
	Value string `yaml:"value"`
	// Field, if set, takes the header's value from this record field
	// instead of value (a dotted path into nested maps).
	Field string `yaml:"field"`
}

// KafkaSASL configures SASL authentication.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Use PLAIN only
	// over TLS: it sends the password as it is.
	Mechanism string `yaml:"mechanism"`
	// Username to authenticate as. Required.
	Username string `yaml:"username"`
	// Password of Username. Required.
	Password Secret `yaml:"password"`
}

// Kafka defaults and limits.
const (
	KafkaDefaultWorkers       = 4
	KafkaDefaultFlushInterval = 100 * time.Millisecond
	KafkaDefaultInFlightBytes = 16 << 20
	// KafkaMaxTopicLen is the longest topic name Kafka accepts.
	KafkaMaxTopicLen = 249
	// Bounds of max_message_bytes (the producer's batch limits).
	kafkaMinMessageBytes = 512
	kafkaMaxMessageBytes = 1 << 30
)

// DefaultKafkaOutput returns a KafkaOutput with every default applied and
// no brokers.
func DefaultKafkaOutput() KafkaOutput {
	return KafkaOutput{
		Topic:            "logs",
		Format:           "json",
		RawKey:           "log",
		TimeKey:          "@timestamp",
		TimeFormat:       "rfc3339nano",
		TagHeader:        "tag",
		Acks:             "all",
		Idempotent:       ptr(true),
		Compression:      "zstd",
		MaxMessageBytes:  1000000,
		MaxBatchBytes:    1 << 20,
		MaxBatchEvents:   5000,
		RequestTimeout:   10 * time.Second,
		DeliveryTimeout:  time.Minute,
		DialTimeout:      10 * time.Second,
		ClientID:         "sluice",
		AutoCreateTopics: ptr(true),
	}
}

func (k *KafkaOutput) setDefaults() { *k = DefaultKafkaOutput() }

// Validate checks k alone, with the rules `agent validate` applies to a
// kafka section (paths relative to "kafka").
func (k *KafkaOutput) Validate() error {
	v := &checker{}
	k.check(v, "kafka")
	if len(v.errs) > 0 {
		return v.errs.sorted()
	}
	return nil
}

// Kafka SASL mechanisms.
var kafkaSASLMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

func (k *KafkaOutput) check(v *checker, p string) {
	if len(k.Brokers) == 0 {
		v.errorf(p+".brokers", "at least one seed broker is required (host:port, e.g. kafka-1:9092)")
	}
	seen := map[string]string{}
	for i, b := range k.Brokers {
		bp := fmt.Sprintf("%s.brokers[%d]", p, i)
		if err := checkKafkaBroker(b); err != nil {
			v.errorf(bp, "invalid broker %s: %v", v.q(bp, b), err)
			continue
		}
		if prev, dup := seen[strings.ToLower(b)]; dup {
			v.errorf(bp, "duplicate broker %s, already listed by %s", v.q(bp, b), v.where(prev))
			continue
		}
		seen[strings.ToLower(b)] = bp
	}

	if _, err := ParseKafkaTopic(k.Topic); err != nil {
		v.invalid(p+".topic", k.Topic, "topic template", fmt.Errorf("topic template %s: %w", v.q(p+".topic", k.Topic), err))
	}
	if strings.HasPrefix(k.KeyField, ".") || strings.HasSuffix(k.KeyField, ".") {
		v.errorf(p+".key_field", "invalid field %s", v.q(p+".key_field", k.KeyField))
	}
	v.oneOf(p+".format", k.Format, "json", "raw")
	if k.Format == "raw" && k.RawKey == "" {
		v.errorf(p+".raw_key", "must not be empty with format raw")
	}
	v.oneOf(p+".time_format", k.TimeFormat, "rfc3339nano", "epoch_seconds", "epoch_millis", "epoch_nanos")
	if k.TagKey != "" && k.TagKey == k.TimeKey {
		v.errorf(p+".tag_key", "same as time_key %s", v.q(p+".tag_key", k.TagKey))
	}
	k.checkHeaders(v, p)

	v.oneOf(p+".acks", k.Acks, "all", "leader", "none")
	if (k.Idempotent == nil || *k.Idempotent) && k.Acks != "all" && k.Acks != "" {
		v.errorf(p+".acks", "the idempotent producer needs acks all, got %s: set idempotent: false to use it", v.q(p+".acks", k.Acks))
	}
	v.oneOf(p+".compression", k.Compression, "zstd", "lz4", "snappy", "gzip", "none")
	if l := k.CompressionLevel; l != 0 {
		switch k.Compression {
		case "gzip":
			if l < 1 || l > 9 {
				v.errorf(p+".compression_level", "gzip takes 1 to 9, got %d", l)
			}
		case "zstd":
			if l < 1 || l > 4 {
				v.errorf(p+".compression_level", "zstd takes 1 (fastest) to 4 (best), got %d", l)
			}
		default:
			v.errorf(p+".compression_level", "set with compression %s, which takes no level", v.q(p+".compression", k.Compression))
		}
	}
	if k.MaxMessageBytes < kafkaMinMessageBytes || k.MaxMessageBytes > kafkaMaxMessageBytes {
		v.errorf(p+".max_message_bytes", "must be between 512 and 1GiB, got %d", k.MaxMessageBytes)
	}
	if k.MaxBatchBytes < 64<<10 || k.MaxBatchBytes > kafkaMaxMessageBytes {
		v.errorf(p+".max_batch_bytes", "must be between 64KiB and 1GiB, got %d", k.MaxBatchBytes)
	}
	v.positiveInt(p+".max_batch_events", k.MaxBatchEvents)
	if k.Linger < 0 {
		v.errorf(p+".linger", "must not be negative, got %s", k.Linger)
	}
	v.positive(p+".request_timeout", k.RequestTimeout)
	v.positive(p+".dial_timeout", k.DialTimeout)
	switch {
	case k.DeliveryTimeout <= 0:
		v.errorf(p+".delivery_timeout", "must be positive, got %s", k.DeliveryTimeout)
	case k.RequestTimeout > 0 && k.DeliveryTimeout < k.RequestTimeout+max(k.Linger, 0):
		v.errorf(p+".delivery_timeout", "%s is below request_timeout + linger (%s)", k.DeliveryTimeout, k.RequestTimeout+max(k.Linger, 0))
	}
	if strings.ContainsAny(k.ClientID, "\r\n\x00") {
		v.errorf(p+".client_id", "must be one line")
	}

	if t := k.TLS; t != nil {
		v.tls(p+".tls", t, false)
		if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
			v.errorf(p+".tls.enabled", "tls settings are given but enabled is false")
		}
	}
	if s := k.SASL; s != nil {
		sp := p + ".sasl"
		if s.Mechanism == "" {
			v.errorf(sp+".mechanism", "missing (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		} else {
			v.oneOf(sp+".mechanism", s.Mechanism, kafkaSASLMechanisms...)
		}
		if s.Username == "" {
			v.errorf(sp+".username", "required with sasl")
		}
		if s.Password == "" {
			v.errorf(sp+".password", "required with sasl")
		}
	}
}

func (k *KafkaOutput) checkHeaders(v *checker, p string) {
	names := map[string]string{}
	if k.TagHeader != "" {
		names[k.TagHeader] = p + ".tag_header"
	}
	for i, h := range k.Headers {
		hp := fmt.Sprintf("%s.headers[%d]", p, i)
		switch {
		case h.Name == "":
			v.errorf(hp+".name", "missing")
		case names[h.Name] != "":
			v.errorf(hp+".name", "duplicate header %s, already set by %s", v.q(hp+".name", h.Name), v.where(names[h.Name]))
		default:
			names[h.Name] = hp + ".name"
		}
		if h.Field != "" && h.Value != "" {
			v.errorf(hp, "value and field are exclusive: a header is static or from a field")
		}
	}
}

// checkKafkaBroker checks one seed broker: host:port, port 1..65535.
func checkKafkaBroker(b string) error {
	if strings.Contains(b, "://") {
		return fmt.Errorf("give host:port without a scheme (tls and sasl are set in their sections)")
	}
	host, port, err := net.SplitHostPort(b)
	if err != nil || host == "" {
		return fmt.Errorf("want host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// KafkaTopicKind is the kind of one piece of a parsed topic template.
type KafkaTopicKind uint8

// The pieces of a topic template.
const (
	KafkaTopicText  KafkaTopicKind = iota // literal text (Text)
	KafkaTopicTag                         // {tag}, or {tag[N]} with N ≥ 0
	KafkaTopicField                       // {field:KEY}; Text is KEY
)

// KafkaTopicPart is one piece of a parsed topic template.
type KafkaTopicPart struct {
	Kind KafkaTopicKind
	Text string // KafkaTopicText: the text; KafkaTopicField: the KEY
	N    int    // KafkaTopicTag: the part index, -1 for the whole tag
}

// KafkaTopicByte reports whether c may appear in a topic name.
func KafkaTopicByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// ParseKafkaTopic parses a topic template (see KafkaOutput.Topic): its
// literal text must be made of topic characters, and a template without
// placeholders must be a valid topic name ("." and ".." are not).
func ParseKafkaTopic(s string) ([]KafkaTopicPart, error) {
	if s == "" {
		return nil, fmt.Errorf("empty")
	}
	var parts []KafkaTopicPart
	lit := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{':
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return nil, fmt.Errorf("unclosed '{'")
			}
			ph := s[i+1 : i+j]
			i += j
			part, err := kafkaPlaceholder(ph)
			if err != nil {
				return nil, err
			}
			parts = append(parts, part)
		case c == '}':
			return nil, fmt.Errorf("unmatched '}'")
		case KafkaTopicByte(c):
			j := i
			for j < len(s) && KafkaTopicByte(s[j]) {
				j++
			}
			lit += j - i
			if n := len(parts); n > 0 && parts[n-1].Kind == KafkaTopicText {
				parts[n-1].Text += s[i:j]
			} else {
				parts = append(parts, KafkaTopicPart{Kind: KafkaTopicText, Text: s[i:j]})
			}
			i = j - 1
		default:
			return nil, fmt.Errorf("character %q is not allowed in a topic name (letters, digits, '.', '_' and '-')", c)
		}
	}
	switch {
	case lit > KafkaMaxTopicLen:
		return nil, fmt.Errorf("longer than %d characters", KafkaMaxTopicLen)
	case len(parts) == 1 && parts[0].Kind == KafkaTopicText && (s == "." || s == ".."):
		return nil, fmt.Errorf("%q is not a valid topic name", s)
	}
	return parts, nil
}

func kafkaPlaceholder(ph string) (KafkaTopicPart, error) {
	if ph == "tag" {
		return KafkaTopicPart{Kind: KafkaTopicTag, N: -1}, nil
	}
	if rest, ok := strings.CutPrefix(ph, "tag["); ok {
		if ns, ok := strings.CutSuffix(rest, "]"); ok {
			if n, err := strconv.Atoi(ns); err == nil && n >= 0 && n < 64 && ns == strconv.Itoa(n) {
				return KafkaTopicPart{Kind: KafkaTopicTag, N: n}, nil
			}
		}
		return KafkaTopicPart{}, fmt.Errorf("invalid placeholder {%s} (want {tag[N]} with N from 0 to 63)", ph)
	}
	if k, ok := strings.CutPrefix(ph, "field:"); ok {
		if k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") {
			return KafkaTopicPart{}, fmt.Errorf("placeholder {%s} needs a key, e.g. {field:log_type}", ph)
		}
		return KafkaTopicPart{Kind: KafkaTopicField, Text: k}, nil
	}
	return KafkaTopicPart{}, fmt.Errorf("unknown placeholder {%s} (want {tag}, {tag[N]} or {field:KEY})", ph)
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validKafka() KafkaOutput {
	k := DefaultKafkaOutput()
	k.Brokers = []string{"kafka-1:9092", "10.0.0.2:9092"}
	return k
}

func TestKafkaDefaults(t *testing.T) {
	k := validKafka()
	if err := k.Validate(); err != nil {
		t.Fatalf("defaults with brokers: %v", err)
	}
	if err := (&KafkaOutput{}).Validate(); err == nil {
		t.Fatal("zero KafkaOutput validates")
	}
	opts := map[string]Option{}
	for _, o := range Options(ptr(DefaultKafkaOutput())) {
		opts[o.Key] = o
	}
	for key, want := range map[string]string{
		"topic":              "logs",
		"format":             "json",
		"raw_key":            "log",
		"time_key":           "@timestamp",
		"time_format":        "rfc3339nano",
		"tag_key":            "",
		"tag_header":         "tag",
		"acks":               "all",
		"idempotent":         "true",
		"compression":        "zstd",
		"compression_level":  "0",
		"max_message_bytes":  "1000000",
		"max_batch_bytes":    "1MiB",
		"max_batch_events":   "5000",
		"linger":             "",
		"request_timeout":    "10s",
		"delivery_timeout":   "1m",
		"dial_timeout":       "10s",
		"client_id":          "sluice",
		"auto_create_topics": "true",
		"key_field":          "",
	} {
		if o, ok := opts[key]; !ok || o.Default != want {
			t.Errorf("option %s: %+v, want default %q", key, o, want)
		}
	}
	for _, key := range []string{"brokers", "headers[].name", "headers[].value", "headers[].field", "tls.ca_file", "sasl.mechanism", "sasl.username"} {
		if _, ok := opts[key]; !ok {
			t.Errorf("no option %s", key)
		}
	}
	if o := opts["sasl.password"]; o.Value != "secret" {
		t.Errorf("sasl.password is %q, want a secret", o.Value)
	}
}

// TestKafkaCheck: each wrong value or combination is reported with its
// path.
func TestKafkaCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(k *KafkaOutput)
		want []string
	}{
		"no brokers":          {func(k *KafkaOutput) { k.Brokers = nil }, []string{"kafka.brokers: at least one seed broker is required"}},
		"broker without port": {func(k *KafkaOutput) { k.Brokers = []string{"kafka-1"} }, []string{`kafka.brokers[0]: invalid broker "kafka-1": want host:port`}},
		"broker with scheme":  {func(k *KafkaOutput) { k.Brokers = []string{"kafka://k:9092"} }, []string{`kafka.brokers[0]: invalid broker "kafka://k:9092": give host:port without a scheme`}},
		"broker port 0":       {func(k *KafkaOutput) { k.Brokers = []string{"k:0"} }, []string{`kafka.brokers[0]: invalid broker "k:0": invalid port "0"`}},
		"duplicate broker":    {func(k *KafkaOutput) { k.Brokers = []string{"k:9092", "K:9092"} }, []string{`kafka.brokers[1]: duplicate broker "K:9092", already listed by kafka.brokers[0]`}},
		"empty topic":         {func(k *KafkaOutput) { k.Topic = "" }, []string{`kafka.topic: topic template "": empty`}},
		"unknown placeholder": {func(k *KafkaOutput) { k.Topic = "logs-{namespace}" },
			[]string{`kafka.topic: topic template "logs-{namespace}": unknown placeholder {namespace} (want {tag}, {tag[N]} or {field:KEY})`}},
		"bad tag part": {func(k *KafkaOutput) { k.Topic = "logs-{tag[x]}" }, []string{`invalid placeholder {tag[x]}`}},
		"field no key": {func(k *KafkaOutput) { k.Topic = "logs-{field:}" }, []string{`placeholder {field:} needs a key`}},
		"unclosed":     {func(k *KafkaOutput) { k.Topic = "logs-{tag" }, []string{`kafka.topic: topic template "logs-{tag": unclosed '{'`}},
		"bad char":     {func(k *KafkaOutput) { k.Topic = "logs/app" }, []string{`character '/' is not allowed in a topic name`}},
		"dot topic":    {func(k *KafkaOutput) { k.Topic = ".." }, []string{`".." is not a valid topic name`}},
		"long topic":   {func(k *KafkaOutput) { k.Topic = strings.Repeat("a", 250) }, []string{`longer than 249 characters`}},
		"bad key":      {func(k *KafkaOutput) { k.KeyField = "a." }, []string{`kafka.key_field: invalid field "a."`}},
		"format":       {func(k *KafkaOutput) { k.Format = "avro" }, []string{`kafka.format: invalid value "avro" (want json or raw)`}},
		"raw no key":   {func(k *KafkaOutput) { k.Format, k.RawKey = "raw", "" }, []string{"kafka.raw_key: must not be empty with format raw"}},
		"time format":  {func(k *KafkaOutput) { k.TimeFormat = "unix" }, []string{`kafka.time_format: invalid value "unix"`}},
		"tag = time":   {func(k *KafkaOutput) { k.TagKey = "@timestamp" }, []string{`kafka.tag_key: same as time_key "@timestamp"`}},
		"header no name": {func(k *KafkaOutput) { k.Headers = []KafkaHeader{{Value: "x"}} },
			[]string{"kafka.headers[0].name: missing"}},
		"header dup tag": {func(k *KafkaOutput) { k.Headers = []KafkaHeader{{Name: "tag", Value: "x"}} },
			[]string{`kafka.headers[0].name: duplicate header "tag", already set by kafka.tag_header`}},
		"header dup": {func(k *KafkaOutput) { k.Headers = []KafkaHeader{{Name: "a", Value: "x"}, {Name: "a", Field: "f"}} },
			[]string{`kafka.headers[1].name: duplicate header "a", already set by kafka.headers[0].name`}},
		"header both": {func(k *KafkaOutput) { k.Headers = []KafkaHeader{{Name: "a", Value: "x", Field: "f"}} },
			[]string{"kafka.headers[0]: value and field are exclusive"}},
		"acks":                 {func(k *KafkaOutput) { k.Acks = "1" }, []string{`kafka.acks: invalid value "1" (want all, leader or none)`, `kafka.acks: the idempotent producer needs acks all, got "1"`}},
		"idempotent acks":      {func(k *KafkaOutput) { k.Acks = "leader" }, []string{`kafka.acks: the idempotent producer needs acks all, got "leader": set idempotent: false`}},
		"compression":          {func(k *KafkaOutput) { k.Compression = "brotli" }, []string{`kafka.compression: invalid value "brotli" (want zstd, lz4, snappy, gzip or none)`}},
		"zstd level":           {func(k *KafkaOutput) { k.CompressionLevel = 9 }, []string{"kafka.compression_level: zstd takes 1 (fastest) to 4 (best), got 9"}},
		"gzip level":           {func(k *KafkaOutput) { k.Compression, k.CompressionLevel = "gzip", 10 }, []string{"kafka.compression_level: gzip takes 1 to 9, got 10"}},
		"snappy level":         {func(k *KafkaOutput) { k.Compression, k.CompressionLevel = "snappy", 1 }, []string{`kafka.compression_level: set with compression "snappy", which takes no level`}},
		"small message":        {func(k *KafkaOutput) { k.MaxMessageBytes = 100 }, []string{"kafka.max_message_bytes: must be between 512 and 1GiB, got 100"}},
		"small batch":          {func(k *KafkaOutput) { k.MaxBatchBytes = 1024 }, []string{"kafka.max_batch_bytes: must be between 64KiB and 1GiB, got 1024"}},
		"zero events":          {func(k *KafkaOutput) { k.MaxBatchEvents = 0 }, []string{"kafka.max_batch_events: must be positive, got 0"}},
		"negative linger":      {func(k *KafkaOutput) { k.Linger = -time.Millisecond }, []string{"kafka.linger: must not be negative"}},
		"zero request timeout": {func(k *KafkaOutput) { k.RequestTimeout = 0 }, []string{"kafka.request_timeout: must be positive"}},
		"zero dial timeout":    {func(k *KafkaOutput) { k.DialTimeout = 0 }, []string{"kafka.dial_timeout: must be positive"}},
		"zero delivery":        {func(k *KafkaOutput) { k.DeliveryTimeout = 0 }, []string{"kafka.delivery_timeout: must be positive"}},
		"short delivery": {func(k *KafkaOutput) { k.DeliveryTimeout = 5 * time.Second },
			[]string{"kafka.delivery_timeout: 5s is below request_timeout + linger (10s)"}},
		"client id":     {func(k *KafkaOutput) { k.ClientID = "a\nb" }, []string{"kafka.client_id: must be one line"}},
		"tls disabled":  {func(k *KafkaOutput) { k.TLS = &TLS{CAFile: "/ca.pem"} }, []string{"kafka.tls.enabled: tls settings are given but enabled is false"}},
		"tls cert only": {func(k *KafkaOutput) { k.TLS = &TLS{Enabled: true, CertFile: "/c.pem"} }, []string{"kafka.tls.key_file: required when cert_file is set"}},
		"tls client auth": {func(k *KafkaOutput) { k.TLS = &TLS{Enabled: true, ClientAuth: true} },
			[]string{"kafka.tls.client_auth: only valid for inputs"}},
		"sasl mechanism": {func(k *KafkaOutput) { k.SASL = &KafkaSASL{Mechanism: "GSSAPI", Username: "u", Password: "p"} },
			[]string{`kafka.sasl.mechanism: invalid value "GSSAPI" (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)`}},
		"sasl no mechanism": {func(k *KafkaOutput) { k.SASL = &KafkaSASL{Username: "u", Password: "p"} },
			[]string{"kafka.sasl.mechanism: missing (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"}},
		"sasl no credentials": {func(k *KafkaOutput) { k.SASL = &KafkaSASL{Mechanism: "PLAIN"} },
			[]string{"kafka.sasl.username: required with sasl", "kafka.sasl.password: required with sasl"}},
	} {
		t.Run(name, func(t *testing.T) {
			k := validKafka()
			tc.edit(&k)
			err := k.Validate()
			if err == nil {
				t.Fatalf("validates")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in\n%v", w, err)
				}
			}
			if n := len(err.(Errors)); n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
	// Good combinations.
	for name, edit := range map[string]func(k *KafkaOutput){
		"templates": func(k *KafkaOutput) { k.Topic = "logs.{tag[0]}-{field:kubernetes.namespace_name}_{tag}" },
		"raw":       func(k *KafkaOutput) { k.Format, k.RawKey = "raw", "message" },
		"no time":   func(k *KafkaOutput) { k.TimeKey, k.TagKey, k.TagHeader = "", "tag", "" },
		"headers": func(k *KafkaOutput) {
			k.Headers = []KafkaHeader{{Name: "env", Value: "prod"}, {Name: "container", Field: "container_name"}}
		},
		"acks leader":  func(k *KafkaOutput) { k.Acks, k.Idempotent = "leader", ptr(false) },
		"acks none":    func(k *KafkaOutput) { k.Acks, k.Idempotent = "none", ptr(false) },
		"gzip 9":       func(k *KafkaOutput) { k.Compression, k.CompressionLevel = "gzip", 9 },
		"zstd fastest": func(k *KafkaOutput) { k.CompressionLevel = 1 },
		"lz4":          func(k *KafkaOutput) { k.Compression = "lz4" },
		"linger":       func(k *KafkaOutput) { k.Linger = 20 * time.Millisecond },
		"tls":          func(k *KafkaOutput) { k.TLS = &TLS{Enabled: true, CAFile: "/ca.pem", ServerName: "kafka"} },
		"scram":        func(k *KafkaOutput) { k.SASL = &KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"} },
		"key":          func(k *KafkaOutput) { k.KeyField = "kubernetes.pod_name" },
		"message 512":  func(k *KafkaOutput) { k.MaxMessageBytes = 512 },
	} {
		k := validKafka()
		edit(&k)
		if err := k.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseKafkaTopic(t *testing.T) {
	parts, err := ParseKafkaTopic("logs.{tag[1]}-{field:log_type}{tag}x")
	if err != nil {
		t.Fatal(err)
	}
	want := []KafkaTopicPart{
		{Kind: KafkaTopicText, Text: "logs."}, {Kind: KafkaTopicTag, N: 1}, {Kind: KafkaTopicText, Text: "-"},
		{Kind: KafkaTopicField, Text: "log_type"}, {Kind: KafkaTopicTag, N: -1}, {Kind: KafkaTopicText, Text: "x"},
	}
	if len(parts) != len(want) {
		t.Fatalf("%+v", parts)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("part %d: %+v, want %+v", i, parts[i], want[i])
		}
	}
	for _, bad := range []string{"{tag[-1]}", "{tag[01]}", "{tag[64]}", "a}", "{}", "a b"} {
		if _, err := ParseKafkaTopic(bad); err == nil {
			t.Errorf("%q parses", bad)
		}
	}
}

// TestKafkaFile: a kafka output in a config file decodes with its
// defaults, and its problems carry the file's lines.
func TestKafkaFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "agent.yml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "data_dir: " + dir + "\ninputs:\n  - {id: in, type: forward, listen: 127.0.0.1:24224}\noutputs:\n"
	c, err := Load(write(head + `  - id: k
    type: kafka
    brokers: [kafka-1:9092]
    topic: logs-{field:log_type}
    sasl: {mechanism: SCRAM-SHA-256, username: agent, password: s3cret}
default_output: k
`))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Outputs[0].Spec().(*KafkaOutput)
	if k.Topic != "logs-{field:log_type}" || k.Compression != "zstd" || k.TagHeader != "tag" || !*k.Idempotent || k.Linger != 0 || k.MaxBatchEvents != 5000 {
		t.Errorf("decoded %+v", k)
	}
	_, err = Load(write(head + `  - id: k
    type: kafka
    brokers: [kafka-1]
    acks: leader
default_output: k
`))
	if err == nil {
		t.Fatal("bad kafka section loads")
	}
	for _, w := range []string{`:7: outputs[0].kafka.brokers[0]: invalid broker "kafka-1"`, `:8: outputs[0].kafka.acks: the idempotent producer needs acks all`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}

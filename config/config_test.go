package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testEnv is the environment the testdata files are parsed with.
var testEnv = map[string]string{
	"SLUICE_SHARED_KEY":     "shared-KEY-value-1",
	"SLUICE_ALICE_PASSWORD": "alice-PW-value-2",
	"SLUICE_NODE_PASSWORD":  "node-PW-value-3",
	"ALICE_PASSWORD":        "alice-PW-value-4",
	"NODE_PASSWORD":         "node-PW-value-5",
	"SHARED_KEY":            "shared-KEY-value-6",
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func parseFile(t testing.TB, name string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return ParseWithEnv(data, name, lookupIn(testEnv))
}

func mustParseFile(t testing.TB, name string) *Config {
	t.Helper()
	c, err := parseFile(t, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yml")
	if err != nil || len(files) < 4 {
		t.Fatalf("good fixtures: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c := mustParseFile(t, filepath.Base(f))
			if err := c.Validate(); err != nil {
				t.Errorf("Validate after Parse: %v", err)
			}
		})
	}
}

// expectedErrors lists every problem each bad fixture must produce, exactly
// as printed. A file must produce these and no others.
var expectedErrors = []struct {
	file   string
	errMsg string
}{
	{"yaml_syntax.bad.yml", "yaml_syntax.bad.yml:3: invalid YAML: mapping values are not allowed in this context"},
	{"yaml_env_flow_mapping.bad.yml", `yaml_env_flow_mapping.bad.yml:7: invalid YAML: did not find expected ',' or '}' (hint: quote "${SLUICE_MAX_BYTES}" inside { } or [ ])`},
	{"yaml_env_flow_sequence.bad.yml", `yaml_env_flow_sequence.bad.yml:7: invalid YAML: did not find expected ',' or '}' (hint: quote "${AGGREGATOR}" inside { } or [ ])`},
	{"yaml_env_flow_multiline.bad.yml", `yaml_env_flow_multiline.bad.yml:10: invalid YAML: did not find expected ',' or '}' in the flow mapping { } that starts at line 7 (hint: quote "${SLUICE_CHUNK_BYTES:-1MiB}" inside { } or [ ])`},
	{"yaml_env_quoted.bad.yml", `yaml_env_quoted.bad.yml:7: outputs[0].forward.servers[0].address: environment variable "SLUICE_UNSET_AGGREGATOR" is not set`},
	{"yaml_env_quoted.bad.yml", `yaml_env_quoted.bad.yml:7: outputs[0].forward.servers[1].address: environment variable "SLUICE_UNSET_STANDBY" is not set`},
	{"yaml_nested.bad.yml", `yaml_nested.bad.yml:11: invalid YAML: did not find expected key`},
	{"yaml_unclosed.bad.yml", `yaml_unclosed.bad.yml:1: invalid YAML: found unexpected end of stream`},
	{"yaml_alias.bad.yml", `yaml_alias.bad.yml:8: invalid YAML: unknown anchor 'bufer' referenced`},
	{"multi_doc.bad.yml", "multi_doc.bad.yml:5: multiple YAML documents are not supported"},
	{"not_mapping.bad.yml", "not_mapping.bad.yml:1: expected a mapping, got a list"},
	{"empty.bad.yml", "empty.bad.yml: inputs: at least one input is required"},
	{"empty.bad.yml", "empty.bad.yml: outputs: at least one output is required"},

	{"unknown_field.bad.yml", `unknown_field.bad.yml:1: data_dri: unknown field "data_dri" (did you mean "data_dir"?)`},
	{"unknown_field.bad.yml", `unknown_field.bad.yml:5: inputs[0].docker.rooot: unknown field "rooot" (did you mean "root"?)`},
	{"unknown_field.bad.yml", `unknown_field.bad.yml:9: inputs[1].forward.servers: unknown field "servers"`},
	{"unknown_field.bad.yml", `unknown_field.bad.yml:13: outputs[0].stdout.servers: unknown field "servers" (it belongs to type forward, not stdout)`},
	{"unknown_field.bad.yml", `unknown_field.bad.yml:19: outputs[1].forward.servers[0].wieght: unknown field "wieght" (did you mean "weight"?)`},
	{"unknown_field.bad.yml", `unknown_field.bad.yml:21: outputs[1].buffer.max_byte: unknown field "max_byte" (did you mean "max_bytes"?)`},
	{"unknown_field.bad.yml", `unknown_field.bad.yml:23: outputs[1].forward.tls.cert: unknown field "cert" (did you mean "cert_file"?)`},
	{"unknown_field.bad.yml", `unknown_field.bad.yml:27: routes[0].contine: unknown field "contine" (did you mean "continue"?)`},

	{"misplaced.bad.yml", `misplaced.bad.yml:4: inputs[0].docker.docker: unknown field "docker" (the keys of type docker go inline, next to id and type)`},
	{"misplaced.bad.yml", `misplaced.bad.yml:9: outputs[0].stdout.max_bytes: unknown field "max_bytes" (it belongs under buffer)`},
	{"misplaced.bad.yml", `misplaced.bad.yml:13: outputs[1].file.forward: unknown field "forward" (the keys of type forward go inline, next to id and type)`},

	{"duplicate_key.bad.yml", `duplicate_key.bad.yml:5: inputs[0].tag: duplicate key "tag" (first at line 4)`},
	{"duplicate_key.bad.yml", `duplicate_key.bad.yml:9: outputs: duplicate key "outputs" (first at line 6)`},

	{"wrong_type.bad.yml", `wrong_type.bad.yml:1: log_level: expected a string, got a list`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:5: inputs[0].docker.parse_json: invalid boolean "maybe" (want true or false)`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:6: inputs[0].docker.max_line_bytes: invalid size "lots"`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:9: inputs[1].forward.max_connections: invalid integer "many"`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:10: inputs[1].forward.partial_timeout: expected a duration such as 5s, got a mapping`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:11: inputs[2]: expected a mapping with id and type, got "just-a-string"`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:15: outputs[0].forward.servers: expected a list, got "10.0.0.5:24224"`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:18: outputs[1].buffer: expected a mapping, got "1GiB"`},
	{"wrong_type.bad.yml", `wrong_type.bad.yml:21: routes[0].outputs: expected a list, got "out"`},

	{"invalid_size.bad.yml", `invalid_size.bad.yml:14: outputs[1].buffer.max_bytes: invalid size "12XB"`},
	{"invalid_size.bad.yml", `invalid_size.bad.yml:15: outputs[1].buffer.segment_bytes: invalid size "-5MiB"`},
	{"invalid_size.bad.yml", `invalid_size.bad.yml:16: outputs[1].buffer.chunk_bytes: invalid size "1e30GiB": too large`},

	{"duration.bad.yml", `duration.bad.yml:1: shutdown_grace: must be positive, got 0s`},
	{"duration.bad.yml", `duration.bad.yml:5: inputs[0].docker.poll_interval: invalid duration "5" (want a number with a unit, e.g. 500ms, 5s, 1m)`},
	{"duration.bad.yml", `duration.bad.yml:6: inputs[0].docker.checkpoint_interval: must be positive, got -1s`},
	{"duration.bad.yml", `duration.bad.yml:12: outputs[0].forward.ack_timeout: must be positive, got 0s`},
	{"duration.bad.yml", `duration.bad.yml:14: outputs[0].forward.retry_max: 5s is less than retry_initial (10s)`},

	{"component_type.bad.yml", `component_type.bad.yml:2: inputs[0].type: missing (want docker, forward or cri)`},
	{"component_type.bad.yml", `component_type.bad.yml:5: inputs[1].type: unknown input type "kafka" (want docker, forward or cri)`},
	{"component_type.bad.yml", `component_type.bad.yml:9: outputs[0].type: unknown output type "splunk" (want forward, file, stdout, s3, cloudwatch_logs, kinesis, firehose, elasticsearch or kafka)`},

	{"ids.bad.yml", `ids.bad.yml:2: inputs[0].id: invalid id "a/b": use letters, digits, '_', '.' and '-' (it names a directory)`},
	{"ids.bad.yml", `ids.bad.yml:4: inputs[1].id: invalid id "..": use letters, digits, '_', '.' and '-' (it names a directory)`},
	{"ids.bad.yml", `ids.bad.yml:6: inputs[2].id: missing`},
	{"ids.bad.yml", `ids.bad.yml:12: outputs[1].id: duplicate id "same", already used by outputs[0].id (line 10)`},
	{"ids.bad.yml", `ids.bad.yml:14: outputs[2].id: invalid id "has space": use letters, digits, '_', '.' and '-' (it names a directory)`},

	{"routes.bad.yml", `routes.bad.yml:8: routes[0].match: pattern "app.{a,b": unclosed '{'`},
	{"routes.bad.yml", `routes.bad.yml:10: routes[1].match: pattern "web.*}": unmatched '}'`},
	{"routes.bad.yml", `routes.bad.yml:11: routes[1].outputs[0]: unknown output "ap" (did you mean "app"?)`},
	{"routes.bad.yml", `routes.bad.yml:12: routes[2].match: empty pattern`},
	{"routes.bad.yml", `routes.bad.yml:13: routes[2].outputs: at least one output is required`},
	{"routes.bad.yml", `routes.bad.yml:15: routes[3].value: set without field`},
	{"routes.bad.yml", `routes.bad.yml:16: routes[3].outputs[1]: unknown output "nowhere"`},
	{"routes.bad.yml", `routes.bad.yml:17: default_output: unknown output "debug"`},

	{"port_conflict.bad.yml", `port_conflict.bad.yml:8: inputs[1].forward.listen: address "0.0.0.0:24224" conflicts with "127.0.0.1:24224" of inputs[0].forward.listen (line 5)`},
	{"port_conflict.bad.yml", `port_conflict.bad.yml:12: inputs[2].forward.listen: address "localhost:24226" conflicts with "127.0.0.1:24226" of metrics_addr (line 1)`},

	{"path_conflict.bad.yml", `path_conflict.bad.yml:7: inputs[1].forward.unix: path "/run//fluent.sock" is also used by inputs[0].forward.unix (line 4)`},
	{"path_conflict.bad.yml", `path_conflict.bad.yml:14: outputs[1].file.path: path "/var/log/out.jsonl" is also used by outputs[0].file.path (line 11)`},
	{"path_conflict.bad.yml", `path_conflict.bad.yml:17: outputs[2].file.path: path "/run/fluent.sock" is also used by inputs[0].forward.unix (line 4)`},
	{"path_conflict.bad.yml", `path_conflict.bad.yml:18: outputs[3].file.path: missing`},

	{"buffer.bad.yml", `buffer.bad.yml:9: outputs[0].buffer.segment_bytes: 8MiB is more than half of max_bytes (10MiB)`},
	{"buffer.bad.yml", `buffer.bad.yml:14: outputs[1].buffer.chunk_bytes: 8MiB is larger than segment_bytes (4MiB)`},
	{"buffer.bad.yml", `buffer.bad.yml:18: outputs[2].buffer.max_bytes: must be positive, got 0`},
	{"buffer.bad.yml", `buffer.bad.yml:19: outputs[2].buffer.fsync_interval: must be positive, got 0s`},
	{"buffer.bad.yml", `buffer.bad.yml:23: outputs[3].buffer.max_bytes: 2MiB is too small: a queue holds at least two segments, and each must hold the longest line an input accepts (inputs[0].docker.max_line_bytes: 1MiB) plus 64KiB for the rest of its event; set max_bytes to at least 2176KiB (or lower max_line_bytes, or set segment_bytes)`},

	{"enums.bad.yml", `enums.bad.yml:1: log_level: invalid value "verbose" (want debug, info, warn or error)`},
	{"enums.bad.yml", `enums.bad.yml:10: outputs[0].forward.compress: invalid value "zstd" (want none or gzip)`},
	{"enums.bad.yml", `enums.bad.yml:12: outputs[0].buffer.overflow: invalid value "drop_newest" (want drop_oldest or block)`},
	{"enums.bad.yml", `enums.bad.yml:13: outputs[0].buffer.fsync: invalid value "never" (want always or interval)`},

	{"compress_level.bad.yml", `compress_level.bad.yml:8: outputs[0].forward.compress_level: must be between 1 and 9, got 0`},
	{"compress_level.bad.yml", `compress_level.bad.yml:13: outputs[1].forward.compress_level: must be between 1 and 9, got 10`},

	{"servers.bad.yml", `servers.bad.yml:5: outputs[0].forward.servers: at least one server is required`},
	{"servers.bad.yml", `servers.bad.yml:10: outputs[1].forward.servers: every server is a standby; at least one must be active`},
	{"servers.bad.yml", `servers.bad.yml:15: outputs[2].forward.servers[0].address: invalid address "10.0.0.5" (want host:port or unix:///path)`},
	{"servers.bad.yml", `servers.bad.yml:16: outputs[2].forward.servers[1].address: invalid address "unix://relative.sock" (want host:port or unix:///path)`},
	{"servers.bad.yml", `servers.bad.yml:17: outputs[2].forward.servers[2].address: invalid address ":24224" (want host:port or unix:///path)`},
	{"servers.bad.yml", `servers.bad.yml:19: outputs[2].forward.servers[3].weight: must not be negative, got -1`},
	{"servers.bad.yml", `servers.bad.yml:20: outputs[2].forward.servers[4].address: invalid address "10.0.0.7:99999" (want host:port or unix:///path)`},
	{"servers.bad.yml", `servers.bad.yml:24: outputs[3].forward.servers: every active server has weight 0; at least one needs a positive weight`},
	{"servers.bad.yml", `servers.bad.yml:30: outputs[4].forward.servers[1].address: duplicate address "10.0.0.9:24224", already used by outputs[4].forward.servers[0].address (line 29)`},

	{"tls.bad.yml", `tls.bad.yml:5: inputs[0].forward.tls.cert_file: required for a TLS server (with key_file)`},
	{"tls.bad.yml", `tls.bad.yml:10: inputs[1].forward.tls.ca_file: required when client_auth is set`},
	{"tls.bad.yml", `tls.bad.yml:19: outputs[0].forward.tls.key_file: required when cert_file is set`},
	{"tls.bad.yml", `tls.bad.yml:21: outputs[0].forward.tls.client_auth: only valid for inputs`},
	{"tls.bad.yml", `tls.bad.yml:26: outputs[1].forward.tls.cert_file: required when key_file is set`},

	{"security.bad.yml", `security.bad.yml:5: inputs[0].forward.security.shared_key: required when users are set`},
	{"security.bad.yml", `security.bad.yml:9: inputs[0].forward.security.users[1].username: duplicate user "alice", already defined by inputs[0].forward.security.users[0] (line 7)`},
	{"security.bad.yml", `security.bad.yml:11: inputs[0].forward.security.users[2].username: missing`},
	{"security.bad.yml", `security.bad.yml:19: outputs[0].forward.servers[1].password: required when username is set`},
	{"security.bad.yml", `security.bad.yml:24: outputs[0].forward.security.users: only valid for inputs (an output sets username and password per server)`},
	{"security.bad.yml", `security.bad.yml:30: outputs[1].forward.servers[0].username: user authentication needs a security section with shared_key`},
	{"security.bad.yml", `security.bad.yml:36: outputs[2].forward.security.shared_key: required when security is set`},

	{"tag_template.bad.yml", `tag_template.bad.yml:4: inputs[0].docker.tag: unknown placeholder "{nmae}" (want {name}, {id}, {short_id}, {stream}, {label:KEY} or {field:KEY})`},
	{"tag_template.bad.yml", `tag_template.bad.yml:7: inputs[1].docker.tag: unclosed "{" in "docker.{name"`},
	{"tag_template.bad.yml", `tag_template.bad.yml:10: inputs[2].docker.tag: placeholder "{tag}" is only valid in a forward input's tag`},
	{"tag_template.bad.yml", `tag_template.bad.yml:13: inputs[3].docker.tag: placeholder "{label:}" needs a key, e.g. {label:app}`},
	{"tag_template.bad.yml", `tag_template.bad.yml:16: inputs[4].docker.tag: must not be empty`},
	{"tag_template.bad.yml", `tag_template.bad.yml:19: inputs[5].forward.tag: unknown placeholder "{nope}" (want {tag}, {name}, {id}, {short_id}, {stream}, {label:KEY} or {field:KEY})`},

	{"env.bad.yml", `env.bad.yml:1: data_dir: environment variable "SLUICE_UNSET_DATA_DIR" is not set`},
	{"env.bad.yml", `env.bad.yml:5: inputs[0].docker.root: environment variables "SLUICE_UNSET_A", "SLUICE_UNSET_B" are not set`},
	{"env.bad.yml", `env.bad.yml:6: inputs[0].docker.tag: unclosed "${" (write "$${" for a literal "${")`},
	{"env.bad.yml", `env.bad.yml:12: outputs[0].buffer.segment_bytes: invalid environment variable name "1BAD" in ${...}`},

	{"forward_input.bad.yml", `forward_input.bad.yml:4: inputs[0].forward.listen: invalid address "24224" (want host:port)`},
	{"forward_input.bad.yml", `forward_input.bad.yml:7: inputs[1].forward.listen: no listener: set listen, unix or both`},
	{"forward_input.bad.yml", `forward_input.bad.yml:11: inputs[2].forward.unix_mode: invalid file mode "999" (want octal, e.g. 0660)`},
	{"forward_input.bad.yml", `forward_input.bad.yml:15: inputs[3].forward.max_connections: must be positive, got 0`},
	{"forward_input.bad.yml", `forward_input.bad.yml:16: inputs[3].forward.max_message_bytes: must be positive, got 0`},

	{"null_items.bad.yml", `null_items.bad.yml:2: inputs[0]: empty list item`},
	{"null_items.bad.yml", `null_items.bad.yml:10: routes[0].outputs[1]: empty list item`},

	{"limits.bad.yml", `limits.bad.yml:4: inputs[0].docker.max_line_bytes: must be positive, got 0`},
	{"limits.bad.yml", `limits.bad.yml:9: outputs[0].forward.max_in_flight: must be positive, got 0`},
	{"limits.bad.yml", `limits.bad.yml:10: outputs[0].forward.max_retries: must not be negative, got -1`},
	{"limits.bad.yml", `limits.bad.yml:11: outputs[0].forward.heartbeat_interval: must be positive, got -1s`},
}

func TestBadFiles(t *testing.T) {
	want := map[string][]string{}
	for _, e := range expectedErrors {
		want[e.file] = append(want[e.file], e.errMsg)
	}
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if want[filepath.Base(f)] == nil {
			t.Errorf("%s has no entry in expectedErrors", f)
		}
	}
	for file, msgs := range want {
		t.Run(file, func(t *testing.T) {
			c, err := parseFile(t, file)
			if err == nil {
				t.Fatalf("parsed without error: %+v", c)
			}
			if c != nil {
				t.Errorf("got a config along with the error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want Errors", err)
			}
			for _, m := range msgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("missing error\n  %s\ngot:\n%v", m, err)
				}
			}
			if len(es) != len(msgs) {
				t.Errorf("got %d problems, want exactly %d:\n%v", len(es), len(msgs), err)
			}
			for _, e := range es {
				if e.File != file {
					t.Errorf("problem %q names file %q", e.Msg, e.File)
				}
			}
		})
	}
}

func TestFullGood(t *testing.T) {
	c := mustParseFile(t, "full.good.yml")
	want := &Config{
		DataDir:       "/srv/sluice",
		LogLevel:      "debug",
		MetricsAddr:   "127.0.0.1:9880",
		ShutdownGrace: 45 * time.Second,
		File:          "full.good.yml",
		Inputs: []Input{
			{ID: "containers", Type: "docker", Line: 8, Docker: &DockerInput{
				Root: "/mnt/docker/containers",
				Tag:  "k8s.{label:app}.{name}.{short_id}.{id}.{stream}.{field:level}",
				Parser: &Parser{Type: "regex", Pattern: `^(?P<ts>\S+) (?P<level>[A-Z]+) (?P<code>\d+) (?P<msg>.*)$`,
					Types: []ParserType{{Field: "code", Type: "int"}}, TimeKey: "ts", TimeLayout: "rfc3339nano",
					TimeZone: "Europe/Berlin", KeepTimeKey: true},
				Multiline: &Multiline{Rules: []string{"java", "python"},
					Custom:       []MultilineRule{{Name: "app", Start: `^\d{4}-`, Continue: `^\s`}},
					FlushTimeout: 2 * time.Second, MaxBytes: 128 << 10, MaxLines: 500},
				MaxLineBytes:        256 << 10,
				IncludeLabels:       ptr(false),
				PollInterval:        2 * time.Second,
				CheckpointInterval:  500 * time.Millisecond,
				ReadFromHead:        ptr(false),
				PartialFlushTimeout: 3 * time.Second,
				RotateWait:          7 * time.Second,
				MaxOpenFiles:        500,
			}},
			{ID: "driver", Type: "forward", Line: 35, Forward: &ForwardInput{
				Listen:               "0.0.0.0:24224",
				Unix:                 "/var/run/fluent.sock",
				UnixMode:             ptr(uint32(0o660)),
				Tag:                  "fwd.{tag}",
				Parser:               &Parser{Type: "logfmt"},
				MaxMessageBytes:      8 << 20,
				MaxDecompressedBytes: 32 << 20, MaxBufferedBytes: 48 << 20, BufferWaitTimeout: 7 * time.Second,
				MaxConnections:          256,
				MaxUnixConnections:      512,
				MaxConnectionsPerSource: 64,
				IdleTimeout:             2 * time.Minute,
				HandshakeTimeout:        5 * time.Second,
				PartialTimeout:          10 * time.Second,
				MaxPartialBytes:         2 << 20,
				AckAfter:                "write",
				UnixGroup:               "docker",
				InsecureListen:          true,
				TLS: &TLS{Enabled: true, CAFile: "/etc/sluice/ca.pem", CertFile: "/etc/sluice/server.pem",
					KeyFile: "/etc/sluice/server.key", ClientAuth: true},
				Security: &Security{SelfHostname: "node-1", SharedKey: "shared-KEY-value-1", Users: []User{
					{Username: "alice", Password: "alice-PW-value-2"},
					{Username: "bob", Password: "literal-bob-password"},
				}},
			}},
			{ID: "pods", Type: "cri", Line: 71, CRI: &CRIInput{
				Root: "/mnt/pods", Tag: "kube.{namespace}.{pod}.{pod_id}.{container}.{stream}.{field:level}",
				Parser: &Parser{Type: "klog"}, Multiline: &Multiline{Rules: []string{"go"}},
				MaxLineBytes: 512 << 10, PollInterval: 3 * time.Second,
				CheckpointInterval: 250 * time.Millisecond, ReadFromHead: ptr(false), PartialFlushTimeout: 2 * time.Second,
				RotateWait: 9 * time.Second, MaxOpenFiles: 2000,
				IncludeNamespaces: []string{"team-*", "prod"}, ExcludeNamespaces: []string{"kube-system"},
				Kubernetes: &CRIKubernetes{Enabled: ptr(true), APIServer: "https://10.0.0.1:6443", NodeName: "node-1",
					TokenFile: "/run/sa/token", CAFile: "/run/sa/ca.crt", MetadataWait: 3 * time.Second, IncludeLabels: ptr(true),
					IncludeAnnotations: ptr(false), NamespaceLabels: ptr(true), OwnerReferences: true, ExcludeAnnotation: "example.com/exclude"},
			}},
		},
		Outputs: []Output{
			{ID: "aggregator", Type: "forward", Line: 89,
				Buffer: Buffer{MaxBytes: 2 << 30, SegmentBytes: 16 << 20, Overflow: "block", Fsync: "always",
					FsyncInterval: 2 * time.Second, ChunkBytes: 512 << 10},
				Forward: &ForwardOutput{
					Servers: []ForwardServer{
						{Address: "10.0.0.5:24224", Weight: 100, Username: "node", Password: "node-PW-value-3"},
						{Address: "unix:///var/run/aggregator.sock", Weight: 0, Standby: true},
					},
					Compress: "gzip", CompressLevel: 6, RequireAck: ptr(false),
					AckTimeout: 10 * time.Second, MaxInFlight: 4, ConnectTimeout: 2 * time.Second,
					HeartbeatInterval: 5 * time.Second, RetryInitial: 500 * time.Millisecond,
					RetryMax: 2 * time.Minute, MaxRetries: 10,
					TLS: &TLS{Enabled: true, CAFile: "/etc/sluice/ca.pem", CertFile: "/etc/sluice/client.pem",
						KeyFile: "/etc/sluice/client.key", ServerName: "aggregator.internal"},
					Security: &Security{SelfHostname: "node-1", SharedKey: "shared-KEY-value-1"},
					Discovery: &ForwardDiscovery{SRV: "_fluentd._tcp.aggregators.ns.svc.cluster.local",
						Interval: 45 * time.Second, MaxServers: 4},
				}},
			{ID: "archive", Type: "file", Line: 130, Buffer: DefaultBuffer(),
				Delivery: Delivery{Workers: 1, FlushInterval: 2 * time.Second, MaxInFlightBytes: 16 << 20,
					RetryInitial: 2 * time.Second, RetryMax: 30 * time.Second, MaxRetries: 5,
					DeadLetter: DeadLetter{Enabled: ptr(false), MaxBytes: 64 << 20}},
				File: &FileOutput{Path: "/var/log/sluice/archive.jsonl"}},
			{ID: "debug", Type: "stdout", Line: 141, Buffer: withMax(DefaultBuffer(), 64<<20),
				Stdout: &StdoutOutput{}},
			{ID: "search", Type: "elasticsearch", Line: 144, Buffer: DefaultBuffer(),
				Elasticsearch: &ElasticsearchOutput{
					Hosts: []string{"https://es-1.internal:9200", "https://es-2.internal:9200/prefix"},
					Index: "logs-{tag}-{field:level}-%Y.%m.%d", OpType: "create", IDMode: "stable", Pipeline: "logs",
					TimeKey: "@timestamp", TimeFormat: "epoch_millis", TagKey: "tag", MaxBulkBytes: 10 << 20, MaxBulkEvents: 2000,
					Compress: "gzip", CompressLevel: 3, Headers: []HTTPHeader{{Name: "X-Tenant", Value: "shared-KEY-value-1"}},
					RequestTimeout: 30 * time.Second, HostBackoff: 5 * time.Second,
					TLS: &TLS{CAFile: "/etc/sluice/es-ca.pem", ServerName: "es.internal"},
					AWS: &AWSSigning{Region: "eu-west-1", Service: "es", RoleARN: "arn:aws:iam::123456789012:role/sluice"},
				}},
			{ID: "s3archive", Type: "s3", Line: 168, Buffer: DefaultBuffer(),
				S3: &S3Output{
					Bucket: "logs-archive", Region: "eu-west-1", Endpoint: "https://s3.eu-west-1.amazonaws.com", ForcePathStyle: true,
					Key: "archive/{tag[0]}/dt=%Y-%m-%d/{hostname}-{unique}{ext}", Format: "raw", TimeKey: "ts", TimeFormat: "epoch_millis",
					TagKey: "", RawKey: "message", Compression: "zstd", ContentType: "text/plain", SetContentEncoding: true,
					MaxObjectBytes: 32 << 20, MaxOpenObjects: 16, MultipartThreshold: 8 << 20, PartBytes: 5 << 20,
					AbortAbandonedUploads: ptr(false), AbandonedUploadAge: 2 * time.Hour, RequestTimeout: time.Minute,
					StorageClass: "STANDARD_IA", SSE: "aws:kms", KMSKeyID: "alias/logs", Checksum: "CRC32C",
					AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "shared-KEY-value-1",
					RoleARN: "arn:aws:iam::123456789012:role/logs", ExternalID: "ext-1",
				}},
			{ID: "bus", Type: "kafka", Line: 199, Buffer: DefaultBuffer(),
				Kafka: &KafkaOutput{
					Brokers: []string{"kafka-1:9092", "kafka-2:9092"}, Topic: "logs-{field:log_type}", KeyField: "container_id",
					Format: "json", RawKey: "log", TimeKey: "ts", TimeFormat: "epoch_millis", TagKey: "tag", TagHeader: "fluent_tag",
					Headers: []KafkaHeader{{Name: "cluster", Value: "prod"}, {Name: "pod", Field: "kubernetes.pod_name"}},
					Acks:    "all", Idempotent: ptr(true), Compression: "gzip", CompressionLevel: 4,
					MaxMessageBytes: 2 << 20, MaxBatchBytes: 8 << 20, MaxBatchEvents: 20000, Linger: 10 * time.Millisecond,
					RequestTimeout: 20 * time.Second, DeliveryTimeout: 2 * time.Minute, DialTimeout: 5 * time.Second,
					ClientID: "sluice-node-1", AutoCreateTopics: ptr(false),
					TLS:  &TLS{Enabled: true, CAFile: "/etc/sluice/kafka-ca.pem"},
					SASL: &KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "sluice", Password: "shared-KEY-value-1"},
				}},
			{ID: "cwl", Type: "cloudwatch_logs", Line: 228, Buffer: DefaultBuffer(),
				CloudWatchLogs: &CloudWatchLogsOutput{
					LogGroupName: "/sluice/{tag}", LogStreamName: "{hostname}-{tag}", Format: "json", RawKey: "log",
					TimeKey: "", TimeFormat: "rfc3339nano", TagKey: "tag", MaxEventBytes: 200 << 10, MaxBatchEvents: 5000,
					MaxBatchBytes: 512 << 10, CreateLogGroup: ptr(true), CreateLogStream: ptr(false), RetentionInDays: 30,
					LogGroupClass: "STANDARD", RequestTimeout: 30 * time.Second, Region: "eu-west-1",
					Endpoint: "https://logs.eu-west-1.amazonaws.com", AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "shared-KEY-value-1",
					RoleARN: "arn:aws:iam::123456789012:role/logs", ExternalID: "ext-2",
				}},
			{ID: "stream", Type: "kinesis", Line: 253, Buffer: DefaultBuffer(),
				Kinesis: &KinesisOutput{
					StreamName: "logs", PartitionKey: "kubernetes.pod_name", Format: "raw", RawKey: "message", TimeKey: "ts",
					TimeFormat: "epoch_millis", TagKey: "", AppendNewline: ptr(false), MaxRecordBytes: 512 << 10,
					MaxBatchRecords: 250, MaxBatchBytes: 2 << 20, RequestTimeout: 20 * time.Second, Region: "eu-west-1",
				}},
			{ID: "hose", Type: "firehose", Line: 275, Buffer: DefaultBuffer(),
				Firehose: &FirehoseOutput{
					DeliveryStreamName: "logs-hose", Format: "json", RawKey: "log", TimeKey: "@timestamp", TimeFormat: "epoch_seconds",
					TagKey: "tag", Aggregate: true, MaxRecordBytes: 900 << 10, MaxBatchRecords: 400, MaxBatchBytes: 3 << 20,
					RequestTimeout: 15 * time.Second, Region: "us-east-2",
				}},
			{ID: "pool", Type: "forward", Line: 295, Buffer: DefaultBuffer(),
				Forward: func() *ForwardOutput {
					f := DefaultForwardOutput()
					f.Discovery = &ForwardDiscovery{DNS: "aggregators.internal:24224", Interval: time.Minute}
					return &f
				}()},
		},
		Routes: []Route{
			{Match: "fwd.** k8s.{api,web}.*", Outputs: []string{"aggregator", "archive"}, Continue: true, Line: 300},
			{Match: "**", Field: "log_type", Value: "audit", Outputs: []string{"archive"}, Line: 303,
				When: &Condition{All: []Condition{
					{Field: "kubernetes.labels.app", Prefix: ptr("api")},
					{Not: &Condition{Field: "log", Regex: ptr(`type=(debug|trace)\b`)}},
					{Any: []Condition{
						{Field: "stream", Equals: ptr("stderr")},
						{Field: "trace_id", Exists: ptr(true)},
						{Field: "log", Contains: ptr("audit")},
					}},
				}}},
		},
		DefaultOutput: "debug",
		Processors: []Processor{
			{ID: "no-health", Type: "drop", Match: "k8s.**", When: &Condition{Field: "log", Contains: ptr("GET /healthz")}, Line: 317},
			{Type: "add", Fields: []ProcessorField{{Key: "env", Value: "prod"}, {Key: "node", Source: "hostname"}}, Line: 321},
			{Type: "rename", Fields: []ProcessorField{{Key: "msg", To: "message"}}, Line: 325},
			{Type: "remove", Keys: []string{"pad"}, Line: 327},
			{Type: "keep", Keys: []string{"log", "stream", "kubernetes", "message", "env", "node"}, Line: 329},
			{Type: "lift", Key: "kubernetes", Prefix: "k8s_", Line: 331},
			{Type: "nest", Keys: []string{"env", "node"}, Key: "origin", Line: 334},
			{Type: "rewrite_tag", Match: "k8s.**", When: &Condition{Field: "log", Regex: ptr("type=audit")}, Tag: "audit.{tag}", Line: 337},
			{ID: "per-container", Type: "throttle", Per: "container", Rate: 1000, Burst: 2000, Sample: 100, Line: 341},
			{Type: "redact", Keys: []string{"log", "message"}, Patterns: []string{"email", "credit_card", "jwt"},
				Custom: []string{`password=\S+`}, Mask: "***", Line: 347},
			{Type: "parse", Match: "fwd.**", Key: "message", Parser: &Parser{Type: "syslog", TimeZone: "UTC"}, Line: 352},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("full.good.yml differs at %s:\n%s\nwant\n%s", diff(c, want), spew(c), spew(want))
	}
}

func withMax(b Buffer, n ByteSize) Buffer {
	b.MaxBytes = n
	return b
}

// spew shows a value in full, pointers followed and secrets included,
// for test failure messages only.
func spew(v any) string {
	var b strings.Builder
	spewTo(&b, reflect.ValueOf(v))
	return b.String()
}

func spewTo(b *strings.Builder, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		spewTo(b, v.Elem())
	case reflect.Struct:
		b.WriteString(v.Type().Name() + "{")
		for i := 0; i < v.NumField(); i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(v.Type().Field(i).Name + ":")
			spewTo(b, v.Field(i))
		}
		b.WriteString("}")
	case reflect.Slice:
		b.WriteString("[")
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			spewTo(b, v.Index(i))
		}
		b.WriteString("]")
	case reflect.String:
		b.WriteString(strconv.Quote(v.String()))
	default:
		fmt.Fprint(b, v.Interface())
	}
}

func TestDefaults(t *testing.T) {
	c := mustParseFile(t, "minimal.good.yml")
	want := DefaultConfig()
	want.File = "minimal.good.yml"
	want.Inputs = []Input{{ID: "containers", Type: "docker", Docker: ptr(DefaultDockerInput()), Line: 2}}
	want.Outputs = []Output{{ID: "out", Type: "stdout", Buffer: DefaultBuffer(), Stdout: &StdoutOutput{}, Line: 5}}
	if !reflect.DeepEqual(c, &want) {
		t.Errorf("minimal.good.yml differs at %s:\n%s\nwant\n%s", diff(c, &want), spew(c), spew(&want))
	}
	// The documented values, spelled out once more against the functions.
	d := DefaultDockerInput()
	if d.Root != "/var/lib/docker/containers" || d.Tag != "docker.{name}" || d.MaxLineBytes != 1<<20 ||
		!*d.IncludeLabels || !*d.ReadFromHead || d.PollInterval != time.Second ||
		d.CheckpointInterval != time.Second || d.PartialFlushTimeout != 5*time.Second {
		t.Errorf("docker defaults: %s", spew(d))
	}
	f := DefaultForwardInput()
	if f.Listen != "127.0.0.1:24224" || *f.UnixMode != 0o660 || f.MaxMessageBytes != 16<<20 ||
		f.MaxDecompressedBytes != 64<<20 || f.MaxConnections != 1024 || f.PartialTimeout != 5*time.Second ||
		f.MaxPartialBytes != 1<<20 || f.AckAfter != "fsync" || f.MaxUnixConnections != 1024 ||
		f.MaxConnectionsPerSource != 128 || f.IdleTimeout != time.Minute || f.HandshakeTimeout != 10*time.Second ||
		f.MaxBufferedBytes != 0 || f.BufferWaitTimeout != 10*time.Second {
		t.Errorf("forward input defaults: %s", spew(f))
	}
	b := DefaultBuffer()
	if b.MaxBytes != 1<<30 || b.SegmentBytes != 8<<20 || b.Overflow != "drop_oldest" || b.Fsync != "interval" ||
		b.FsyncInterval != time.Second || b.ChunkBytes != 1<<20 {
		t.Errorf("buffer defaults: %s", spew(b))
	}
	o := DefaultForwardOutput()
	if o.Compress != "none" || o.CompressLevel != 1 || !*o.RequireAck || o.AckTimeout != 30*time.Second ||
		o.MaxInFlight != 8 || o.ConnectTimeout != 5*time.Second || o.HeartbeatInterval != time.Second ||
		o.RetryInitial != time.Second || o.RetryMax != time.Minute || o.MaxRetries != 0 ||
		DefaultForwardServer().Weight != 60 {
		t.Errorf("forward output defaults: %s", spew(o))
	}
	if c := DefaultConfig(); c.DataDir != "/var/lib/sluice" || c.LogLevel != "info" || c.ShutdownGrace != 30*time.Second {
		t.Errorf("config defaults: %s", spew(c))
	}
	// Defaults are fresh on every call.
	*DefaultDockerInput().IncludeLabels = false
	if !*DefaultDockerInput().IncludeLabels {
		t.Error("DefaultDockerInput shares its pointers")
	}
}

func TestExampleFile(t *testing.T) {
	c := mustParseFile(t, "example.good.yml")
	app := c.Outputs[0]
	if app.Buffer.MaxBytes != 2<<30 || app.Buffer.SegmentBytes != 8<<20 || app.Buffer.ChunkBytes != 1<<20 {
		t.Errorf("flow-style buffer did not keep the other defaults: %s", spew(app.Buffer))
	}
	if s := app.Forward.Servers; len(s) != 2 || s[0].Weight != 60 || s[1].Weight != 60 || s[0].Standby || !s[1].Standby {
		t.Errorf("servers: %+v", s)
	}
	if app.Forward.Compress != "gzip" || app.Forward.CompressLevel != 1 || !*app.Forward.RequireAck {
		t.Errorf("forward output: %s", spew(app.Forward))
	}
	if dbg := c.Outputs[1]; dbg.Buffer != DefaultBuffer() || dbg.Stdout == nil {
		t.Errorf("stdout output did not get the default buffer: %s", spew(dbg.Buffer))
	}
	if f := c.Inputs[1].Forward; f.Listen != "127.0.0.1:24224" || f.Unix != "/var/run/fluent.sock" {
		t.Errorf("forward input: %s", spew(f))
	}
	if r := c.Routes[1]; r.Field != "log_type" || r.Value != "audit" || !reflect.DeepEqual(r.Outputs, []string{"app", "debug"}) {
		t.Errorf("route: %+v", r)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	c := mustParseFile(t, "anchors.good.yml")
	one, two := c.Outputs[0].Buffer, c.Outputs[1].Buffer
	if one.MaxBytes != 512<<20 || one.Fsync != "always" || one.SegmentBytes != 8<<20 {
		t.Errorf("alias: %s", spew(one))
	}
	if two.MaxBytes != 512<<20 || two.Fsync != "interval" {
		t.Errorf("merge with override: %s", spew(two))
	}
	// Self-referencing and repeated merges terminate.
	for _, doc := range []string{
		"x-a: &a\n  <<: *a\n",
		"x-a: &a {fsync: always}\nx-b: &b {<<: [*a, *a], max_bytes: 64MiB}\n" + minimalTail + "    buffer: {<<: [*b, *a, *b]}\n",
	} {
		_, err := ParseWithEnv([]byte(doc), "m.yml", nil)
		if err != nil && !strings.Contains(err.Error(), "m.yml") {
			t.Errorf("%q: %v", doc, err)
		}
	}
	c2, err := ParseWithEnv([]byte("x-a: &a {fsync: always}\nx-b: &b {<<: [*a, *a], max_bytes: 64MiB}\n"+minimalTail+"    buffer: {<<: [*b, *a, *b]}\n"), "m.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := c2.Outputs[0].Buffer; b.Fsync != "always" || b.MaxBytes != 64<<20 {
		t.Errorf("nested merge: %s", spew(b))
	}
}

const minimalTail = "inputs: [{id: a, type: docker}]\noutputs:\n  - id: o\n    type: stdout\n"

func TestForwardListenDefault(t *testing.T) {
	for name, tc := range map[string]struct{ keys, listen string }{
		"neither":     {"", DefaultListen},
		"unix only":   {"    unix: /run/x.sock\n", ""},
		"listen only": {"    listen: 0.0.0.0:5170\n    insecure_listen: true\n", "0.0.0.0:5170"},
		"both":        {"    listen: 127.0.0.1:5170\n    unix: /run/x.sock\n", "127.0.0.1:5170"},
		"null listen": {"    listen:\n", DefaultListen},
	} {
		t.Run(name, func(t *testing.T) {
			doc := "inputs:\n  - id: f\n    type: forward\n" + tc.keys + "outputs: [{id: o, type: stdout}]\n"
			c, err := ParseWithEnv([]byte(doc), "f.yml", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Inputs[0].Forward.Listen; got != tc.listen {
				t.Errorf("listen = %q, want %q", got, tc.listen)
			}
		})
	}
}

func TestValueSyntax(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml  string
		check func(*Config) bool
	}{
		"octal mode 0o": {"    unix_mode: 0o600\n", func(c *Config) bool { return *c.Inputs[0].Forward.UnixMode == 0o600 }},
		"octal no zero": {"    unix_mode: 640\n", func(c *Config) bool { return *c.Inputs[0].Forward.UnixMode == 0o640 }},
		"quoted mode":   {"    unix_mode: \"0644\"\n", func(c *Config) bool { return *c.Inputs[0].Forward.UnixMode == 0o644 }},
		"plain int size": {"    max_message_bytes: 1048576\n",
			func(c *Config) bool { return c.Inputs[0].Forward.MaxMessageBytes == 1<<20 }},
		"unit int size": {"    max_message_bytes: 2MiB\n",
			func(c *Config) bool { return c.Inputs[0].Forward.MaxMessageBytes == 2<<20 }},
		"bool yes": {"    parse_json: yes\n", func(c *Config) bool { return c.Inputs[0].Forward.ParseJSON }},
	} {
		t.Run(name, func(t *testing.T) {
			doc := "inputs:\n  - id: f\n    type: forward\n" + tc.yaml + "outputs: [{id: o, type: stdout}]\n"
			c, err := ParseWithEnv([]byte(doc), "v.yml", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected value: %s", spew(c.Inputs[0].Forward))
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.yml")
	data, err := os.ReadFile("testdata/example.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != p || len(c.Inputs) != 2 {
		t.Errorf("Load: file %q, %d inputs", c.File, len(c.Inputs))
	}
	if err := os.WriteFile(p, []byte("inputs: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.HasPrefix(err.Error(), p+":1: inputs: expected a list") {
		t.Errorf("Load bad file: %v", err)
	}
	_, err = Load(filepath.Join(dir, "missing.yml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("Load missing file: %v", err)
	}
}

func TestValidateInCode(t *testing.T) {
	c := DefaultConfig()
	c.Inputs = []Input{{ID: "d", Type: "docker", Docker: ptr(DefaultDockerInput())}}
	c.Outputs = []Output{{ID: "o", Type: "stdout", Buffer: DefaultBuffer()}}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	c.Outputs = append(c.Outputs, Output{ID: "f", Type: "forward", Buffer: DefaultBuffer(), Line: 7})
	c.Inputs[0].Docker.MaxLineBytes = 0
	c.Routes = []Route{{Match: "a.*", Outputs: []string{"x"}}}
	err := c.Validate()
	for _, m := range []string{
		"line 7: outputs[1]: type forward without its settings (Output.Forward is nil)",
		"\ninputs[0].docker.max_line_bytes: must be positive, got 0",
		`routes[0].outputs[0]: unknown output "x"`,
	} {
		if err == nil || !strings.Contains(err.Error(), m) {
			t.Errorf("missing %q in\n%v", m, err)
		}
	}
	if es, ok := err.(Errors); !ok || len(es) != 3 {
		t.Errorf("want 3 problems, got %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yml", Line: 3, Path: "x.y", Msg: "bad"}, "a.yml:3: x.y: bad"},
		{Error{File: "a.yml", Path: "x", Msg: "bad"}, "a.yml: x: bad"},
		{Error{Line: 4, Path: "x", Msg: "bad"}, "line 4: x: bad"},
		{Error{Path: "x", Msg: "bad"}, "x: bad"},
		{Error{File: "a.yml", Line: 1, Msg: "bad"}, "a.yml:1: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	es := Errors{{Line: 9, Msg: "b"}, {Msg: "c"}, {Line: 2, Msg: "a"}}.sorted()
	if got := es.Error(); got != "line 2: a\nline 9: b\nc" {
		t.Errorf("sorted: %q", got)
	}
	if n := len(es.Unwrap()); n != 3 {
		t.Errorf("Unwrap: %d", n)
	}
	var e *Error
	if !errors.As(error(es), &e) || e.Msg != "a" {
		t.Errorf("errors.As: %v", e)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rooot", "root"}, {"max_byte", "max_bytes"}, {"lsiten", "listen"}, {"xyz", ""}, {"cert", "cert_file"}, {"max", ""},
	} {
		got := suggest(tc.in, []string{"root", "max_bytes", "max_line_bytes", "listen", "ca_file", "cert_file"})
		if got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// diff returns the path of the first difference between a and b, telling
// nil from empty slices apart, or "".
func diff(a, b any) string { return diffValue(reflect.ValueOf(a), reflect.ValueOf(b), "") }

func diffValue(a, b reflect.Value, path string) string {
	if a.Kind() != b.Kind() {
		return path + ": kind"
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return path + ": nil vs non-nil"
			}
			return ""
		}
		return diffValue(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if d := diffValue(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %v vs nil %v", path, a.IsNil(), b.IsNil())
		}
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: len %d vs %d", path, a.Len(), b.Len())
		}
		for i := 0; i < a.Len(); i++ {
			if d := diffValue(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return fmt.Sprintf("%s: %v vs %v", path, a.Interface(), b.Interface())
	}
	return ""
}

// TestFullFileCoversEveryField keeps full.good.yml exhaustive: every YAML
// key of every config struct (and every component type) appears in it.
func TestFullFileCoversEveryField(t *testing.T) {
	data, err := os.ReadFile("testdata/full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				present[n.Content[i].Value] = true
				if n.Content[i].Value == "type" {
					present["type="+n.Content[i+1].Value] = true
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	seen := map[reflect.Type]bool{}
	var check func(typ reflect.Type)
	check = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for _, f := range fieldsOf(typ) {
			if !present[f.key] {
				t.Errorf("full.good.yml lacks %s.%s", typ.Name(), f.key)
			}
			check(typ.Field(f.index).Type)
		}
	}
	check(reflect.TypeFor[Config]())
	for _, k := range append(append([]kind{}, inputKinds...), outputKinds...) {
		if !present["type="+k.name] {
			t.Errorf("full.good.yml has no component of type %s", k.name)
		}
		check(k.typ)
	}
}

// TestInsecureListen: a forward listener reachable from other hosts with
// neither TLS nor a shared key is refused unless opted in, and the opt-in
// is reported by Warnings.
func TestInsecureListen(t *testing.T) {
	for name, tc := range map[string]struct {
		keys    string
		err     bool
		warning bool
	}{
		"loopback":         {"    listen: 127.0.0.1:5170\n", false, false},
		"localhost":        {"    listen: localhost:5170\n", false, false},
		"ipv6 loopback":    {"    listen: \"[::1]:5170\"\n", false, false},
		"all interfaces":   {"    listen: 0.0.0.0:5170\n", true, false},
		"empty host":       {"    listen: \":5170\"\n", true, false},
		"host address":     {"    listen: 10.1.2.3:5170\n", true, false},
		"with shared_key":  {"    listen: 0.0.0.0:5170\n    security: {self_hostname: n, shared_key: k}\n", false, false},
		"opted in":         {"    listen: 0.0.0.0:5170\n    insecure_listen: true\n", false, true},
		"opt-in, loopback": {"    listen: 127.0.0.1:5170\n    insecure_listen: true\n", false, false},
	} {
		t.Run(name, func(t *testing.T) {
			doc := "inputs:\n  - id: f\n    type: forward\n" + tc.keys + "outputs: [{id: o, type: stdout}]\n"
			c, err := ParseWithEnv([]byte(doc), "f.yml", nil)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "insecure_listen") {
					t.Fatalf("error does not name the opt-in: %v", err)
				}
				return
			}
			if w := c.Warnings(); (len(w) > 0) != tc.warning {
				t.Fatalf("warnings %q, want some: %v", w, tc.warning)
			}
		})
	}
}

// TestForwardDiscovery: discovery may replace servers or join them; exactly
// one of srv and dns, dns with a port.
func TestForwardDiscovery(t *testing.T) {
	for name, tc := range map[string]struct{ keys, err string }{
		"srv only":         {"    discovery: {srv: _fluentd._tcp.agg.ns.svc.cluster.local, interval: 10s}\n", ""},
		"dns only":         {"    discovery: {dns: \"agg.internal:24224\"}\n", ""},
		"with standby":     {"    servers: [{address: \"10.0.0.1:24224\", standby: true}]\n    discovery: {dns: \"agg:24224\"}\n", ""},
		"neither":          {"    discovery: {interval: 10s}\n", "outputs[0].forward.discovery: srv or dns is required"},
		"both":             {"    discovery: {srv: _f._tcp.x, dns: \"x:1\"}\n", "discovery.dns: srv and dns are mutually exclusive"},
		"dns without port": {"    discovery: {dns: agg.internal}\n", "discovery.dns: invalid"},
		"srv with port":    {"    discovery: {srv: \"_f._tcp.x:24224\"}\n", "discovery.srv: invalid record name"},
		"negative":         {"    discovery: {srv: _f._tcp.x, interval: -1s, max_servers: -1}\n", "discovery.max_servers: must not be negative"},
	} {
		t.Run(name, func(t *testing.T) {
			doc := "inputs: [{id: a, type: docker}]\noutputs:\n  - id: o\n    type: forward\n" + tc.keys
			c, err := ParseWithEnv([]byte(doc), "f.yml", nil)
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %v, want an error containing %q", err, tc.err)
			case tc.err == "" && c.Outputs[0].Forward.Discovery == nil:
				t.Fatal("discovery not decoded")
			}
		})
	}
}

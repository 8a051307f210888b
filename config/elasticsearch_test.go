package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// esFile is a config whose only output is elasticsearch with the given
// keys (indented for the output's mapping); the output starts at line 5.
func esFile(keys string) []byte {
	return []byte(`data_dir: /tmp/sluice
inputs:
  - {id: docker, type: docker}
outputs:
  - id: es
    type: elasticsearch
` + keys + `
default_output: es
`)
}

func TestElasticsearchDefaults(t *testing.T) {
	c, err := Parse(esFile("    hosts: [http://127.0.0.1:9200]"), "es.yml")
	if err != nil {
		t.Fatal(err)
	}
	got := *c.Outputs[0].Elasticsearch
	want := DefaultElasticsearchOutput()
	want.Hosts = []string{"http://127.0.0.1:9200"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s\nwant %s", spew(got), spew(want))
	}
	if want.Index != "sluice-%Y.%m.%d" || want.OpType != "create" || want.IDMode != "auto" || want.MaxBulkBytes != 5<<20 ||
		want.MaxBulkEvents != 5000 || want.Compress != "gzip" || want.CompressLevel != 1 || want.RequestTimeout != time.Minute ||
		want.HostBackoff != 10*time.Second || want.TimeKey != "@timestamp" || want.TimeFormat != "rfc3339nano" || !want.StableIDs() {
		t.Fatalf("defaults %s", spew(want))
	}

	// A data stream alone drops the default index.
	c, err = Parse(esFile("    hosts: [https://es.example:9200/prefix]\n    data_stream: logs-{tag}-default"), "es.yml")
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Outputs[0].Elasticsearch; e.Index != "" || e.DataStream != "logs-{tag}-default" || !e.StableIDs() {
		t.Fatalf("data stream: %s", spew(e))
	}

	// Every option set: the full form parses (VictoriaLogs headers, AWS).
	_, err = Parse(esFile(`    hosts: [https://a.example:9200, "https://b.example/es/"]
    index: logs-{field:kubernetes.namespace}-%Y.%m.%d.%H
    op_type: index
    id_mode: stable
    pipeline: logs
    time_key: ts
    time_format: epoch_millis
    tag_key: tag
    max_bulk_bytes: 10MiB
    max_bulk_events: 10000
    compress: none
    compress_level: 9
    request_timeout: 30s
    host_backoff: 1s
    headers:
      - {name: VL-Msg-Field, value: log}
      - {name: X-Token, value: abc}
    tls: {ca_file: /etc/ca.pem, server_name: es.example}
    aws: {region: eu-west-1, service: aoss, role_arn: "arn:aws:iam::123456789012:role/logs"}`), "es.yml")
	if err != nil {
		t.Fatal(err)
	}
	if (&ElasticsearchOutput{OpType: "index", IDMode: "auto"}).StableIDs() {
		t.Fatal("auto with op_type index gives stable ids")
	}
}

// TestElasticsearchRejects: wrong values and combinations are reported
// with their field path and line.
func TestElasticsearchRejects(t *testing.T) {
	for _, tc := range []struct {
		keys string
		want []string
	}{
		{"    index: x", []string{
			`es.yml:5: outputs[0].elasticsearch.hosts: at least one host is required`}},
		{"    hosts: [127.0.0.1:9200, 'ftp://x', 'http://u:p@x:9200', 'http://x:9200/_bulk', 'http://x?a=1', 'http://x:0', 'http://x:9200', 'http://x:9200/']", []string{
			`es.yml:7: outputs[0].elasticsearch.hosts[0]: invalid host "127.0.0.1:9200": want an http:// or https:// URL`,
			`outputs[0].elasticsearch.hosts[1]: invalid host "ftp://x": want an http:// or https:// URL`,
			`outputs[0].elasticsearch.hosts[2]: invalid host "http://u:p@x:9200": credentials in the URL: use username and password (or api_key)`,
			`outputs[0].elasticsearch.hosts[3]: invalid host "http://x:9200/_bulk": give the base URL: /_bulk is appended`,
			`outputs[0].elasticsearch.hosts[4]: invalid host "http://x?a=1": no query or fragment allowed`,
			`outputs[0].elasticsearch.hosts[5]: invalid host "http://x:0": invalid port "0"`,
			`outputs[0].elasticsearch.hosts[7]: duplicate host "http://x:9200/", already used by outputs[0].elasticsearch.hosts[6]`}},
		{"    hosts: [http://x]\n    index: logs-%Y.%m.%d\n    data_stream: logs-app-default", []string{
			`es.yml:8: outputs[0].elasticsearch.index: time pattern in index "logs-%Y.%m.%d" together with data_stream: a data stream rolls over on its own; remove index`}},
		{"    hosts: [http://x]\n    index: fixed\n    data_stream: logs-app-default", []string{
			`es.yml:8: outputs[0].elasticsearch.index: index and data_stream are exclusive: remove one`}},
		{"    hosts: [http://x]\n    data_stream: logs-%Y-default\n    op_type: index\n    time_key: ts\n    time_format: epoch_nanos", []string{
			`es.yml:8: outputs[0].elasticsearch.data_stream: time pattern in data_stream "logs-%Y-default": a data stream rolls over on its own`,
			`es.yml:9: outputs[0].elasticsearch.op_type: data streams accept only create, not index`,
			`es.yml:10: outputs[0].elasticsearch.time_key: a data stream needs @timestamp, got "ts"`,
			`es.yml:11: outputs[0].elasticsearch.time_format: a data stream's @timestamp takes rfc3339nano or epoch_millis, got "epoch_nanos"`}},
		{"    hosts: [http://x]\n    index: Logs-{nope}", []string{
			`outputs[0].elasticsearch.index: index "Logs-{nope}": unknown placeholder {nope} (want {tag} or {field:KEY})`}},
		{"    hosts: [http://x]\n    index: Logs-%Y", []string{
			`outputs[0].elasticsearch.index: index "Logs-%Y": must be lowercase`}},
		{"    hosts: [http://x]\n    index: 'logs %q'", []string{
			`outputs[0].elasticsearch.index: index "logs %q": unknown time pattern %q (want %Y, %m, %d, %H or %%)`}},
		{"    hosts: [http://x]\n    index: _logs", []string{
			`outputs[0].elasticsearch.index: index "_logs": must not start with '_'`}},
		{"    hosts: [http://x]\n    index: 'a,b'", []string{
			`outputs[0].elasticsearch.index: index "a,b": must not contain ','`}},
		{"    hosts: [http://x]\n    op_type: upsert\n    id_mode: random\n    time_format: iso\n    compress: zstd\n    compress_level: 10", []string{
			`outputs[0].elasticsearch.op_type: invalid value "upsert" (want create or index)`,
			`outputs[0].elasticsearch.id_mode: invalid value "random" (want auto, stable or none)`,
			`outputs[0].elasticsearch.time_format: invalid value "iso" (want rfc3339nano, epoch_millis, epoch_seconds or epoch_nanos)`,
			`outputs[0].elasticsearch.compress: invalid value "zstd" (want gzip or none)`,
			`outputs[0].elasticsearch.compress_level: must be between 1 and 9, got 10`}},
		{"    hosts: [http://x]\n    max_bulk_bytes: 100\n    max_bulk_events: 0\n    request_timeout: 0s\n    tag_key: '@timestamp'", []string{
			`outputs[0].elasticsearch.max_bulk_bytes: must be between 1KiB and 1GiB, got 100`,
			`outputs[0].elasticsearch.max_bulk_events: must be positive, got 0`,
			`outputs[0].elasticsearch.request_timeout: must be positive, got 0s`,
			`outputs[0].elasticsearch.tag_key: "@timestamp" is also time_key`}},
		{"    hosts: [http://x]\n    username: elastic\n    password: pw\n    api_key: k", []string{
			`es.yml:10: outputs[0].elasticsearch.api_key: api_key and username are exclusive: pick one authentication`}},
		{"    hosts: [http://x]\n    username: elastic", []string{
			`outputs[0].elasticsearch.password: required when username is set`}},
		{"    hosts: [http://x]\n    api_key: k\n    aws: {region: us-east-1, service: opensearch, role_arn: role}", []string{
			`es.yml:7: outputs[0].elasticsearch.hosts[0]: host "http://x" is http://: AWS endpoints take https:// only`,
			`es.yml:9: outputs[0].elasticsearch.aws: aws signing is exclusive with username and api_key`,
			`outputs[0].elasticsearch.aws.service: invalid value "opensearch" (want es or aoss)`,
			`outputs[0].elasticsearch.aws.role_arn: invalid role ARN "role"`}},
		{"    hosts: [http://x]\n    tls: {enabled: true, ca_file: /ca.pem, client_auth: true}", []string{
			`outputs[0].elasticsearch.hosts[0]: host "http://x" is http:// but tls.enabled is set: use https://`,
			`outputs[0].elasticsearch.tls.client_auth: only valid for inputs`,
			`outputs[0].elasticsearch.tls: tls settings apply to https:// hosts, and no host is https://`}},
		{"    hosts: [https://x]\n    username: u\n    password: p\n    headers:\n      - {name: Content-Type, value: x}\n      - {name: 'bad name', value: x}\n      - {name: authorization, value: Bearer x}\n      - {name: X-A, value: a}\n      - {name: x-a, value: b}", []string{
			`outputs[0].elasticsearch.headers[0].name: header "Content-Type" is set by the output`,
			`outputs[0].elasticsearch.headers[1].name: invalid header name "bad name"`,
			`outputs[0].elasticsearch.headers[2].name: header Authorization conflicts with the configured authentication`,
			`outputs[0].elasticsearch.headers[4].name: duplicate header "x-a", already set by outputs[0].elasticsearch.headers[3].name`}},
	} {
		_, err := Parse(esFile(tc.keys), "es.yml")
		var es Errors
		if !errors.As(err, &es) {
			t.Errorf("%s: error %v", tc.keys, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: missing\n  %s\nin\n%v", tc.keys, w, err)
			}
		}
		if len(es) != len(tc.want) {
			t.Errorf("%s: %d problems, want %d:\n%v", tc.keys, len(es), len(tc.want), err)
		}
	}
}

// TestElasticsearchSecrets: password, api_key and header values never
// appear in errors or in Redacted.
func TestElasticsearchSecrets(t *testing.T) {
	c, err := Parse(esFile("    hosts: [https://x]\n    username: u\n    password: pw-SECRET-1\n    headers: [{name: X-T, value: hdr-SECRET-2}]"), "es.yml")
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Redacted(); strings.Contains(r, "SECRET") || !strings.Contains(r, "elasticsearch") {
		t.Fatalf("redacted:\n%s", r)
	}
	_, err = Parse(esFile("    hosts: [https://x]\n    api_key: key-SECRET-3\n    username: u\n    password: pw-SECRET-1"), "es.yml")
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error %v", err)
	}
}

func TestElasticsearchValidate(t *testing.T) {
	e := DefaultElasticsearchOutput()
	if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "elasticsearch.hosts: at least one host") {
		t.Fatalf("no hosts: %v", err)
	}
	e.Hosts = []string{"http://127.0.0.1:9200"}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseIndexTemplate(t *testing.T) {
	parts, err := ParseIndexTemplate("a-{tag}-%%-{field:k.v}-%Y.%m.%d.%H")
	if err != nil {
		t.Fatal(err)
	}
	want := []IndexPart{{IndexLiteral, "a-"}, {IndexTag, ""}, {IndexLiteral, "-%-"}, {IndexField, "k.v"}, {IndexLiteral, "-"},
		{IndexYear, ""}, {IndexLiteral, "."}, {IndexMonth, ""}, {IndexLiteral, "."}, {IndexDay, ""}, {IndexLiteral, "."}, {IndexHour, ""}}
	if !reflect.DeepEqual(parts, want) {
		t.Fatalf("%+v", parts)
	}
	for _, bad := range []string{"", "a%", "{field:}", "{tag", "a}"} {
		if _, err := ParseIndexTemplate(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

package config

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := lookupIn(map[string]string{"A": "alpha", "EMPTY": "", "B": "${A}", "N": "42"})
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x-${A}-${N}-y", want: "x-alpha-42-y"},
		{in: "${MISSING:-dflt}", want: "dflt"},
		{in: "${EMPTY:-dflt}", want: "dflt"},
		{in: "${A:-dflt}", want: "alpha"},
		{in: "${MISSING:-}", want: ""},
		{in: "${EMPTY}", want: ""},
		{in: "${MISSING:-a:-b}", want: "a:-b"},
		{in: "$${A}", want: "${A}"},
		{in: "cost $$${A}", want: "cost $${A}"},
		{in: "$A $$ $ {A} $}", want: "$A $$ $ {A} $}"},
		{in: "${B}", want: "${A}"}, // values are not expanded again
		{in: "${MISSING}", err: `environment variable "MISSING" is not set`},
		{in: "${M1}/${A}/${M2}", err: `environment variables "M1", "M2" are not set`},
		{in: "${A", err: `unclosed "${" (write "$${" for a literal "${")`},
		{in: "${}", err: `invalid environment variable name "" in ${...}`},
		{in: "${A-B}", err: `invalid environment variable name "A-B" in ${...}`},
		{in: "${9X}", err: `invalid environment variable name "9X" in ${...}`},
	} {
		got, err := expand(tc.in, env)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("expand(%q) error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("expand(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEnvInConfig(t *testing.T) {
	env := map[string]string{
		"DATA":   "/data/sluice",
		"SIZE":   "256MiB",
		"PORT":   "24230",
		"GZIP":   "true",
		"INJECT": "x\ninputs: [{id: evil, type: forward}]\nlisten: 0.0.0.0:1",
		"LIST":   "[app, debug]",
		"MAP":    "{id: evil}",
	}
	doc := `data_dir: ${DATA}
log_level: ${LOG_LEVEL:-warn}
inputs:
  - id: d
    type: docker
    root: "${INJECT}"
  - id: f
    type: forward
    listen: 127.0.0.1:${PORT}
    parse_json: ${GZIP}
outputs:
  - id: app
    type: stdout
    buffer:
      max_bytes: ${SIZE}
  - id: ${UNSET_ID:-debug}
    type: file
    path: "$${literal}/${DATA}/out.jsonl"
routes:
  - match: "**"
    field: ${FIELD:-log_type}
    value: ${MAP}
    outputs: [app]
`
	c, err := ParseWithEnv([]byte(doc), "env.yml", lookupIn(env))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", c.DataDir, "/data/sluice"},
		{"log_level default", c.LogLevel, "warn"},
		{"listen", c.Inputs[1].Forward.Listen, "127.0.0.1:24230"},
		{"bool", c.Inputs[1].Forward.ParseJSON, true},
		{"size", c.Outputs[0].Buffer.MaxBytes, ByteSize(256 << 20)},
		{"id default", c.Outputs[1].ID, "debug"},
		{"escape", c.Outputs[1].File.Path, "${literal}//data/sluice/out.jsonl"},
		{"field default", c.Routes[0].Field, "log_type"},
		// An env value stays one string: it never becomes YAML structure.
		{"inject stays a string", c.Inputs[0].Docker.Root, env["INJECT"]},
		{"inputs not injected", len(c.Inputs), 2},
		{"mapping stays a string", c.Routes[0].Value, "{id: evil}"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}

	// A list from the environment is a string, not a list.
	_, err = ParseWithEnv([]byte("inputs: [{id: a, type: docker}]\noutputs: [{id: app, type: stdout}]\nroutes:\n  - match: '**'\n    outputs: ${LIST}\n"),
		"list.yml", lookupIn(env))
	if err == nil || !strings.Contains(err.Error(), `list.yml:5: routes[0].outputs: expected a list, got "${LIST}"`) {
		t.Errorf("list from env: %v", err)
	}

	// Keys are never expanded.
	_, err = ParseWithEnv([]byte("${DATA}: x\ninputs: [{id: a, type: docker}]\noutputs: [{id: app, type: stdout}]\n"),
		"key.yml", lookupIn(env))
	if err == nil || !strings.Contains(err.Error(), `key.yml:1: ${DATA}: unknown field "${DATA}"`) {
		t.Errorf("key expansion: %v", err)
	}

	// An unset variable names itself and its line, and loses nothing else:
	// the other problems are still reported.
	_, err = ParseWithEnv([]byte("inputs:\n  - id: a\n    type: docker\n    root: ${NOPE}\n    poll_interval: 0s\noutputs: [{id: app, type: stdout}]\n"),
		"unset.yml", lookupIn(env))
	for _, m := range []string{
		`unset.yml:4: inputs[0].docker.root: environment variable "NOPE" is not set`,
		`unset.yml:5: inputs[0].docker.poll_interval: must be positive, got 0s`,
	} {
		if err == nil || !strings.Contains(err.Error(), m) {
			t.Errorf("missing %q in %v", m, err)
		}
	}
}

func BenchmarkExpand(b *testing.B) {
	env := lookupIn(map[string]string{"HOST": "aggregator.internal", "PORT": "24224"})
	s := "${HOST}:${PORT:-24224}/$${literal}"
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := expand(s, env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExpandNoVars(b *testing.B) {
	s := "/var/lib/docker/containers"
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := expand(s, nil); err != nil {
			b.Fatal(err)
		}
	}
}

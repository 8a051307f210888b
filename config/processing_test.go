package config

import (
	"strings"
	"testing"
)

// TestProcessingErrors: a bad parser or multiline section fails with its
// file:line, its path and what is wrong (a bad regexp: where in it).
func TestProcessingErrors(t *testing.T) {
	head := "inputs:\n  - id: c\n    type: docker\n"
	tail := "outputs: [{id: o, type: stdout}]\n"
	for name, tc := range map[string]struct{ yml, want string }{
		"unknown parser": {"    parser: {type: apache2}\n", `c.yml:4: inputs[0].docker.parser: type: unknown parser "apache2"`},
		"both json":      {"    parse_json: true\n    parser: {type: logfmt}\n", "c.yml:5: inputs[0].docker.parser: set either parse_json or parser"},
		"bad regex": {"    parser: {type: regex, pattern: '(?P<a>x'}\n",
			"c.yml:4: inputs[0].docker.parser: pattern: error parsing regexp: missing closing ): `(?P<a>x`"},
		"no named group":  {"    parser: {type: regex, pattern: 'x+'}\n", "c.yml:4: inputs[0].docker.parser: "},
		"types on nginx":  {"    parser: {type: nginx, types: [{field: code, type: int}]}\n", "c.yml:4: inputs[0].docker.parser: types: not supported by nginx"},
		"dup type field":  {"    parser: {type: logfmt, types: [{field: a, type: int}, {field: a, type: bool}]}\n", `inputs[0].docker.parser.types[1].field: duplicate field "a"`},
		"bad zone":        {"    parser: {type: klog, time_zone: Mars/Olympus}\n", "c.yml:4: inputs[0].docker.parser: time_zone:"},
		"unknown rule":    {"    multiline: {rules: [cobol]}\n", "c.yml:4: inputs[0].docker.multiline: unknown rule \"cobol\""},
		"no rules":        {"    multiline: {flush_timeout: 1s}\n", "inputs[0].docker.multiline: needs rules"},
		"bad start":       {"    multiline: {custom: [{name: x, start: '[a-'}]}\n", "c.yml:4: inputs[0].docker.multiline: rule \"x\": start: at offset 0: error parsing regexp"},
		"over line bytes": {"    max_line_bytes: 64KiB\n    multiline: {rules: [java], max_bytes: 1MiB}\n", "inputs[0].docker.multiline.max_bytes: must not exceed the input's max_line_bytes (65536)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(head+tc.yml+tail), "c.yml", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
	// A good one, on every input type that takes a parser.
	good := `inputs:
  - {id: d, type: docker, parser: {type: nginx}, multiline: {rules: [java, go]}}
  - {id: k, type: cri, parser: {type: syslog, time_zone: Europe/Paris}, multiline: {custom: [{name: ts, start: '^\d{4}-'}]}}
  - {id: f, type: forward, listen: 127.0.0.1:24224, parser: {type: regex, pattern: '^(?P<level>\w+) (?P<msg>.*)$'}}
outputs: [{id: o, type: stdout}]
`
	if _, err := ParseWithEnv([]byte(good), "g.yml", nil); err != nil {
		t.Fatal(err)
	}
}

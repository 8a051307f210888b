package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const routeYAML = `data_dir: /nonexistent/sluice
inputs: [{id: c, type: docker}]
outputs: [{id: app, type: stdout}, {id: audit, type: stdout}]
routes:
  - match: "audit.**"
    outputs: [audit]
  - match: "**"
    when: {field: log, regex: 'type=(app|access)\b'}
    outputs: [app]
processors:
  - {id: no-health, type: drop, when: {field: log, contains: /healthz}}
  - {type: add, fields: [{key: node, value: n1}]}
  - {type: rewrite_tag, match: "docker.**", when: {field: log, contains: type=audit}, tag: "audit.{tag}"}
`

// TestRoute: agent route shows each processor's result and the route and
// outputs taken, offline.
func TestRoute(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(cfg, []byte(routeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"rewritten": {[]string{"--log", "x type=audit"}, []string{
			`after add-2       docker.web {"log":"x type=audit","stream":"stdout","node":"n1"}`,
			`after rewrite_tag-3 audit.docker.web`,
			`route 1 (line 5: match "audit.**") -> audit`,
		}},
		"regex route": {[]string{"--record", `{"log":"y type=access","stream":"stderr"}`}, []string{`route 2 (line 7: match "**") -> app`}},
		"dropped":     {[]string{"--log", "GET /healthz"}, []string{"dropped by no-health", "not routed"}},
		"unrouted":    {[]string{"--log", "plain"}, []string{"unrouted"}},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"route", "--config", cfg, "--tag", "docker.web"}, tc.args...), &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestValidateBadRegex: agent validate places a bad regex of a condition
// at its line, with the offset in the pattern.
func TestValidateBadRegex(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "agent.yml")
	bad := strings.Replace(routeYAML, `'type=(app|access)\b'`, `'type=(app|access\b'`, 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "--config", cfg}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	want := cfg + ":8: routes[1].when.regex: at offset 5: error parsing regexp: missing closing ): `type=(app|access\\b`"
	if !strings.Contains(errb.String(), want) {
		t.Fatalf("got %s\nwant %s", errb.String(), want)
	}
}

package config

import (
	"strings"
	"testing"
)

// TestProcessorErrors: bad conditions and processors fail with the line
// of the key at fault, its path and, for a regex, the offset in it.
func TestProcessorErrors(t *testing.T) {
	head := "inputs: [{id: c, type: docker}]\noutputs: [{id: o, type: stdout}]\n"
	for name, tc := range map[string]struct{ yml, want string }{
		"route regex": {"routes:\n  - match: '**'\n    when:\n      any:\n        - {field: log, contains: x}\n        - {field: log, regex: 'type=(app|access'}\n    outputs: [o]\n",
			"c.yml:8: routes[0].when.any[1].regex: at offset 5: error parsing regexp: missing closing ): `type=(app|access`"},
		"route two ops": {"routes:\n  - match: '**'\n    when: {field: log, equals: a, prefix: b}\n    outputs: [o]\n",
			"c.yml:5: routes[0].when: set only one of equals, prefix"},
		"route no field": {"routes:\n  - match: '**'\n    when:\n      not: {contains: a}\n    outputs: [o]\n",
			"c.yml:6: routes[0].when.not.field: required with contains"},
		"unknown key": {"routes:\n  - match: '**'\n    when: {field: log, matches: a}\n    outputs: [o]\n",
			`c.yml:5: routes[0].when.matches: unknown field "matches"`},
		"type":    {"processors:\n  - type: modify\n", `c.yml:4: processors[0].type: unknown processor type "modify" (want add, drop, keep, lift, nest, parse, redact, remove, rename, rewrite_tag, throttle)`},
		"no type": {"processors:\n  - {id: x}\n", "c.yml:4: processors[0].type: missing"},
		"key of other type": {"processors:\n  - type: drop\n    rate: 5\n",
			"c.yml:5: processors[0].rate: not used by type drop (it takes no other keys besides id, type, match, when)"},
		"processor when": {"processors:\n  - type: drop\n    when:\n      all:\n        - field: a\n          regex: 'x**'\n",
			"c.yml:8: processors[0].when.all[0].regex: at offset 1: error parsing regexp: invalid nested repetition operator: `**`"},
		"custom regex": {"processors:\n  - type: redact\n    custom:\n      - 'ok'\n      - 'pw=[a-'\n",
			"c.yml:7: processors[0].custom[1]: at offset 3: error parsing regexp: missing closing ]: `[a-`"},
		"add source": {"processors:\n  - type: add\n    fields:\n      - {key: a, value: b}\n      - {key: h, source: env}\n",
			`c.yml:7: processors[0].fields[1].source: unknown source "env"`},
		"template": {"processors:\n  - type: rewrite_tag\n    tag: 'a.{name}'\n", `c.yml:5: processors[0].tag: unknown placeholder "{name}" (want {tag} or {field:PATH})`},
		"match":    {"processors:\n  - type: drop\n    match: 'a.{b'\n", "c.yml:5: processors[0].match:"},
		"throttle": {"processors:\n  - type: throttle\n    per: pod\n    rate: 10\n", `c.yml:5: processors[0].per: unknown "pod" (want container or tag)`},
		"rate":     {"processors:\n  - type: throttle\n", "c.yml:4: processors[0]: rate: must be positive"},
		"dup id":   {"processors:\n  - {id: a, type: drop}\n  - {id: a, type: drop}\n", `c.yml:5: processors[1].id: duplicate id "a", already used by processors[0].id (line 4)`},
		"pattern":  {"processors:\n  - type: redact\n    patterns: [email, ssn]\n", `c.yml:5: processors[0].patterns[1]: unknown pattern "ssn"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(head+tc.yml), "c.yml", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

// TestProcessorSpec: the conversion keeps every key.
func TestProcessorSpec(t *testing.T) {
	c := mustParseFile(t, "full.good.yml")
	specs := c.ProcessorSpecs()
	if len(specs) != len(c.Processors) || specs[1].Fields[1].Source != "hostname" || specs[0].When.Contains == nil ||
		specs[8].Rate != 1000 || specs[9].Custom[0] != `password=\S+` {
		t.Fatalf("%+v", specs)
	}
	w := c.Routes[1].When.Spec()
	if len(w.All) != 3 || w.All[1].Not.Regex == nil || *w.All[2].Any[1].Exists != true {
		t.Fatalf("%+v", w)
	}
}

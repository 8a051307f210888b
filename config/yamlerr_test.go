package config

import "testing"

// TestYAMLErrorLine: a YAML syntax error names the line of the problem,
// not of the mapping or list around it (which yaml.v3 reports, 0-based for
// its parser's errors, the problem's line only when that node starts on
// the first line), the line an unclosed string starts on, and an alias's
// line; an unquoted ${VAR} in a flow collection gets a hint to quote it.
func TestYAMLErrorLine(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"context on the first line":     {"{a: 1 b: }}\n", "f.yml:1: invalid YAML: did not find expected ',' or '}'"},
		"block mapping indented wrong":  {"a:\n  b:\n    c: 1\n    d: 2\n   e: 3\n", "f.yml:5: invalid YAML: did not find expected key"},
		"top-level mapping":             {"a: 1\n- b\n", "f.yml:2: invalid YAML: did not find expected key"},
		"list item expected":            {"a:\n  - b\n  - c\n  d: 1\n", "f.yml:4: invalid YAML: did not find expected '-' indicator"},
		"unclosed flow sequence":        {"a: 1\nb: [1, 2\nc: 3\n", "f.yml:3: invalid YAML: did not find expected ',' or ']' in the flow sequence [ ] that starts at line 2"},
		"unclosed quote, first line":    {"a: \"x\n\nb: 3\n", "f.yml:1: invalid YAML: found unexpected end of stream"},
		"unclosed quote":                {"a: 1\nb: 'x\nc: 3\n", "f.yml:2: invalid YAML: found unexpected end of stream"},
		"tab":                           {"a:\n\t- x\n", "f.yml:2: invalid YAML: found character that cannot start any token"},
		"mapping value":                 {"a: 1\nb: c: d\n", "f.yml:2: invalid YAML: mapping values are not allowed in this context"},
		"undefined tag handle":          {"a: 1\nb: !x!y z\n", "f.yml:2: invalid YAML: found undefined tag handle"},
		"unknown alias":                 {"a: &x 1\nb:\n  - *x\n  - [1, *y]\n", "f.yml:4: invalid YAML: unknown anchor 'y' referenced"},
		"env in flow mapping":           {"a: 1\nb: {c: ${X}}\n", `f.yml:2: invalid YAML: did not find expected ',' or '}' (hint: quote "${X}" inside { } or [ ])`},
		"env in flow sequence":          {"a: 1\nb: [c, ${X:-d e}]\n", `f.yml:2: invalid YAML: did not find expected ',' or ']' (hint: quote "${X:-d e}" inside { } or [ ])`},
		"env first line":                {"b: [${X}]\n", `f.yml:1: invalid YAML: did not find expected ',' or ']' (hint: quote "${X}" inside { } or [ ])`},
		"literal $${":                   {"a: 1\nb: [$${X}]\n", `f.yml:2: invalid YAML: did not find expected ',' or ']' (hint: quote "$${X}" inside { } or [ ])`},
		"env later in a multiline flow": {"a: 1\nb: [\n  c,\n  ${X}\n]\n", `f.yml:4: invalid YAML: did not find expected ',' or ']' in the flow sequence [ ] that starts at line 2 (hint: quote "${X}" inside { } or [ ])`},
		"quoted env, other problem":     {"a: 1\nb: {c: \"${X}\" d, e: 1}\n", "f.yml:2: invalid YAML: did not find expected ',' or '}'"},
		"env in a comment":              {"a: 1\nb: {c: 1 d: 2} # ${X}\n", "f.yml:2: invalid YAML: did not find expected ',' or '}'"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(tc.yaml), "f.yml", nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
			}
		})
	}
}

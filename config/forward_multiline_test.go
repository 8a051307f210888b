package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestForwardMultiline: a forward input takes the docker input's
// multiline section, validated the same way (a bad rule fails with its
// file:line and where in the pattern); max_bytes has no line cap to stay
// under.
func TestForwardMultiline(t *testing.T) {
	head := "inputs:\n  - id: f\n    type: forward\n    listen: 127.0.0.1:24224\n"
	tail := "outputs: [{id: o, type: stdout}]\n"
	for name, tc := range map[string]struct{ yml, want string }{
		"unknown rule": {"    multiline: {rules: [cobol]}\n", `c.yml:5: inputs[0].forward.multiline: unknown rule "cobol"`},
		"no rules":     {"    multiline: {flush_timeout: 1s}\n", "inputs[0].forward.multiline: needs rules"},
		"bad start": {"    multiline: {custom: [{name: x, start: '[a-'}]}\n",
			`c.yml:5: inputs[0].forward.multiline: rule "x": start: at offset 0: error parsing regexp`},
		"bad continue": {"    multiline: {custom: [{name: x, start: '^\\d', continue: '(?P<'}]}\n",
			`inputs[0].forward.multiline: rule "x": continue: at offset 0`},
		"negative timeout": {"    multiline: {rules: [java], flush_timeout: -1s}\n", "inputs[0].forward.multiline.flush_timeout: must not be negative"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(head+tc.yml+tail), "c.yml", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
	good := head + "    multiline: {rules: [java, go], custom: [{name: ts, start: '^\\d{4}-'}], flush_timeout: 2s, max_bytes: 4MiB}\n" + tail
	c, err := ParseWithEnv([]byte(good), "g.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Multiline{Rules: []string{"java", "go"}, Custom: []MultilineRule{{Name: "ts", Start: `^\d{4}-`}},
		FlushTimeout: 2 * time.Second, MaxBytes: 4 << 20}
	if got := c.Inputs[0].Forward.Multiline; !reflect.DeepEqual(got, want) {
		t.Fatalf("multiline %+v, want %+v", got, want)
	}
}

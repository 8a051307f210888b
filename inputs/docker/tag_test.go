package docker

import (
	"testing"

	"github.com/sluice-agent/sluice/internal/record"
)

// The JSON payload conversion and the template compiler are tested in
// internal/record; this tests the docker input's placeholder values, from
// a payload parsed (parse_json) or only looked into.
func TestTagTemplate(t *testing.T) {
	c := newContainer(&Input{labels: true}, "0123456789abcdef0123", "/r/0123456789abcdef0123")
	c.name = "web"
	c.labels = []string{"app", "shop", "team", ""}
	var p record.Fields
	p.Parse([]byte(`{"level":"warn","code":503,"log":"reserved"}`), reservedKeys)
	var f record.Fields
	f.Find([]byte(`{"level":"warn","code":503,"log":"reserved"}`), [][]byte{[]byte("level"), []byte("code"), []byte("log")}, reservedKeys)
	tests := map[string]struct{ tpl, want string }{
		"default":  {"docker.{name}", "docker.web"},
		"ids":      {"{id}/{short_id}", "0123456789abcdef0123/0123456789ab"},
		"stream":   {"d.{stream}", "d.stderr"},
		"label":    {"{label:app}.{label:team}.{label:none}", "shop.unknown.unknown"},
		"field":    {"{field:level}.{field:code}.{field:x}", "warn.503.unknown"},
		"reserved": {"{field:log}", "unknown"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tpl, err := record.Compile(tc.tpl, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, fields := range []*record.Fields{&p, &f} {
				v := tagValues{c: c, stream: []byte("stderr"), fields: fields}
				if got := tpl.Render(nil, &v); string(got) != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
	for _, bad := range []string{"", "{name", "{nope}", "{label:}", "{field:}", "a{}b", "{tag}"} {
		if _, err := record.Compile(bad, 0); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

package docker

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

// decodeFields decodes payload.buf (key/value pairs) into a map.
func decodeFields(t *testing.T, p *payload) map[string]any {
	t.Helper()
	b := msgp.AppendMapHeader(nil, uint32(len(p.fields)))
	b = append(b, p.buf...)
	v, rest, err := msgp.ReadIntfBytes(b)
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode: %v (%d trailing)", err, len(rest))
	}
	return v.(map[string]any)
}

// normalize makes encoding/json output comparable with msgp's decoding.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

func TestPayloadMatchesEncodingJSON(t *testing.T) {
	docs := []string{
		`{}`,
		`{"level":"info","msg":"started \u003cok\u003e","n":42,"neg":-7,"f":1.5,"e":2e10,"big":18446744073709551616,"t":true,"x":false,"z":null}`,
		` {"nested":{"a":[1,"two",{"b":[]},[]],"c":{}},"arr":[` + strings.Repeat(`1,`, 20) + `1]} `,
		`{"s":"\ud83d\ude00 \" \\ \/","k\u00e9y":"v"}`,
		`{"long":"` + strings.Repeat("x", 70000) + `"}`,
	}
	for _, d := range docs {
		var p payload
		if !p.convert([]byte(d)) {
			t.Fatalf("%.60s: not converted", d)
		}
		dec := json.NewDecoder(strings.NewReader(d))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		got := decodeFields(t, &p)
		if !reflect.DeepEqual(got, normalize(want)) {
			t.Fatalf("%.60s:\ngot  %v\nwant %v", d, got, normalize(want))
		}
	}
}

func TestPayloadReservedAndRepeatedKeys(t *testing.T) {
	var p payload
	if !p.convert([]byte(`{"log":"x","stream":"s","container_id":"c","container_name":"n","labels":{},"a":1,"a":2,"b":"y"}`)) {
		t.Fatal("not converted")
	}
	got := decodeFields(t, &p)
	want := map[string]any{"a": int64(1), "b": "y"}
	if !reflect.DeepEqual(got, want) || len(p.fields) != 2 {
		t.Fatalf("got %v", got)
	}
}

func TestPayloadRejects(t *testing.T) {
	for _, d := range []string{
		``, `plain text`, `[1,2]`, `"str"`, `{"a":1`, `{"a":1} trailing`, `{"a":tru}`, `{"a":01}`,
		`{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{a:1}`, `{"a" 1}`, `{"a":"\q"}`, `{"a":[1,]}`,
		`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	} {
		var p payload
		if p.convert([]byte(d)) {
			t.Errorf("%.40q converted", d)
		}
		if len(p.buf) != 0 || len(p.fields) != 0 {
			t.Errorf("%.40q left fields behind", d)
		}
	}
}

func TestPayloadAppendField(t *testing.T) {
	var p payload
	p.convert([]byte(`{"s":"web","i":-3,"f":0.25,"b":true,"n":null,"m":{},"e":""}`))
	for k, want := range map[string]string{"s": "web", "i": "-3", "f": "0.25", "b": "true"} {
		got, ok := p.appendField(nil, []byte(k))
		if !ok || string(got) != want {
			t.Errorf("%s: got %q %v, want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"n", "m", "e", "missing"} {
		if got, ok := p.appendField(nil, []byte(k)); ok {
			t.Errorf("%s: got %q, want no value", k, got)
		}
	}
}

func TestTagTemplate(t *testing.T) {
	c := newContainer("/r", "0123456789abcdef0123", true)
	c.name = "web"
	c.labels = []string{"app", "shop", "team", ""}
	var p payload
	p.convert([]byte(`{"level":"warn","code":503}`))
	tests := map[string]struct{ tpl, want string }{
		"default":    {"docker.{name}", "docker.web"},
		"ids":        {"{id}/{short_id}", "0123456789abcdef0123/0123456789ab"},
		"stream":     {"d.{stream}", "d.stderr"},
		"label":      {"{label:app}.{label:team}.{label:none}", "shop.unknown.unknown"},
		"field":      {"{field:level}.{field:code}.{field:x}", "warn.503.unknown"},
		"literal":    {"plain", "plain"},
		"brace text": {"a-{name}-b", "a-web-b"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tpl, err := compileTag(tc.tpl)
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.render(nil, c, []byte("stderr"), &p); string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "{name", "{nope}", "{label:}", "{field:}", "a{}b"} {
		if _, err := compileTag(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzPayload checks the JSON to msgpack conversion against encoding/json:
// every valid object converts, to the same values (duplicate and reserved
// keys aside, which differ by design).
func FuzzPayload(f *testing.F) {
	f.Add(`{"a":1,"b":[true,null,"x\u00e9"],"c":{"d":-1.5e3}}`)
	f.Add(`{"log":"x","a":1,"a":2}`)
	f.Fuzz(func(t *testing.T, s string) {
		var p payload
		ok := p.convert([]byte(s))
		if !json.Valid([]byte(s)) || !utf8.ValidString(s) || strings.Contains(s, strings.Repeat("[", 20)) || strings.Contains(s, strings.Repeat("{", 20)) {
			return // invalid JSON we may accept (raw control bytes, bad UTF-8); depth limits differ
		}
		keys, isObject := topKeys(s)
		if !isObject {
			if ok {
				t.Fatalf("non-object converted: %q", s)
			}
			return
		}
		if !ok {
			t.Fatalf("valid object not converted: %q", s)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] || reservedKey([]byte(k)) {
				return
			}
			seen[k] = true
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if got := decodeFields(t, &p); !reflect.DeepEqual(got, normalize(want)) {
			t.Fatalf("%q:\ngot  %#v\nwant %#v", s, got, normalize(want))
		}
	})
}

// topKeys returns the top-level keys of a JSON object, in order.
func topKeys(s string) ([]string, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		k, _ := tok.(string)
		keys = append(keys, k)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
	}
	return keys, true
}

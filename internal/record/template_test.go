package record

import (
	"strings"
	"testing"
)

// mapValues renders placeholders from a map keyed "name", "label:app", ...
type mapValues map[string]string

func (m mapValues) AppendValue(dst []byte, k Kind, key []byte) []byte {
	names := [...]string{Tag: "tag", Name: "name", ID: "id", ShortID: "short_id", Stream: "stream", Label: "label:", Field: "field:"}
	return append(dst, m[names[k]+string(key)]...)
}

func TestTemplateRender(t *testing.T) {
	v := mapValues{
		"tag": "orig", "name": "web", "id": "0123456789abcdef0123", "short_id": "0123456789ab", "stream": "stderr",
		"label:app": "shop", "field:level": "warn", "field:code": "503",
	}
	tests := map[string]struct{ tpl, want string }{
		"default":    {"docker.{name}", "docker.web"},
		"tag":        {"{tag}.x", "orig.x"},
		"ids":        {"{id}/{short_id}", "0123456789abcdef0123/0123456789ab"},
		"stream":     {"d.{stream}", "d.stderr"},
		"label":      {"{label:app}.{label:team}.{label:none}", "shop.unknown.unknown"},
		"field":      {"{field:level}.{field:code}.{field:x}", "warn.503.unknown"},
		"literal":    {"plain", "plain"},
		"brace text": {"a-{name}-b", "a-web-b"},
		// Alternatives: the first that has a value (the safe form of
		// routing by log type: the operator's label, the payload field
		// only as a fallback).
		"alt first":    {"{label:app|field:level}", "shop"},
		"alt fallback": {"{label:type|field:level}", "warn"},
		"alt none":     {"{label:type|field:x|label:y}.z", "unknown.z"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tpl, err := Compile(tc.tpl, AllowTag)
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.Render([]byte("keep:"), v); string(got) != "keep:"+tc.want {
				t.Fatalf("got %q, want %q", got, "keep:"+tc.want)
			}
		})
	}
	tpl, _ := Compile("a.{name}.{field:x}", 0)
	if got := tpl.Render(nil, nil); string(got) != "a.unknown.unknown" {
		t.Fatalf("nil values: %q", got)
	}
}

func TestCompileAlternatives(t *testing.T) {
	tpl, err := Compile("{label:logging.type|field:log_type}.{name}", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !tpl.Uses(Label) || !tpl.Uses(Field) || !tpl.Uses(Name) {
		t.Fatal("uses of the alternatives not recorded")
	}
	if keys := tpl.FieldKeys(); len(keys) != 1 || string(keys[0]) != "log_type" {
		t.Fatalf("FieldKeys %q", keys)
	}
	for _, bad := range []string{"{label:a|bogus}", "{label:a|}", "{|name}", "{tag|name}"} {
		if _, err := Compile(bad, 0); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

func TestCompile(t *testing.T) {
	tpl, err := Compile("{stream}.{field:a}.{label:l}.{field:b}.{field:a}", 0)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[Kind]bool{Tag: false, Name: false, Stream: true, Label: true, Field: true, ID: false} {
		if tpl.Uses(k) != want {
			t.Errorf("Uses(%d) = %v", k, !want)
		}
	}
	if keys := tpl.FieldKeys(); len(keys) != 2 || string(keys[0]) != "a" || string(keys[1]) != "b" {
		t.Errorf("FieldKeys %q", keys)
	}
	for bad, want := range map[string]string{
		"":             "empty",
		"{name":        "unclosed '{'",
		"{nope}":       "unknown placeholder {nope} (want {name}, {id}",
		"{label:}":     "unknown placeholder {label:}",
		"{field:}":     "unknown placeholder {field:}",
		"a{}b":         "unknown placeholder {}",
		"a}b":          "unmatched '}'",
		"{tag}.{name}": "{tag} is not available",
	} {
		_, err := Compile(bad, 0)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", bad, err, want)
		}
	}
	if _, err := Compile("{nope}", AllowTag); err == nil || !strings.Contains(err.Error(), "(want {tag}, {name}") {
		t.Errorf("AllowTag: error %v", err)
	}
}

// ptrValues is a Values behind a pointer, as the inputs implement it.
type ptrValues struct{ f *Fields }

func (v *ptrValues) AppendValue(dst []byte, k Kind, key []byte) []byte {
	if k == Field {
		if val, ok := v.f.Value(key); ok {
			dst, _ = AppendText(dst, val)
		}
		return dst
	}
	return append(dst, "x"...)
}

// TestZeroAllocs pins the hot path's promise: after warm-up nothing
// allocates, for good and bad input.
func TestZeroAllocs(t *testing.T) {
	good := []byte(benchPayload)
	bad := []byte(`{"level":"info","x":tru}`)
	tpl, err := Compile("{name}.{field:level}.{field:user}.{field:none}", 0)
	if err != nil {
		t.Fatal(err)
	}
	var f Fields
	v := &ptrValues{f: &f}
	var tag []byte
	run := func() {
		f.Parse(bad, reserved)
		f.Find(bad, tpl.FieldKeys(), reserved)
		f.Parse([]byte(`{"a":"\u00e9\n"}`), reserved)
		f.Find(good, tpl.FieldKeys(), reserved)
		tag = tpl.Render(tag[:0], v)
		f.Parse(good, reserved)
		tag = tpl.Render(tag[:0], v)
	}
	run()
	if string(tag) != "x.info.42.unknown" {
		t.Fatalf("tag %q", tag)
	}
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("%v allocs per run", n)
	}
}

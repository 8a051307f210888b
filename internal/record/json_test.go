package record

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// reserved is the docker input's skip set: the keys its records have.
var reserved = NewKeys("log", "stream", "container_id", "container_name", "labels")

// decodeFields decodes the pairs held by f into a map.
func decodeFields(t *testing.T, f *Fields) map[string]any {
	t.Helper()
	b := msgp.AppendMapHeader(nil, uint32(f.Len()))
	b = append(b, f.Pairs()...)
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
		`{"min":-9223372036854775808,"max":9223372036854775807,"over":9223372036854775808,"tiny":1e-400,"huge":-1e400,"z":-0}`,
		`{"many":{` + strings.TrimSuffix(strings.Repeat(`"k":1,`, 20), ",") + `},"wide":[` + strings.TrimSuffix(strings.Repeat(`"s",`, 70000), ",") + `]}`,
	}
	for _, d := range docs {
		var f Fields
		if !f.Parse([]byte(d), reserved) {
			t.Fatalf("%.60s: not converted", d)
		}
		dec := json.NewDecoder(strings.NewReader(d))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		got := decodeFields(t, &f)
		if !reflect.DeepEqual(got, normalize(want)) {
			t.Fatalf("%.60s:\ngot  %.300v\nwant %.300v", d, got, normalize(want))
		}
	}
}

func TestPayloadReservedAndRepeatedKeys(t *testing.T) {
	var f Fields
	if !f.Parse([]byte(`{"log":"x","stream":"s","container_id":"c","container_name":"n","labels":{},"a":1,"a":2,"b":"y"}`), reserved) {
		t.Fatal("not converted")
	}
	got := decodeFields(t, &f)
	want := map[string]any{"a": int64(1), "b": "y"}
	if !reflect.DeepEqual(got, want) || f.Len() != 2 {
		t.Fatalf("got %v", got)
	}
	// Without a skip set every distinct key is kept; escaped keys compare
	// unescaped.
	if !f.Parse([]byte(`{"log":"x","\u0061":1,"a":2}`), nil) {
		t.Fatal("not converted")
	}
	if got, want := decodeFields(t, &f), map[string]any{"log": "x", "a": int64(1)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	// An escaped key whose value is unescaped too (the same scratch).
	if !f.Parse([]byte(`{"k\u00e9":"\b","k\u00e9":2}`), nil) || f.Len() != 1 {
		t.Fatalf("escaped repeated key: %d members", f.Len())
	}
	if v, ok := f.Value([]byte("ké")); !ok || string(v) != "\xa1\b" {
		t.Fatalf("escaped key value %x %v", v, ok)
	}
}

// TestPayloadDedupBound: repeated keys are dropped while at most 256
// members were kept; past that, members are only checked against skip.
func TestPayloadDedupBound(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"k0":0`)
	for i := 1; i < 256; i++ {
		b.WriteString(`,"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
	}
	// 256 kept: "k0" is still checked; after "k256" it is not.
	b.WriteString(`,"k0":"dup checked","k256":256,"k1":"dup unchecked","log":"reserved"}`)
	var f Fields
	if !f.Parse([]byte(b.String()), reserved) {
		t.Fatal("not converted")
	}
	if f.Len() != 258 {
		t.Fatalf("kept %d members, want 258", f.Len())
	}
	if v, _ := f.Value([]byte("k0")); string(v) != "\x00" {
		t.Fatalf("k0 = %x, want the first value", v)
	}
	if v, _ := f.Value([]byte("k1")); string(v) != "\x01" {
		t.Fatalf("k1 = %x, want the first value", v)
	}
	if _, ok := f.Value([]byte("log")); ok {
		t.Fatal("reserved key kept")
	}
}

func TestPayloadRejects(t *testing.T) {
	for _, d := range rejected {
		var f Fields
		f.Parse([]byte(`{"warm":"up"}`), nil)
		if f.Parse([]byte(d), reserved) {
			t.Errorf("%.40q converted", d)
		}
		if len(f.Pairs()) != 0 || f.Len() != 0 {
			t.Errorf("%.40q left fields behind", d)
		}
		if f.Find([]byte(d), [][]byte{[]byte("a")}, nil) {
			t.Errorf("%.40q found", d)
		}
		if len(f.Pairs()) != 0 || f.Len() != 0 {
			t.Errorf("%.40q: Find left fields behind", d)
		}
	}
}

// rejected are payloads Parse and Find must refuse.
var rejected = []string{
	``, `plain text`, `[1,2]`, `"str"`, `{"a":1`, `{"a":1} trailing`, `{"a":tru}`, `{"a":01}`,
	`{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{a:1}`, `{"a" 1}`, `{"a":"\q"}`, `{"a":[1,]}`,
	`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	`{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{"a":{"b":1,}}`, `{"a":{"b"}}`, `{"a":{1:2}}`,
	`{"a":"x\u12"}`, `{"a":"x\u12G4"}`, `{"a":"x\`, `{"a":"x`, `{"x":"\q","a":1}`, `{"\q":1}`,
	`{"a":1}}`, `{"a":nul}`, `{"a":truex}`, `{"a":-01}`, `{"a":.5}`, `{"a":+1}`, `{"a":1e+}`,
	`{"a":[` + strings.Repeat(`{"b":[`, 32) + strings.Repeat(`]}`, 32) + `]}`,
}

func TestFieldsValueText(t *testing.T) {
	var f Fields
	f.Parse([]byte(`{"s":"web","i":-3,"f":0.25,"b":true,"n":null,"m":{},"e":"","big":18446744073709551615,"x":2.5e3}`), nil)
	for k, want := range map[string]string{"s": "web", "i": "-3", "f": "0.25", "b": "true", "big": "1.8446744073709552e+19", "x": "2500"} {
		v, ok := f.Value([]byte(k))
		if !ok {
			t.Fatalf("%s: no value", k)
		}
		got, ok := AppendText([]byte("<"), v)
		if !ok || string(got) != "<"+want {
			t.Errorf("%s: got %q %v, want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"n", "m"} {
		v, _ := f.Value([]byte(k))
		if got, ok := AppendText([]byte("<"), v); ok || string(got) != "<" {
			t.Errorf("%s: got %q %v, want no text", k, got, ok)
		}
	}
	if v, _ := f.Value([]byte("e")); len(v) != 1 {
		t.Errorf("empty string value %x", v)
	}
	if _, ok := f.Value([]byte("missing")); ok {
		t.Error("missing key has a value")
	}
}

func TestAppendTextTypes(t *testing.T) {
	for _, tc := range []struct {
		v    []byte
		want string
		ok   bool
	}{
		{msgp.AppendBytes(nil, []byte("bin")), "bin", true},
		{msgp.AppendUint64(nil, 1<<63), "9223372036854775808", true},
		{msgp.AppendFloat32(nil, 0.5), "0.5", true},
		{msgp.AppendBool(nil, false), "false", true},
		{msgp.AppendArrayHeader(nil, 0), "", false},
		{[]byte{0xd9}, "", false}, // str8 cut short
		{nil, "", false},
	} {
		got, ok := AppendText(nil, tc.v)
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("%x: got %q %v, want %q %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

// TestFindMatchesParse: Find keeps only the keys asked for, with the bytes
// Parse would hold, honouring the skip set and the first of repeated keys.
func TestFindMatchesParse(t *testing.T) {
	doc := []byte(`{"level":"warn","code":503,"log":"inner","nested":{"level":"no"},"esc\u0061ped":"e\u00e9","level":"dup","f":-1.5e3,"arr":[1,{"a":"\"]}"}]}`)
	var p, f Fields
	if !p.Parse(doc, reserved) {
		t.Fatal("not parsed")
	}
	keys := [][]byte{[]byte("level"), []byte("escaped"), []byte("log"), []byte("f"), []byte("absent"), []byte("arr")}
	if !f.Find(doc, keys, reserved) {
		t.Fatal("not found")
	}
	if f.Len() != 4 {
		t.Fatalf("found %d keys, want 4", f.Len())
	}
	for _, k := range keys {
		pv, pok := p.Value(k)
		fv, fok := f.Value(k)
		if pok != fok || string(pv) != string(fv) {
			t.Errorf("%s: Parse %x %v, Find %x %v", k, pv, pok, fv, fok)
		}
	}
	if v, _ := f.Value([]byte("level")); string(v) != "\xa4warn" {
		t.Errorf("level %q", v)
	}
}

package record

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPayload checks the JSON to msgpack conversion against encoding/json:
// every valid object converts, to the same values (duplicate and reserved
// keys aside, which differ by design).
func FuzzPayload(f *testing.F) {
	f.Add(`{"a":1,"b":[true,null,"x\u00e9"],"c":{"d":-1.5e3}}`)
	f.Add(`{"log":"x","a":1,"a":2}`)
	f.Fuzz(func(t *testing.T, s string) {
		var p Fields
		ok := p.Parse([]byte(s), reserved)
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
			if seen[k] || reserved.Has([]byte(k)) {
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

// FuzzFind checks the lookup-only path against the conversion, on any
// input (valid JSON or not): Find accepts exactly what Parse accepts, and
// for every key asked it yields Parse's value, so a tag renders the same
// with or without parse_json.
func FuzzFind(f *testing.F) {
	f.Add(`{"a":1,"b":[true,null,"x\u00e9"],"c":{"d":-1.5e3}}`, "a")
	f.Add(`{"log":"x","a":1,"a":2}`, "log")
	f.Add(`{"a":"\"}\\","b":"\ud800\u0041","a":{"a":[{"a":"a"}]}}`, "a")
	f.Add(`{"k\u00e9":"\q"}`, "ké")
	f.Add(`{"k\u00e9":"\b"}`, "ké") // the value's unescaping reuses the key's scratch
	f.Add(`{"a":"x\"`, "a")
	for _, d := range rejected {
		f.Add(d, "a")
	}
	f.Fuzz(func(t *testing.T, s, key string) {
		var p, q Fields
		js := []byte(s)
		for _, skip := range []*Keys{nil, reserved} {
			pok := p.Parse(js, skip)
			keys := [][]byte{[]byte(key), []byte("a"), []byte("log")}
			qok := q.Find(js, keys, skip)
			if pok != qok {
				t.Fatalf("%q: Parse %v, Find %v", s, pok, qok)
			}
			distinct := map[string]bool{}
			for _, k := range keys {
				pv, pfound := p.Value(k)
				qv, qfound := q.Value(k)
				if pfound != qfound || string(pv) != string(qv) {
					t.Fatalf("%q key %q: Parse %x %v, Find %x %v", s, k, pv, pfound, qv, qfound)
				}
				if pfound {
					distinct[string(k)] = true
				}
			}
			if q.Len() != len(distinct) {
				t.Fatalf("%q: Find holds %d members, want %d", s, q.Len(), len(distinct))
			}
		}
	})
}

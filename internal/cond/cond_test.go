package cond

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

func sp(s string) *string { return &s }
func bp(b bool) *bool     { return &b }

// rec builds a msgpack map from alternating keys and values (string,
// int, bool, nil, or a nested []any of the same form for a map).
func rec(kv ...any) []byte {
	var b []byte
	b = msgp.AppendMapHeader(b, uint32(len(kv)/2))
	for i := 0; i+1 < len(kv); i += 2 {
		b = msgp.AppendString(b, kv[i].(string))
		b = appendVal(b, kv[i+1])
	}
	return b
}

func appendVal(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return msgp.AppendString(b, v)
	case []byte:
		return msgp.AppendBytes(b, v)
	case int:
		return msgp.AppendInt(b, v)
	case float64:
		return msgp.AppendFloat64(b, v)
	case bool:
		return msgp.AppendBool(b, v)
	case nil:
		return msgp.AppendNil(b)
	case []any:
		return append(b, rec(v...)...)
	}
	panic(fmt.Sprintf("rec: %T", v))
}

var sample = rec(
	"log", "2026-01-02 GET /api type=access status=200 user=bob@example.com\n",
	"stream", "stdout",
	"code", 200,
	"ok", true,
	"none", nil,
	"bin", []byte("raw-bytes"),
	"app.kubernetes.io/name", "dotted-top",
	"kubernetes", []any{
		"namespace_name", "prod",
		"labels", []any{"app", "web", "app.kubernetes.io/name", "frontend"},
	},
)

func TestMatch(t *testing.T) {
	for name, tc := range map[string]struct {
		s    Spec
		want bool
	}{
		"equals":                 {Spec{Field: "stream", Equals: sp("stdout")}, true},
		"equals other":           {Spec{Field: "stream", Equals: sp("stderr")}, false},
		"equals int as text":     {Spec{Field: "code", Equals: sp("200")}, true},
		"equals bool as text":    {Spec{Field: "ok", Equals: sp("true")}, true},
		"equals nil never":       {Spec{Field: "none", Equals: sp("")}, false},
		"equals bin":             {Spec{Field: "bin", Equals: sp("raw-bytes")}, true},
		"equals map never":       {Spec{Field: "kubernetes", Equals: sp("")}, false},
		"prefix":                 {Spec{Field: "log", Prefix: sp("2026-")}, true},
		"prefix no":              {Spec{Field: "log", Prefix: sp("GET")}, false},
		"prefix int never":       {Spec{Field: "code", Prefix: sp("2")}, false},
		"contains":               {Spec{Field: "log", Contains: sp("type=access")}, true},
		"contains no":            {Spec{Field: "log", Contains: sp("type=audit")}, false},
		"regex":                  {Spec{Field: "log", Regex: sp(`status=(2|3)\d\d\b`)}, true},
		"regex no":               {Spec{Field: "log", Regex: sp(`status=5\d\d`)}, false},
		"regex literal":          {Spec{Field: "log", Regex: sp(`type=access`)}, true},
		"regex anchored literal": {Spec{Field: "log", Regex: sp(`^2026`)}, true},
		"regex anchored miss":    {Spec{Field: "log", Regex: sp(`^GET`)}, false},
		"regex fold":             {Spec{Field: "log", Regex: sp(`(?i)TYPE=ACCESS`)}, true},
		"exists":                 {Spec{Field: "none", Exists: bp(true)}, true},
		"exists false absent":    {Spec{Field: "nope", Exists: bp(false)}, true},
		"exists false present":   {Spec{Field: "log", Exists: bp(false)}, false},
		"nested":                 {Spec{Field: "kubernetes.labels.app", Equals: sp("web")}, true},
		"nested dotted key":      {Spec{Field: "kubernetes.labels.app.kubernetes.io/name", Equals: sp("frontend")}, true},
		"top dotted key":         {Spec{Field: "app.kubernetes.io/name", Equals: sp("dotted-top")}, true},
		"nested missing":         {Spec{Field: "kubernetes.labels.tier", Exists: bp(true)}, false},
		"path through string":    {Spec{Field: "log.x", Exists: bp(true)}, false},
		"nested map exists":      {Spec{Field: "kubernetes.labels", Exists: bp(true)}, true},
		"not":                    {Spec{Not: &Spec{Field: "stream", Equals: sp("stderr")}}, true},
		"any":                    {Spec{Any: []Spec{{Field: "stream", Equals: sp("stderr")}, {Field: "code", Equals: sp("200")}}}, true},
		"any none":               {Spec{Any: []Spec{{Field: "stream", Equals: sp("stderr")}, {Field: "code", Equals: sp("500")}}}, false},
		"all":                    {Spec{All: []Spec{{Field: "stream", Equals: sp("stdout")}, {Field: "kubernetes.namespace_name", Prefix: sp("pr")}}}, true},
		"all one fails":          {Spec{All: []Spec{{Field: "stream", Equals: sp("stdout")}, {Field: "kubernetes.namespace_name", Prefix: sp("dev")}}}, false},
		"deep combination": {Spec{All: []Spec{
			{Not: &Spec{Field: "log", Contains: sp("healthz")}},
			{Any: []Spec{{Field: "kubernetes.labels.app", Equals: sp("web")}, {Field: "x", Exists: bp(true)}}},
		}}, true},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Compile(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Match(sample); got != tc.want {
				t.Fatalf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLiteralFastPath: plain literal patterns skip the regexp engine.
func TestLiteralFastPath(t *testing.T) {
	for pat, want := range map[string]op{
		`type=audit`: opContains, `^type=audit`: opPrefix, `type\.audit`: opContains,
		`type=a.dit`: opRegex, `(?i)x`: opRegex, `a|b`: opRegex, `a$`: opRegex,
	} {
		c, err := Compile(Spec{Field: "log", Regex: sp(pat)})
		if err != nil {
			t.Fatal(err)
		}
		if c.op != want {
			t.Errorf("%q: op %d, want %d", pat, c.op, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		s    Spec
		want string
	}{
		"nothing":         {Spec{Field: "log"}, "needs one of equals"},
		"two ops":         {Spec{Field: "log", Equals: sp("a"), Prefix: sp("b")}, "set only one of equals, prefix"},
		"no field":        {Spec{Contains: sp("a")}, "field: required with contains"},
		"field with any":  {Spec{Field: "x", Any: []Spec{{Field: "a", Exists: bp(true)}}}, "field: not valid with any"},
		"empty any":       {Spec{Any: []Spec{}}, "any: needs at least one condition"},
		"bad path":        {Spec{Field: "a..b", Exists: bp(true)}, `field: invalid path "a..b"`},
		"empty contains":  {Spec{Field: "a", Contains: sp("")}, "contains: empty string"},
		"empty regex":     {Spec{Field: "a", Regex: sp("")}, "regex: empty pattern"},
		"bad regex":       {Spec{Field: "a", Regex: sp(`type=(app|access`)}, "regex: at offset 5: error parsing regexp: missing closing )"},
		"bad regex inner": {Spec{Field: "a", Regex: sp(`ok [z-a]`)}, "regex: at offset 4: error parsing regexp: invalid character class range"},
		"nested path": {Spec{All: []Spec{{Field: "a", Exists: bp(true)}, {Not: &Spec{Field: "b", Regex: sp("x**")}}}},
			"all[1].not.regex: at offset 1: error parsing regexp: invalid nested repetition operator"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestMalformed: bad records never match and never panic.
func TestMalformed(t *testing.T) {
	c, _ := Compile(Spec{Field: "a.b", Exists: bp(true)})
	for _, r := range [][]byte{nil, {}, {0x81}, {0x81, 0xa1, 'a'}, {0x81, 0xa1, 'a', 0x81}, {0x91, 0x01}, {0xdf, 0xff, 0xff, 0xff, 0xff}} {
		if c.Match(r) {
			t.Errorf("%x matched", r)
		}
	}
}

// TestZeroAlloc: evaluation allocates nothing, for every operator.
func TestZeroAlloc(t *testing.T) {
	specs := []Spec{
		{Field: "log", Regex: sp(`status=(2|3)\d\d\b`)},
		{Field: "log", Regex: sp(`type=access`)},
		{Field: "code", Equals: sp("200")},
		{Field: "kubernetes.labels.app.kubernetes.io/name", Prefix: sp("front")},
		{All: []Spec{{Not: &Spec{Field: "log", Contains: sp("healthz")}}, {Any: []Spec{{Field: "ok", Equals: sp("true")}, {Field: "x", Exists: bp(true)}}}}},
	}
	for i, s := range specs {
		c, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(200, func() { c.Match(sample) }); n != 0 {
			t.Errorf("spec %d: %.1f allocs per Match", i, n)
		}
	}
}

// FuzzMatch evaluates conditions on arbitrary bytes: no panic, and on
// records that decode (without repeated keys) the result agrees with a
// reference evaluation on the decoded map.
func FuzzMatch(f *testing.F) {
	f.Add(sample, "kubernetes.labels.app", "web")
	f.Add(rec("log", "type=app x"), "log", "type=app")
	f.Add([]byte{0x81, 0xa1, 'a', 0x81, 0xa1, 'b', 0xa1, 'c'}, "a.b", "c")
	f.Add([]byte{0xde, 0x00, 0x01, 0xa1, 'a', 0xcd, 0x01, 0x00}, "a", "256")
	f.Fuzz(func(t *testing.T, data []byte, path, lit string) {
		if badPath(path) || path == "" || lit == "" || !utf8.ValidString(lit) {
			return
		}
		re := regexp.QuoteMeta(lit) + "$"
		specs := []Spec{
			{Field: path, Equals: &lit}, {Field: path, Prefix: &lit}, {Field: path, Contains: &lit},
			{Field: path, Regex: &re}, {Field: path, Exists: bp(true)},
		}
		v, decoded := reference(data)
		for _, s := range specs {
			c, err := Compile(s)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Match(data)
			n, _ := Compile(Spec{Not: &s})
			if n.Match(data) == got {
				t.Fatalf("not disagrees")
			}
			if !decoded {
				continue
			}
			if want, known := refMatch(v, path, s); known && got != want {
				t.Fatalf("%+v on %x: got %v, reference %v", s, data, got, want)
			}
		}
	})
}

// reference decodes data as a map with string keys and no repeated key at
// any level, or reports false.
func reference(data []byte) (map[string]any, bool) {
	v, rest, err := msgp.ReadIntfBytes(data)
	if err != nil || len(rest) != 0 {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok || !cleanMaps(data) {
		return nil, false
	}
	return m, true
}

// cleanMaps reports whether every map in b has distinct str keys (bin
// keys and repeats make the decoded map differ from the bytes).
func cleanMaps(b []byte) bool {
	var walk func(b []byte) ([]byte, bool)
	walk = func(b []byte) ([]byte, bool) {
		switch msgp.NextType(b) {
		case msgp.MapType:
			n, rest, err := msgp.ReadMapHeaderBytes(b)
			if err != nil {
				return nil, false
			}
			seen := map[string]bool{}
			for range n {
				if msgp.NextType(rest) != msgp.StrType {
					return nil, false
				}
				k, r, err := msgp.ReadStringZC(rest)
				if err != nil || seen[string(k)] {
					return nil, false
				}
				seen[string(k)] = true
				var ok bool
				if rest, ok = walk(r); !ok {
					return nil, false
				}
			}
			return rest, true
		case msgp.ArrayType:
			n, rest, err := msgp.ReadArrayHeaderBytes(b)
			if err != nil {
				return nil, false
			}
			for range n {
				var ok bool
				if rest, ok = walk(rest); !ok {
					return nil, false
				}
			}
			return rest, true
		}
		r, err := msgp.Skip(b)
		return r, err == nil
	}
	rest, ok := walk(b)
	return ok && len(rest) == 0
}

func refLookup(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	// The first key (in encoding order) that prefixes the path and holds
	// a map: with distinct keys, only one key can be a prefix followed by
	// "." and also lead to a match, except when several do; the package
	// takes the first in encoding order, which a Go map cannot tell, so
	// the reference accepts any that leads to a value.
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok && strings.HasPrefix(path, k+".") {
			if r, ok := refLookup(sub, path[len(k)+1:]); ok {
				return r, true
			}
		}
	}
	return nil, false
}

// refMatch evaluates s on the decoded map; known is false where the
// reference cannot tell (float text).
func refMatch(m map[string]any, path string, s Spec) (want, known bool) {
	v, ok := refLookup(m, path)
	if s.Exists != nil {
		return ok, true
	}
	if !ok {
		return false, true
	}
	var str []byte
	switch v := v.(type) {
	case string:
		str = []byte(v)
	case []byte:
		str = v
	case int64, uint64, bool:
		return s.Equals != nil && fmt.Sprint(v) == *s.Equals, true
	case float64, float32:
		return false, s.Equals == nil
	default:
		return false, true
	}
	switch {
	case s.Equals != nil:
		return string(str) == *s.Equals, true
	case s.Prefix != nil:
		return bytes.HasPrefix(str, []byte(*s.Prefix)), true
	case s.Contains != nil:
		return bytes.Contains(str, []byte(*s.Contains)), true
	}
	return regexp.MustCompile(*s.Regex).Match(str), true
}

// FuzzRegexPrefix: the literal-prefix prefilter agrees with package
// regexp on arbitrary values.
func FuzzRegexPrefix(f *testing.F) {
	f.Add("type=access", "x type=accessor type=access!")
	f.Add("ab+c\\b", "abbc abbbcx abc")
	f.Add("a(b|c)*d$", "abcbd abd")
	f.Add("foo.*bar|foo\\d", "foo1")
	f.Fuzz(func(t *testing.T, pat, val string) {
		re, err := regexp.Compile(pat)
		if err != nil {
			return
		}
		c, cerr := Compile(Spec{Field: "v", Regex: &pat})
		if cerr != nil {
			return
		}
		if got, want := c.Match(rec("v", val)), re.MatchString(val); got != want {
			t.Fatalf("%q on %q: got %v, regexp says %v", pat, val, got, want)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	line := "2026-01-02T10:00:00.123Z INFO GET /api/v1/orders type=access status=200 dur=12ms user=bob pad=" + strings.Repeat("x", 120) + "\n"
	r := rec("log", line, "stream", "stdout", "container_id", strings.Repeat("a", 64), "container_name", "web-1",
		"kubernetes", []any{"namespace_name", "prod", "labels", []any{"app", "web"}})
	for name, s := range map[string]Spec{
		"equals_top":        {Field: "stream", Equals: sp("stdout")},
		"contains":          {Field: "log", Contains: sp("type=audit")},
		"regex_literal":     {Field: "log", Regex: sp("type=audit")},
		"regex":             {Field: "log", Regex: sp(`type=(audit|access)\b`)},
		"regex_prefix_hit":  {Field: "log", Regex: sp(`type=access\b`)},
		"regex_prefix_miss": {Field: "log", Regex: sp(`type=audit\b`)},
		"regex_no_prefix":   {Field: "log", Regex: sp(`(audit|access)\b`)},
		"nested_equals":     {Field: "kubernetes.labels.app", Equals: sp("web")},
		"any_of_3":          {Any: []Spec{{Field: "log", Contains: sp("type=app ")}, {Field: "log", Contains: sp("type=audit")}, {Field: "log", Contains: sp("type=access")}}},
		"exists_missing":    {Field: "trace_id", Exists: bp(true)},
		"not_prefix":        {Not: &Spec{Field: "log", Prefix: sp("DEBUG")}},
		"regex_case_fold":   {Field: "log", Regex: sp(`(?i)STATUS=5\d\d`)},
		"contains_nomatch":  {Field: "log", Contains: sp("healthz")},
	} {
		c, err := Compile(s)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(r)))
			for b.Loop() {
				c.Match(r)
			}
		})
	}
}

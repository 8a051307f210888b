package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

func mustEncoder(t testing.TB, o Options) *Encoder {
	t.Helper()
	e, err := NewEncoder(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// one is the record {"v": v} for the msgpack value v.
func one(v []byte) []byte {
	r := msgp.AppendMapHeader(nil, 1)
	r = msgp.AppendString(r, "v")
	return append(r, v...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func b(bs ...byte) []byte { return bs }

// dockerRecord is what the Docker json-file parser makes of a line.
func dockerRecord() []byte {
	r := msgp.AppendMapHeader(nil, 5)
	r = msgp.AppendString(r, "log")
	r = msgp.AppendString(r, `2024-01-02T03:04:05.123Z INFO  [http-nio-8080-exec-7] c.e.web.RequestLogger - GET /api/v1/orders/81723?include=items,customer status=200 bytes=18234 dur_ms=12.7 ua="Mozilla/5.0 (X11; Linux x86_64)" trace=4bf92f3577b34da6`+"\n")
	r = msgp.AppendString(r, "stream")
	r = msgp.AppendString(r, "stdout")
	r = msgp.AppendString(r, "time")
	r = msgp.AppendString(r, "2024-01-02T03:04:05.123456789Z")
	r = msgp.AppendString(r, "container_name")
	r = msgp.AppendString(r, "/web")
	r = msgp.AppendString(r, "container_id")
	r = msgp.AppendString(r, strings.Repeat("4f3c2b1a09d8e7f6", 4))
	return r
}

// parsedRecord is a record after a JSON parser filter: numbers, bools, a
// nested map and array.
func parsedRecord() []byte {
	r := msgp.AppendMapHeader(nil, 10)
	r = msgp.AppendString(r, "level")
	r = msgp.AppendString(r, "info")
	r = msgp.AppendString(r, "msg")
	r = msgp.AppendString(r, "request served \"ok\" for user ünïcødé in 12.7 ms")
	r = msgp.AppendString(r, "status")
	r = msgp.AppendInt(r, 200)
	r = msgp.AppendString(r, "bytes")
	r = msgp.AppendInt(r, 18234)
	r = msgp.AppendString(r, "dur")
	r = msgp.AppendFloat64(r, 0.0127)
	r = msgp.AppendString(r, "ok")
	r = msgp.AppendBool(r, true)
	r = msgp.AppendString(r, "err")
	r = msgp.AppendNil(r)
	r = msgp.AppendString(r, "http")
	r = msgp.AppendMapHeader(r, 3)
	r = msgp.AppendString(r, "method")
	r = msgp.AppendString(r, "GET")
	r = msgp.AppendString(r, "path")
	r = msgp.AppendString(r, "/api/v1/orders/81723")
	r = msgp.AppendString(r, "headers")
	r = msgp.AppendMapHeader(r, 2)
	r = msgp.AppendString(r, "user-agent")
	r = msgp.AppendString(r, "curl/8.5.0")
	r = msgp.AppendString(r, "x-request-id")
	r = msgp.AppendString(r, "0b4f3c2b-1a09-d8e7-f645-123456789abc")
	r = msgp.AppendString(r, "tags")
	r = msgp.AppendArrayHeader(r, 3)
	r = msgp.AppendString(r, "a")
	r = msgp.AppendString(r, "b")
	r = msgp.AppendInt(r, -7)
	r = msgp.AppendString(r, "ts")
	r = wire.AppendEventTime(r, ts)
	return r
}

func TestTypes(t *testing.T) {
	bare := mustEncoder(t, Options{OmitTime: true})
	str := func(n int) string { return strings.Repeat("x", n) }
	evt := wire.AppendEventTime(nil, ts)
	cases := []struct {
		name string
		v    []byte
		want string // JSON of v
	}{
		{"fixint 0", msgp.AppendInt(nil, 0), "0"},
		{"fixint 9", msgp.AppendInt(nil, 9), "9"},
		{"fixint 127", msgp.AppendInt(nil, 127), "127"},
		{"negative fixint -1", msgp.AppendInt(nil, -1), "-1"},
		{"negative fixint -32", msgp.AppendInt(nil, -32), "-32"},
		{"uint8", b(0xcc, 200), "200"},
		{"uint16", b(0xcd, 0xff, 0xff), "65535"},
		{"uint32", b(0xce, 0xff, 0xff, 0xff, 0xff), "4294967295"},
		{"uint64 max", b(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "18446744073709551615"},
		{"int8 positive", b(0xd0, 5), "5"},
		{"int8", b(0xd0, 0x80), "-128"},
		{"int16", b(0xd1, 0x80, 0), "-32768"},
		{"int32", b(0xd2, 0x80, 0, 0, 0), "-2147483648"},
		{"int64 min", b(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0), "-9223372036854775808"},
		{"int64 via msgp", msgp.AppendInt64(nil, math.MaxInt64), "9223372036854775807"},
		{"float32", msgp.AppendFloat32(nil, 1.5), "1.5"},
		{"float32 0.1", msgp.AppendFloat32(nil, 0.1), "0.1"},
		{"float32 tiny", msgp.AppendFloat32(nil, 1e-7), "1e-7"},
		{"float32 NaN", msgp.AppendFloat32(nil, float32(math.NaN())), "null"},
		{"float32 Inf", msgp.AppendFloat32(nil, float32(math.Inf(1))), "null"},
		{"float64", msgp.AppendFloat64(nil, 3.14), "3.14"},
		{"float64 integral", msgp.AppendFloat64(nil, 123456789), "123456789"},
		{"float64 1e20", msgp.AppendFloat64(nil, 1e20), "100000000000000000000"},
		{"float64 1e21", msgp.AppendFloat64(nil, 1e21), "1e+21"},
		{"float64 1e-7", msgp.AppendFloat64(nil, 1e-7), "1e-7"},
		{"float64 -1.5e-300", msgp.AppendFloat64(nil, -1.5e-300), "-1.5e-300"},
		{"float64 -0", msgp.AppendFloat64(nil, math.Copysign(0, -1)), "-0"},
		{"float64 NaN", msgp.AppendFloat64(nil, math.NaN()), "null"},
		{"float64 +Inf", msgp.AppendFloat64(nil, math.Inf(1)), "null"},
		{"float64 -Inf", msgp.AppendFloat64(nil, math.Inf(-1)), "null"},
		{"nil", msgp.AppendNil(nil), "null"},
		{"true", msgp.AppendBool(nil, true), "true"},
		{"false", msgp.AppendBool(nil, false), "false"},
		{"fixstr empty", msgp.AppendString(nil, ""), `""`},
		{"fixstr", msgp.AppendString(nil, "abc"), `"abc"`},
		{"fixstr 31", msgp.AppendString(nil, str(31)), `"` + str(31) + `"`},
		{"str8", msgp.AppendString(nil, str(40)), `"` + str(40) + `"`},
		{"str8 short", b(0xd9, 2, 'h', 'i'), `"hi"`},
		{"str16", msgp.AppendString(nil, str(300)), `"` + str(300) + `"`},
		{"str32", b(0xdb, 0, 0, 0, 2, 'h', 'i'), `"hi"`},
		{"str32 big", msgp.AppendString(nil, str(70000)), `"` + str(70000) + `"`},
		{"bin8", msgp.AppendBytes(nil, []byte("hi\n")), `"hi\n"`},
		{"bin16", b(0xc5, 0, 2, 'h', 'i'), `"hi"`},
		{"bin32", b(0xc6, 0, 0, 0, 2, 'h', 'i'), `"hi"`},
		{"bin invalid utf8", msgp.AppendBytes(nil, []byte{0xff, 'a'}), `"\ufffda"`},
		{"fixarray empty", msgp.AppendArrayHeader(nil, 0), "[]"},
		{"fixarray", cat(b(0x93, 1), msgp.AppendString(nil, "a"), msgp.AppendNil(nil)), `[1,"a",null]`},
		{"array16", b(0xdc, 0, 2, 1, 2), "[1,2]"},
		{"array32", b(0xdd, 0, 0, 0, 2, 1, 2), "[1,2]"},
		{"array of empties", b(0x93, 0x90, 0x80, 0x91, 0x90), "[[],{},[[]]]"},
		{"fixmap empty", msgp.AppendMapHeader(nil, 0), "{}"},
		{"fixmap nested", cat(b(0x81, 0xa1, 'a', 0x81, 0xa1, 'b', 0x91, 1)), `{"a":{"b":[1]}}`},
		{"map16", b(0xde, 0, 1, 0xa1, 'k', 1), `{"k":1}`},
		{"map32", b(0xdf, 0, 0, 0, 2, 0xa1, 'k', 1, 0xa1, 'l', 0xc0), `{"k":1,"l":null}`},
		{"map duplicate keys", b(0x82, 0xa1, 'k', 1, 0xa1, 'k', 2), `{"k":1,"k":2}`},
		{"EventTime fixext8", evt, `"2024-01-02T03:04:05.123000000Z"`},
		{"EventTime ext8", cat(b(0xc7, 8), evt[1:]), `"2024-01-02T03:04:05.123000000Z"`},
		{"EventTime ext32", cat(b(0xc9, 0, 0, 0, 8), evt[1:]), `"2024-01-02T03:04:05.123000000Z"`},
		{"EventTime bad nanos", b(0xd7, 0, 0, 0, 0, 1, 0x3b, 0x9a, 0xca, 0x00), `"AAAAATuaygA="`},
		{"timestamp32", msgp.AppendTimeExt(nil, time.Unix(1704164645, 0)), `"2024-01-02T03:04:05.000000000Z"`},
		{"timestamp64", msgp.AppendTimeExt(nil, time.Unix(1704164645, 5)), `"2024-01-02T03:04:05.000000005Z"`},
		{"timestamp96 before 1970", msgp.AppendTimeExt(nil, time.Date(1960, 2, 29, 23, 59, 59, 999999999, time.UTC)), `"1960-02-29T23:59:59.999999999Z"`},
		{"timestamp96 year 10000", msgp.AppendTimeExt(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), `"10000-01-01T00:00:00.000000000Z"`},
		{"fixext1 other", b(0xd4, 5, 'A'), `"QQ=="`},
		{"fixext16 other", cat(b(0xd8, 0x7f), bytes.Repeat([]byte{0xff}, 16)), `"/////////////////////w=="`},
		{"ext8 empty", b(0xc7, 0, 7), `""`},
		{"ext16", b(0xc8, 0, 3, 9, 1, 2, 3), `"AQID"`},
		{"ext32", b(0xc9, 0, 0, 0, 3, 0xf0, 1, 2, 3), `"AQID"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := one(c.v)
			want := `{"v":` + c.want + `}`
			got, err := bare.AppendRecord(nil, nil, 0, rec)
			if err != nil || string(got) != want {
				t.Fatalf("got %.200s, %v\nwant %.200s", got, err, want)
			}
			if !json.Valid(got) {
				t.Fatalf("not valid JSON: %s", got)
			}
			ref, err := refRecord(rec, false)
			if err != nil {
				t.Fatalf("ref: %v", err)
			}
			if err := sameJSON(got, ref); err != nil {
				t.Fatal(err)
			}
			// The same value nested one level deeper, in an array.
			got, err = bare.AppendRecord(nil, nil, 0, one(cat(b(0x92), c.v, c.v)))
			if err != nil || string(got) != `{"v":[`+c.want+`,`+c.want+`]}` {
				t.Fatalf("in an array: %.200s, %v", got, err)
			}
		})
	}
}

// TestAppendLineNestedTime: AppendLine writes nested times in its own
// (trimmed) layout.
func TestAppendLineNestedTime(t *testing.T) {
	got, err := AppendLine(nil, []byte("t"), ts, one(wire.AppendEventTime(nil, ts)))
	want := `{"tag":"t","time":"2024-01-02T03:04:05.123Z","record":{"v":"2024-01-02T03:04:05.123Z"}}` + "\n"
	if err != nil || string(got) != want {
		t.Fatalf("%s, %v", got, err)
	}
	got, err = AppendLine(nil, []byte("t\xff"), 0, msgp.AppendMapHeader(nil, 0))
	want = `{"tag":"t\ufffd","time":"1970-01-01T00:00:00Z","record":{}}` + "\n"
	if err != nil || string(got) != want {
		t.Fatalf("%s, %v", got, err)
	}
}

func TestKeys(t *testing.T) {
	bare := mustEncoder(t, Options{OmitTime: true})
	ok := []struct {
		name string
		key  []byte
		want string
	}{
		{"fixint", msgp.AppendInt(nil, 5), `"5"`},
		{"negative", msgp.AppendInt(nil, -5), `"-5"`},
		{"int64", msgp.AppendInt64(nil, math.MinInt64), `"-9223372036854775808"`},
		{"uint64", msgp.AppendUint64(nil, math.MaxUint64), `"18446744073709551615"`},
		{"true", msgp.AppendBool(nil, true), `"true"`},
		{"false", msgp.AppendBool(nil, false), `"false"`},
		{"bin", msgp.AppendBytes(nil, []byte("k")), `"k"`},
		{"str16", msgp.AppendString(nil, strings.Repeat("k", 300)), `"` + strings.Repeat("k", 300) + `"`},
		{"escaped", msgp.AppendString(nil, "a\"b\n\x00\xff"), `"a\"b\n\u0000\ufffd"`},
		{"empty", msgp.AppendString(nil, ""), `""`},
	}
	for _, c := range ok {
		rec := cat(b(0x81), c.key, b(1))
		got, err := bare.AppendRecord(nil, nil, 0, rec)
		if want := `{` + c.want + `:1}`; err != nil || string(got) != want {
			t.Errorf("%s: %s, %v; want %s", c.name, got, err, want)
		}
		if ref, err := refRecord(rec, false); err != nil {
			t.Errorf("%s: ref: %v", c.name, err)
		} else if err := sameJSON(got, ref); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	bad := map[string][]byte{
		"nil":     msgp.AppendNil(nil),
		"float32": msgp.AppendFloat32(nil, 1),
		"float64": msgp.AppendFloat64(nil, 1),
		"array":   b(0x90),
		"map":     b(0x80),
		"ext":     wire.AppendEventTime(nil, ts),
	}
	for name, k := range bad {
		for _, rec := range [][]byte{cat(b(0x81), k, b(1)), one(cat(b(0x81), k, b(1)))} {
			dst := []byte("x")
			got, err := bare.AppendRecord(dst, nil, 0, rec)
			if err != ErrKeyType || string(got) != "x" {
				t.Errorf("%s key: %q, %v", name, got, err)
			}
		}
	}
}

func TestEscaping(t *testing.T) {
	for c := range 0x20 {
		got := AppendString(nil, []byte{'a', byte(c), 'b'})
		var want string
		switch c {
		case '\b':
			want = `"a\bb"`
		case '\f':
			want = `"a\fb"`
		case '\n':
			want = `"a\nb"`
		case '\r':
			want = `"a\rb"`
		case '\t':
			want = `"a\tb"`
		default:
			want = `"a\u00` + string(hexDigits[c>>4]) + string(hexDigits[c&0xf]) + `b"`
		}
		if string(got) != want {
			t.Errorf("byte %#x: %s, want %s", c, got, want)
		}
		var s string
		if err := json.Unmarshal(got, &s); err != nil || s != string([]byte{'a', byte(c), 'b'}) {
			t.Errorf("byte %#x: decodes to %q, %v", c, s, err)
		}
	}
	cases := []struct{ in, want string }{
		{``, `""`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"a\x7fb", "\"a\x7fb\""},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"<&>", `"<&>"`},
		{"é€😀", `"é€😀"`},
		{"\ufffd", "\"\ufffd\""},                           // a real U+FFFD stays as it is
		{"\x80", `"\ufffd"`},                               // lone continuation
		{"a\xbfb", `"a\ufffdb"`},                           // lone continuation
		{"\xc3", `"\ufffd"`},                               // truncated 2-byte
		{"\xc3a", `"\ufffda"`},                             // truncated 2-byte
		{"\xe2\x82", `"\ufffd\ufffd"`},                     // truncated 3-byte
		{"\xe2\x82z", `"\ufffd\ufffdz"`},                   // truncated 3-byte
		{"\xf0\x9f\x98", `"\ufffd\ufffd\ufffd"`},           // truncated 4-byte
		{"\xc0\xaf", `"\ufffd\ufffd"`},                     // overlong '/'
		{"\xe0\x80\xaf", `"\ufffd\ufffd\ufffd"`},           // overlong '/'
		{"\xf0\x80\x80\xaf", `"\ufffd\ufffd\ufffd\ufffd"`}, // overlong '/'
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},           // surrogate U+D800
		{"\xed\xbf\xbf", `"\ufffd\ufffd\ufffd"`},           // surrogate U+DFFF
		{"\xf4\x90\x80\x80", `"\ufffd\ufffd\ufffd\ufffd"`}, // U+110000
		{"\xf7\xbf\xbf\xbf", `"\ufffd\ufffd\ufffd\ufffd"`}, // > U+10FFFF
		{"\xfe\xff", `"\ufffd\ufffd"`},
		{"abcdefgh\xffabcdefgh", `"abcdefgh\ufffdabcdefgh"`},
	}
	for _, c := range cases {
		got := AppendString(nil, []byte(c.in))
		if string(got) != c.want {
			t.Errorf("%q: %s, want %s", c.in, got, c.want)
		}
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Errorf("%q: %s not valid", c.in, got)
		}
		// As encoding/json does.
		std, _ := json.Marshal(c.in)
		var a, b string
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(std, &b) != nil || a != b {
			t.Errorf("%q: decodes to %q, encoding/json's to %q", c.in, a, b)
		}
	}
}

// TestEscapingFastPath puts every kind of byte at every offset of strings
// of 0 to 40 bytes (so across the 8-byte words) and compares with the slow
// reference escaper.
func TestEscapingFastPath(t *testing.T) {
	specials := []string{"\"", "\\", "\x00", "\x1f", "\n", "\x7f", "\x80", "\xff", "é", "€", "😀", "\xed\xa0\x80", "\xe2\x82", " ", "~"}
	for n := range 41 {
		base := strings.Repeat("abcdefgh", 6)[:n]
		for pos := 0; pos <= n; pos++ {
			for _, s := range specials {
				in := []byte(base[:pos] + s + base[pos:])
				got := AppendString([]byte("pre"), in)
				want := append([]byte("pre"), refString(in)...)
				if !bytes.Equal(got, want) {
					t.Fatalf("%q: %s, want %s", in, got, want)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab \"\\\n\x01\x7f\x80\xbf\xc3\xa9\xe2\x82\xac\xed\xa0\xf0\x9f\x98\x80\xff")
	for range 20000 {
		in := make([]byte, r.IntN(70))
		for i := range in {
			if r.IntN(4) == 0 {
				in[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				in[i] = byte(r.IntN(256))
			}
		}
		got := AppendString(nil, in)
		if want := refString(in); !bytes.Equal(got, want) {
			t.Fatalf("%q: %s, want %s", in, got, want)
		}
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("%q: %q not valid", in, got)
		}
		if utf8.Valid(in) {
			var s string
			if json.Unmarshal(got, &s) != nil || s != string(in) {
				t.Fatalf("%q: decodes to %q", in, s)
			}
		}
	}
}

func TestAddedFields(t *testing.T) {
	rec := record("x", 1)
	cases := []struct {
		name string
		o    Options
		rec  []byte
		want string
	}{
		{"default", Options{}, rec, `{"@timestamp":"2024-01-02T03:04:05.123000000Z","log":"x","n":1}`},
		{"tag", Options{TagKey: "tag"}, rec, `{"@timestamp":"2024-01-02T03:04:05.123000000Z","tag":"app.\"web\"","log":"x","n":1}`},
		{"tag only", Options{OmitTime: true, TagKey: "tag"}, rec, `{"tag":"app.\"web\"","log":"x","n":1}`},
		{"omit", Options{OmitTime: true, TimeKey: "t"}, rec, `{"log":"x","n":1}`},
		{"time key", Options{TimeKey: "date"}, rec, `{"date":"2024-01-02T03:04:05.123000000Z","log":"x","n":1}`},
		{"escaped keys", Options{TimeKey: "a\"b", TagKey: "\n"}, rec, `{"a\"b":"2024-01-02T03:04:05.123000000Z","\n":"app.\"web\"","log":"x","n":1}`},
		{"epoch s", Options{TimeFormat: EpochSeconds}, rec, `{"@timestamp":1704164645.123000000,"log":"x","n":1}`},
		{"epoch ms", Options{TimeFormat: EpochMillis}, rec, `{"@timestamp":1704164645123,"log":"x","n":1}`},
		{"epoch ns", Options{TimeFormat: EpochNanos}, rec, `{"@timestamp":1704164645123000000,"log":"x","n":1}`},
		{"empty record", Options{TagKey: "tag"}, b(0x80), `{"@timestamp":"2024-01-02T03:04:05.123000000Z","tag":"app.\"web\""}`},
		{"empty record omit", Options{OmitTime: true}, b(0x80), `{}`},
		{"record has time", Options{TagKey: "tag"}, cat(b(0x82), msgp.AppendString(nil, "@timestamp"), b(1), msgp.AppendString(nil, "k"), b(2)), `{"tag":"app.\"web\"","@timestamp":1,"k":2}`},
		{"record has tag", Options{TagKey: "tag"}, cat(b(0x82), msgp.AppendString(nil, "k"), b(2), msgp.AppendBytes(nil, []byte("tag")), b(0xc0)), `{"@timestamp":"2024-01-02T03:04:05.123000000Z","k":2,"tag":null}`},
		{"record has both", Options{TagKey: "tag"}, cat(b(0x82), msgp.AppendString(nil, "tag"), b(2), msgp.AppendString(nil, "@timestamp"), b(3)), `{"tag":2,"@timestamp":3}`},
		{"nested key does not count", Options{}, one(cat(b(0x81), msgp.AppendString(nil, "@timestamp"), b(1))), `{"@timestamp":"2024-01-02T03:04:05.123000000Z","v":{"@timestamp":1}}`},
		{"int key", Options{TimeKey: "5"}, cat(b(0x81, 5, 1)), `{"5":1}`},
		{"bool key", Options{TimeKey: "true"}, cat(b(0x81, 0xc3, 1)), `{"true":1}`},
		{"replaced key", Options{TimeKey: "a\ufffd"}, cat(b(0x81), msgp.AppendString(nil, "a\xff"), b(1)), `{"a\ufffd":1}`},
		{"other replaced key", Options{TimeKey: "a\ufffd"}, cat(b(0x81), msgp.AppendString(nil, "a\xff\xff"), b(1)), "{\"a\ufffd\":\"2024-01-02T03:04:05.123000000Z\",\"a\\ufffd\\ufffd\":1}"},
	}
	for _, c := range cases {
		e := mustEncoder(t, c.o)
		got, err := e.AppendRecord([]byte("pre"), []byte(`app."web"`), ts, c.rec)
		if err != nil || string(got) != "pre"+c.want {
			t.Errorf("%s: %s, %v\nwant pre%s", c.name, got, err, c.want)
		}
		if !json.Valid(got[3:]) {
			t.Errorf("%s: not JSON", c.name)
		}
	}
	var zero Encoder
	if got, err := zero.AppendRecord(nil, []byte("t"), ts, rec); err != nil || string(got) != `{"log":"x","n":1}` {
		t.Errorf("zero Encoder: %s, %v", got, err)
	}
	for _, o := range []Options{
		{TimeFormat: numTimeFormats},
		{TimeKey: "a\xff"},
		{TagKey: "\xff", OmitTime: true},
		{TagKey: "@timestamp"},
		{TagKey: "t", TimeKey: "t"},
	} {
		if _, err := NewEncoder(o); err == nil {
			t.Errorf("NewEncoder(%+v) accepted", o)
		}
	}
	if _, err := NewEncoder(Options{TagKey: "@timestamp", OmitTime: true}); err != nil {
		t.Errorf("tag key @timestamp with OmitTime: %v", err)
	}
}

func TestTimeFormats(t *testing.T) {
	cases := []struct {
		ns                  int64
		rfc, sec, ms, nanos string
	}{
		{0, "1970-01-01T00:00:00.000000000Z", "0.000000000", "0", "0"},
		{1, "1970-01-01T00:00:00.000000001Z", "0.000000001", "0", "1"},
		{-1, "1969-12-31T23:59:59.999999999Z", "-0.000000001", "-1", "-1"},
		{-1_500_000_000, "1969-12-31T23:59:58.500000000Z", "-1.500000000", "-1500", "-1500000000"},
		{ts, "2024-01-02T03:04:05.123000000Z", "1704164645.123000000", "1704164645123", "1704164645123000000"},
		{math.MaxInt64, "2262-04-11T23:47:16.854775807Z", "9223372036.854775807", "9223372036854", "9223372036854775807"},
		{math.MinInt64, "1677-09-21T00:12:43.145224192Z", "-9223372036.854775808", "-9223372036855", "-9223372036854775808"},
	}
	for _, c := range cases {
		for f, want := range map[TimeFormat]string{RFC3339Nano: `"` + c.rfc + `"`, EpochSeconds: c.sec, EpochMillis: c.ms, EpochNanos: c.nanos} {
			if got := appendTime(nil, c.ns, f, false); string(got) != want {
				t.Errorf("%d as %v: %s, want %s", c.ns, f, got, want)
			}
		}
	}
	// The hand-made calendar against package time, over the whole int64
	// range of nanoseconds and some seconds far beyond.
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 200000 {
		ns := int64(r.Uint64())
		if i%2 == 0 {
			ns = r.Int64N(200*365*86400e9) - 100*365*86400e9
		}
		for _, trim := range []bool{false, true} {
			layout := "2006-01-02T15:04:05.000000000Z07:00"
			if trim {
				layout = time.RFC3339Nano
			}
			got := appendTime(nil, ns, RFC3339Nano, trim)
			if want := `"` + time.Unix(0, ns).UTC().Format(layout) + `"`; string(got) != want {
				t.Fatalf("%d trim %v: %s, want %s", ns, trim, got, want)
			}
		}
		sec, nsec := r.Int64N(1<<40)-1<<39, uint32(r.IntN(1e9))
		if got, want := string(appendRFC3339(nil, sec, nsec, false)), time.Unix(sec, int64(nsec)).UTC().Format("2006-01-02T15:04:05.000000000Z07:00"); got != want {
			t.Fatalf("%d.%d: %s, want %s", sec, nsec, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	e := mustEncoder(t, Options{TagKey: "tag"})
	deepMap := func(depth int) []byte { // {"x":[[...]]} depth levels in all
		return cat(b(0x81, 0xa1, 'x'), bytes.Repeat([]byte{0x91}, depth-2), b(0x90))
	}
	cases := []struct {
		name string
		rec  []byte
		err  error
	}{
		{"nil", nil, ErrNotMap},
		{"array", b(0x90), ErrNotMap},
		{"string", msgp.AppendString(nil, "x"), ErrNotMap},
		{"reserved", b(0xc1), ErrNotMap},
		{"map16 header cut", b(0xde, 0), ErrTruncated},
		{"map32 too many", b(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k', 1), ErrTruncated},
		{"nested map32 too many", one(b(0xdf, 0, 0, 0, 2, 0xa1, 'k', 1)), ErrTruncated},
		{"nested array32 too many", one(b(0xdd, 0xff, 0xff, 0xff, 0xff, 1)), ErrTruncated},
		{"value missing", b(0x81, 0xa1, 'k'), ErrTruncated},
		{"reserved value", one(b(0xc1)), ErrMalformed},
		{"reserved key", b(0x81, 0xc1, 1), ErrMalformed},
		{"reserved nested", one(b(0x92, 1, 0xc1)), ErrMalformed},
		{"trailing", b(0x80, 0xc0), ErrTrailing},
		{"depth 65", deepMap(65), ErrDepth},
		{"depth 65 map16", cat(b(0x81, 0xa1, 'x'), bytes.Repeat([]byte{0xde, 0, 1, 0xa1, 'k'}, 63), b(0x80)), ErrDepth},
		{"depth 100000", deepMap(100000), ErrDepth},
	}
	for _, c := range cases {
		dst := []byte("keep")
		got, err := e.AppendRecord(dst, []byte("t"), ts, c.rec)
		if err != c.err || string(got) != "keep" {
			t.Errorf("%s: %q, %v; want %v", c.name, got, err, c.err)
		}
		if _, err := AppendLine(nil, []byte("t"), ts, c.rec); !errors.Is(err, c.err) {
			t.Errorf("%s: AppendLine: %v", c.name, err)
		}
	}
	if got, err := e.AppendRecord(nil, nil, 0, deepMap(64)); err != nil || !json.Valid(got) {
		t.Errorf("depth 64: %v", err)
	}
	if !wire.WithinDepth(deepMap(64), 64) || wire.WithinDepth(deepMap(65), 64) {
		t.Error("depth counted unlike wire.WithinDepth")
	}
	if !errors.Is(ErrDepth, msgp.ErrRecursion) || !errors.Is(ErrMalformed, wire.ErrMalformed) || errors.Is(ErrTruncated, msgp.ErrRecursion) {
		t.Error("errors.Is")
	}
	// Every cut of a record with every type in it is refused.
	full := cat(b(0x82), msgp.AppendString(nil, "r"), parsedRecord(), msgp.AppendString(nil, "d"), one(dockerRecord()))
	if _, err := e.AppendRecord(nil, nil, 0, full); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(full); i++ {
		dst := []byte("keep")
		got, err := e.AppendRecord(dst, nil, 0, full[:i])
		if err != ErrTruncated || string(got) != "keep" {
			t.Fatalf("cut at %d of %d: %q, %v", i, len(full), got, err)
		}
	}
}

func TestEntries(t *testing.T) {
	e := mustEncoder(t, Options{TagKey: "tag", TimeFormat: EpochNanos})
	var chunk []byte
	for i := range 3 {
		chunk = wire.AppendEntry(chunk, ts+int64(i), record("l", i))
	}
	rest := chunk
	for i := range 3 {
		entry, r, err := NextEntry(rest)
		if err != nil {
			t.Fatal(err)
		}
		if len(entry) != wire.EntryLen(len(record("l", i))) || cap(entry) != len(entry) {
			t.Fatalf("entry %d: %d bytes", i, len(entry))
		}
		rest = r
		got, err := e.AppendEntry([]byte("x"), []byte("t"), entry)
		want := `x{"@timestamp":` + strconv.FormatInt(ts+int64(i), 10) + `,"tag":"t","log":"l","n":` + strconv.Itoa(i) + `}`
		if err != nil || string(got) != want {
			t.Fatalf("%s, %v; want %s", got, err, want)
		}
	}
	if entry, r, err := NextEntry(rest); err != io.EOF || entry != nil || r != nil {
		t.Fatalf("end: %v", err)
	}
	broken := append(wire.AppendEntry(nil, ts, record("l", 0)), 0x92, 0xc1)
	_, r, _ := NextEntry(broken)
	if entry, r2, err := NextEntry(r); err != ErrBrokenEntries || !errors.Is(err, wire.ErrMalformed) || entry != nil || !bytes.Equal(r2, r) {
		t.Fatalf("broken: %v", err)
	}

	// Time forms, as wire reads them.
	rec := record("l", 0)
	forms := []struct {
		name  string
		entry []byte
		ns    int64
	}{
		{"EventTime", wire.AppendEntry(nil, ts, rec), ts},
		{"int", cat(b(0x92), msgp.AppendInt64(nil, 1704164645), rec), 1704164645e9},
		{"[time, meta]", cat(b(0x92, 0x92), wire.AppendEventTime(nil, ts), b(0x80), rec), ts},
		{"three elements", cat(b(0x93), wire.AppendEventTime(nil, ts), rec, b(0xc0)), ts},
	}
	for _, f := range forms {
		ns, got, err := DecodeEntry(f.entry)
		if err != nil || ns != f.ns || !bytes.Equal(got, rec) {
			t.Errorf("%s: %d %x %v", f.name, ns, got, err)
		}
	}
	for name, bad := range map[string][]byte{
		"empty":       nil,
		"not array":   rec,
		"one element": cat(b(0x91), rec),
		"record nil":  cat(b(0x92), wire.AppendEventTime(nil, ts), b(0xc0)),
		"bad time":    cat(b(0x92), msgp.AppendString(nil, "now"), rec),
		"two entries": cat(wire.AppendEntry(nil, ts, rec), wire.AppendEntry(nil, ts, rec)),
		"trailing":    cat(wire.AppendEntry(nil, ts, rec), b(0xc1)),
		"truncated":   wire.AppendEntry(nil, ts, rec)[:5],
	} {
		if _, _, err := DecodeEntry(bad); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
		if got, err := e.AppendEntry([]byte("x"), nil, bad); err == nil || string(got) != "x" {
			t.Errorf("%s: AppendEntry %q, %v", name, got, err)
		}
	}
}

func TestAppendRawField(t *testing.T) {
	rec := cat(b(0x85),
		msgp.AppendInt(nil, 1), msgp.AppendString(nil, "int key"),
		msgp.AppendString(nil, "nested"), one(msgp.AppendString(nil, "deep")),
		msgp.AppendString(nil, "log"), msgp.AppendString(nil, "raw \"line\"\n\xff"),
		msgp.AppendBytes(nil, []byte("bin")), msgp.AppendBytes(nil, []byte{0, 1}),
		msgp.AppendString(nil, "n"), msgp.AppendInt(nil, 5),
	)
	for key, want := range map[string]string{"log": "raw \"line\"\n\xff", "bin": "\x00\x01"} {
		got, ok := AppendRawField([]byte("x"), rec, key)
		if !ok || string(got) != "x"+want {
			t.Errorf("%s: %q %v", key, got, ok)
		}
	}
	for _, key := range []string{"n", "nested", "v", "1", "missing", ""} {
		if got, ok := AppendRawField([]byte("x"), rec, key); ok || string(got) != "x" {
			t.Errorf("%s: %q %v", key, got, ok)
		}
	}
	for _, bad := range [][]byte{nil, b(0x90), b(0x82, 0xa1, 'a', 1), b(0x81, 0xa3, 'l', 'o', 'g', 0xa5, 'x')} {
		if got, ok := AppendRawField(nil, bad, "log"); ok || got != nil {
			t.Errorf("%x: %q %v", bad, got, ok)
		}
	}
}

// TestRoundTrip: random records built from Go values decode back to the
// same values.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	bare := mustEncoder(t, Options{OmitTime: true})
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := r.IntN(10); {
		case k == 0 && depth < 5:
			m := map[string]any{}
			for range r.IntN(5) {
				m[strconv.Itoa(r.IntN(100))+"é\n"] = gen(depth + 1)
			}
			return m
		case k == 1 && depth < 5:
			a := []any{}
			for range r.IntN(5) {
				a = append(a, gen(depth+1))
			}
			return a
		case k == 2:
			return r.Int64() >> r.IntN(64)
		case k == 3:
			return math.Float64frombits(r.Uint64())
		case k == 4:
			return r.IntN(2) == 0
		case k == 5:
			return nil
		case k == 6:
			return float32(r.NormFloat64())
		default:
			s := make([]rune, r.IntN(30))
			for i := range s {
				s[i] = rune(r.IntN(0x300))
			}
			return string(s)
		}
	}
	for range 2000 {
		v := map[string]any{"root": gen(0)}
		rec, err := msgp.AppendIntf(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := bare.AppendRecord(nil, nil, 0, rec)
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		ref, err := refRecord(rec, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameJSON(got, ref); err != nil {
			t.Fatal(err)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	e := mustEncoder(t, Options{TagKey: "tag"})
	docker, parsed := dockerRecord(), parsedRecord()
	chunk := wire.AppendEntry(nil, ts, docker)
	chunk = wire.AppendEntry(chunk, ts, parsed)
	deep := cat(b(0x81, 0xa1, 'x'), bytes.Repeat([]byte{0x91}, 62), b(0x90))
	tooDeep := cat(b(0x81, 0xa1, 'x'), bytes.Repeat([]byte{0x91}, 100), b(0x90))
	hostile := cat(b(0x81), msgp.AppendString(nil, "x"), msgp.AppendString(nil, strings.Repeat("\xff\x00\"é", 100)))
	keyed := cat(b(0x83, 5, 1, 0xc3, 2), msgp.AppendString(nil, "@timestamp"), b(3))
	tag := []byte("app.web")
	dst := make([]byte, 0, 1<<16)
	var err error
	for name, fn := range map[string]func(){
		"AppendRecord docker":  func() { dst, err = e.AppendRecord(dst[:0], tag, ts, docker) },
		"AppendRecord parsed":  func() { dst, err = e.AppendRecord(dst[:0], tag, ts, parsed) },
		"AppendRecord deep":    func() { dst, err = e.AppendRecord(dst[:0], tag, ts, deep) },
		"AppendRecord hostile": func() { dst, err = e.AppendRecord(dst[:0], tag, ts, hostile) },
		"AppendRecord keys":    func() { dst, err = e.AppendRecord(dst[:0], tag, ts, keyed) },
		"AppendRecord too deep": func() {
			if dst, err = e.AppendRecord(dst[:0], tag, ts, tooDeep); err == ErrDepth {
				err = nil
			}
		},
		"AppendRecord not map": func() {
			if dst, err = e.AppendRecord(dst[:0], tag, ts, tag); err == ErrNotMap {
				err = nil
			}
		},
		"NextEntry+AppendEntry": func() {
			dst = dst[:0]
			for rest := chunk; err == nil; {
				var entry []byte
				if entry, rest, err = NextEntry(rest); err != nil {
					break
				}
				dst, err = e.AppendEntry(dst, tag, entry)
			}
			if err == io.EOF {
				err = nil
			}
		},
		"AppendLine":     func() { dst, err = AppendLine(dst[:0], tag, ts, parsed) },
		"AppendRawField": func() { dst, _ = AppendRawField(dst[:0], docker, "container_id") },
		"AppendString":   func() { dst = AppendString(dst[:0], hostile) },
	} {
		fn()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := testing.AllocsPerRun(200, fn); n != 0 || err != nil {
			t.Errorf("%s: %v allocs per run, %v", name, n, err)
		}
	}
}

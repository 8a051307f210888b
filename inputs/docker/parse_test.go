package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustTime(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixNano()
}

// TestParseFormatsExamples checks every exact line of formats.md §3.2.
func TestParseFormatsExamples(t *testing.T) {
	tests := map[string]struct {
		line, log, stream, time string
	}{
		"escapes": {
			`{"log":"hello \u003cworld\u003e \u0026 \"q\"\u0009tab\n","stream":"stdout","time":"2024-01-02T03:04:05.1Z"}`,
			"hello <world> & \"q\"\ttab\n", "stdout", "2024-01-02T03:04:05.1Z",
		},
		"partial": {
			`{"log":"partial-chunk-without-newline","stream":"stderr","time":"2024-01-02T03:04:05.1Z"}`,
			"partial-chunk-without-newline", "stderr", "2024-01-02T03:04:05.1Z",
		},
		"attrs": {
			`{"log":"with attrs\n","stream":"stdout","attrs":{"com.example.team":"a","tag":"web"},"time":"2024-01-02T03:04:05Z"}`,
			"with attrs\n", "stdout", "2024-01-02T03:04:05Z",
		},
		"utf8": {
			`{"log":"bad utf8 \ufffd and \u2028\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`,
			"bad utf8 \ufffd and \u2028\n", "stdout", "2024-01-02T03:04:05.123456789Z",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var p parser
			l, err := p.parse([]byte(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			if string(l.log) != tc.log || string(l.stream) != tc.stream {
				t.Fatalf("got log %q stream %q", l.log, l.stream)
			}
			if !l.hasTime || l.time != mustTime(t, tc.time) {
				t.Fatalf("time %d, want %s", l.time, tc.time)
			}
		})
	}
}

func TestParseKeyOrderAndWhitespace(t *testing.T) {
	tests := map[string]string{
		"time first":     `{"time":"2024-01-02T03:04:05.1Z","stream":"stderr","log":"x\n"}`,
		"stream first":   `{"stream":"stderr","log":"x\n","time":"2024-01-02T03:04:05.1Z"}`,
		"attrs first":    `{"attrs":{"a":"}\"{","b":[1,{"c":null}]},"log":"x\n","stream":"stderr","time":"2024-01-02T03:04:05.1Z"}`,
		"spaces":         " { \"log\" : \"x\\n\" ,\t\"stream\":\"stderr\" , \"time\" : \"2024-01-02T03:04:05.1Z\" } \r",
		"unknown scalar": `{"n":12.5e3,"ok":true,"z":null,"log":"x\n","stream":"stderr","time":"2024-01-02T03:04:05.1Z"}`,
		"escaped key":    `{"l\u006fg":"x\n","stream":"stderr","time":"2024-01-02T03:04:05.1Z"}`,
		"escaped stream": `{"log":"x\n","stream":"std\u0065rr","time":"2024-01-02T03:04:05.1Z"}`,
	}
	for name, line := range tests {
		t.Run(name, func(t *testing.T) {
			var p parser
			l, err := p.parse([]byte(line))
			if err != nil {
				t.Fatal(err)
			}
			if string(l.log) != "x\n" || string(l.stream) != "stderr" || l.time != mustTime(t, t0) {
				t.Fatalf("got %q %q %d", l.log, l.stream, l.time)
			}
		})
	}
}

func TestParseEscapes(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"simple":          {`a\"b\\c\/d\be\ff\ng\rh\ti`, "a\"b\\c/d\be\ff\ng\rh\ti"},
		"docker html":     {`\u003c\u003e\u0026`, "<>&"},
		"control":         {`\u0000\u001f`, "\x00\x1f"},
		"surrogate pair":  {`\ud83d\ude00!`, "😀!"},
		"lone high":       {`\ud83dx`, "\ufffdx"},
		"lone high + esc": {`\ud83d\n`, "\ufffd\n"},
		"lone low":        {`\ude00`, "\ufffd"},
		"high high":       {`\ud83d\ud83d\ude00`, "\ufffd😀"},
		"raw utf8":        {`héllo ✓`, "héllo ✓"},
		"raw invalid":     {"a\xffb", "a\xffb"},
		"uppercase hex":   {`\u00E9`, "é"},
		"quote at end":    {`abc\"`, `abc"`},
		"backslash end":   {`abc\\`, `abc\`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var p parser
			l, err := p.parse([]byte(`{"log":"` + tc.in + `","stream":"stdout","time":"` + t0 + `"}`))
			if err != nil {
				t.Fatal(err)
			}
			if string(l.log) != tc.want {
				t.Fatalf("got %q, want %q", l.log, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		line string
		err  error
	}{
		"empty object":       {`{}`, errNoLog},
		"not object":         {`["log"]`, errNotObject},
		"plain text":         {`hello world`, errNotObject},
		"truncated":          {`{"log":"abc`, errUnterminated},
		"truncated after":    {`{"log":"abc\n","stream":"stdout"`, errSyntax},
		"missing colon":      {`{"log" "x"}`, errSyntax},
		"missing comma":      {`{"log":"x" "stream":"stdout"}`, errSyntax},
		"trailing garbage":   {`{"log":"x"} x`, errSyntax},
		"trailing comma":     {`{"log":"x",}`, errSyntax},
		"bad escape":         {`{"log":"a\qb"}`, errBadEscape},
		"short unicode":      {`{"log":"a\u12"}`, errBadEscape},
		"bad hex":            {`{"log":"a\u12G4"}`, errBadEscape},
		"escape at end":      {`{"log":"a\`, errUnterminated},
		"log number":         {`{"log":12,"stream":"stdout"}`, errNoLog},
		"log null":           {`{"log":null}`, errNoLog},
		"no log":             {`{"stream":"stdout","time":"` + t0 + `"}`, errNoLog},
		"stream number":      {`{"log":"x","stream":1}`, errBadStream},
		"stream too long":    {`{"log":"x","stream":"` + strings.Repeat("s", 65) + `"}`, errBadStream},
		"time not string":    {`{"log":"x","time":1700000000}`, errBadTime},
		"time invalid":       {`{"log":"x","time":"yesterday"}`, errBadTime},
		"time bad month":     {`{"log":"x","time":"2024-13-02T03:04:05Z"}`, errBadTime},
		"time feb 30":        {`{"log":"x","time":"2024-02-30T03:04:05Z"}`, errBadTime},
		"time 10 digits":     {`{"log":"x","time":"2024-01-02T03:04:05.1234567891Z"}`, errBadTime},
		"time no zone":       {`{"log":"x","time":"2024-01-02T03:04:05"}`, errBadTime},
		"unterminated attrs": {`{"log":"x","attrs":{"a":"b"`, errSyntax},
		"deep attrs":         {`{"log":"x","attrs":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, errTooDeep},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var p parser
			_, err := p.parse([]byte(tc.line))
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	for _, s := range []string{
		"2024-01-02T03:04:05Z", "2024-01-02T03:04:05.1Z", "2024-01-02T03:04:05.12Z",
		"2024-01-02T03:04:05.123456789Z", "2024-02-29T23:59:59.999999999Z",
		"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z", "2100-03-01T00:00:00Z",
		"2024-01-02T03:04:05.5+02:00", "2024-01-02T03:04:05-07:30", "0001-01-01T00:00:00Z",
		"2038-01-19T03:14:08Z", "2262-04-11T23:47:16Z",
	} {
		got, ok := parseTime([]byte(s))
		if !ok {
			t.Errorf("%s: not parsed", s)
			continue
		}
		if want := mustTime(t, s); got != want {
			t.Errorf("%s: got %d, want %d", s, got, want)
		}
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2024-01-02T24:00:00Z", "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05+0200", "2024-01-02"} {
		if _, ok := parseTime([]byte(s)); ok {
			t.Errorf("%s: parsed, want error", s)
		}
	}
}

// TestParseMatchesEncodingJSON checks the parser against encoding/json on
// generated lines with awkward content.
func TestParseMatchesEncodingJSON(t *testing.T) {
	logs := []string{
		"", "\n", "plain\n", "tab\tand\\back\"quote\n", "<html>&amp;</html>", "\u2028\u2029\n",
		"emoji 😀 \U0010FFFF", "\x00\x01\x1f\x7f", strings.Repeat("é", 1000) + "\n",
		strings.Repeat(`\"`, 500), "invalid \xff\xfe utf8",
	}
	for _, s := range logs {
		b, _ := json.Marshal(map[string]any{"stream": "stdout", "log": s, "attrs": map[string]string{"k": s}, "time": t0})
		var want struct{ Log string }
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		var p parser
		l, err := p.parse(b)
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if string(l.log) != want.Log {
			t.Fatalf("%q: got %q, want %q", b, l.log, want.Log)
		}
	}
}

func TestParseHugeLine(t *testing.T) {
	big := strings.Repeat("x\\u0009y", 200_000) // 1.6 MB escaped
	var p parser
	l, err := p.parse([]byte(`{"log":"` + big + `\n","stream":"stdout","time":"` + t0 + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.log) != 600_001 || l.log[1] != '\t' {
		t.Fatalf("log length %d", len(l.log))
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	var p parser
	line := []byte(`{"log":"hello \u003cworld\u003e \ud83d\ude00 \"q\"\u0009tab\n","stream":"stdout","attrs":{"a":"b"},"time":"2024-01-02T03:04:05.123456789Z"}`)
	if _, err := p.parse(line); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = p.parse(line) }); n != 0 {
		t.Fatalf("%v allocs per parse", n)
	}
	bad := []byte(`{"log":"x\q"}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = p.parse(bad) }); n != 0 {
		t.Fatalf("%v allocs per failed parse", n)
	}
}

// TestLongLineMatchesParser feeds lines to the streaming parser in pieces
// of several sizes and expects the same results as parse.
func TestLongLineMatchesParser(t *testing.T) {
	good := []string{
		`{"log":"hello \u003cworld\u003e \u0026 \"q\"\u0009tab\n","stream":"stdout","time":"2024-01-02T03:04:05.1Z"}`,
		`{"log":"partial-chunk-without-newline","stream":"stderr","time":"2024-01-02T03:04:05.1Z"}`,
		`{"log":"with attrs\n","stream":"stdout","attrs":{"com.example.team":"a","tag":"web"},"time":"2024-01-02T03:04:05Z"}`,
		`{"log":"bad utf8 \ufffd and \u2028\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`,
		`{"time":"2024-01-02T03:04:05.1Z","attrs":{"x":["}",{"y":"\"]"}]},"stream":"stderr","log":"\ud83d\ude00 \ud83d\n \ude00\\"}`,
		` { "log" : "a" , "n" : -1.5e3 , "b" : true , "stream" : "stdout" } `,
		`{"l\u006fg":"k","stream":"std\u006fut"}`,
	}
	bad := []string{`{}`, `{"log":"x\q"}`, `{"log":12}`, `{"log":"x"} y`, `nope`, `{"log":"x","time":"bad"}`, `{"log":"x",}`, `{"log":"abc`}
	for _, s := range append(good, bad...) {
		var p parser
		want, wantErr := p.parse([]byte(s))
		for _, piece := range []int{1, 2, 3, 7, 64} {
			var ll longLine
			ll.reset(1 << 20)
			in := []byte(s + "\n")
			done := false
			for len(in) > 0 && !done {
				n := min(piece, len(in))
				k, d := feed(&ll, in[:n])
				in, done = in[k:], d
			}
			if !done {
				t.Fatalf("%s: line did not end", s)
			}
			got, ok := ll.result()
			if ok != (wantErr == nil) {
				t.Fatalf("%s (pieces of %d): ok=%v, parse err=%v (ll err %v)", s, piece, ok, wantErr, ll.err)
			}
			if !ok {
				if string(ll.raw) != s {
					t.Fatalf("raw %q", ll.raw)
				}
				continue
			}
			if string(got.log) != string(want.log) || string(got.stream) != string(want.stream) ||
				got.hasTime != want.hasTime || got.time != want.time {
				t.Fatalf("%s (pieces of %d): got %q %q %d, want %q %q %d", s, piece,
					got.log, got.stream, got.time, want.log, want.stream, want.time)
			}
		}
	}
}

func TestLongLineTruncates(t *testing.T) {
	var ll longLine
	ll.reset(100)
	body := strings.Repeat("ab\\u00e9", 1000)
	in := []byte(`{"log":"` + body + `\n","stream":"stderr","time":"` + t0 + `"}` + "\nNEXT")
	k, done := 0, false
	for !done {
		n, d := feed(&ll, in[k:min(k+33, len(in))])
		k += n
		done = d
	}
	if string(in[k:]) != "NEXT" {
		t.Fatalf("consumed up to %q", in[k:])
	}
	l, ok := ll.result()
	if !ok || len(l.log) != 100 || !ll.logTruncated() || ll.logLast != '\n' || string(l.stream) != "stderr" {
		t.Fatalf("ok=%v len=%d trunc=%v last=%q stream=%q", ok, len(l.log), ll.logTruncated(), ll.logLast, l.stream)
	}
	if ll.logLen != 4001 || cap(ll.log) > 200 || cap(ll.raw) > 200 {
		t.Fatalf("logLen %d, caps %d %d", ll.logLen, cap(ll.log), cap(ll.raw))
	}
}

// feed writes p up to and including its first "\n" to ll, as tail's reader
// does (the pieces it writes never contain the "\n"). It returns the bytes
// consumed and whether the line ended.
func feed(ll *longLine, p []byte) (int, bool) {
	k := bytes.IndexByte(p, '\n')
	if k < 0 {
		ll.Write(p)
		return len(p), false
	}
	ll.Write(p[:k])
	return k + 1, true
}

// jsonUTF8 replaces each invalid byte with U+FFFD, as encoding/json does.
func jsonUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // range yields U+FFFD per invalid byte
	}
	return b.String()
}

// FuzzParse checks that the parser never panics, agrees with
// encoding/json on every line both accept, and that the streaming parser
// (fed in small pieces) accepts what parse accepts, with the same result.
func FuzzParse(f *testing.F) {
	f.Add(`{"log":"hello \u003cworld\u003e\n","stream":"stdout","time":"2024-01-02T03:04:05.1Z"}`, 3)
	f.Add(`{"log":"\ud83d\ude00","stream":"stderr","attrs":{"a":[1,2]},"time":"2024-01-02T03:04:05Z"}`, 1)
	f.Add(`{"log":"x\q"}`, 2)
	f.Fuzz(func(t *testing.T, s string, piece int) {
		var p parser
		l, err := p.parse([]byte(s))
		if err == nil {
			var v map[string]any
			if json.Unmarshal([]byte(s), &v) == nil {
				if lg, ok := v["log"].(string); ok && lg != string(l.log) && jsonUTF8(string(l.log)) != lg {
					t.Fatalf("log %q, encoding/json %q", l.log, lg)
				}
			}
		}
		if strings.Contains(s, "\n") {
			return
		}
		piece = 1 + (piece&0xff)%17
		var ll longLine
		ll.reset(1 << 20)
		in := []byte(s + "\n")
		for done := false; !done; {
			k, d := feed(&ll, in[:min(piece, len(in))])
			in, done = in[k:], d
		}
		got, ok := ll.result()
		if err == nil && !ok {
			t.Fatalf("streaming parser rejects (%v) what parse accepts", ll.err)
		}
		if err == nil && (string(got.log) != string(l.log) || string(got.stream) != string(l.stream) || got.time != l.time) {
			t.Fatalf("streaming %q %q %d, parse %q %q %d", got.log, got.stream, got.time, l.log, l.stream, l.time)
		}
	})
}

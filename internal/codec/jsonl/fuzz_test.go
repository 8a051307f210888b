package jsonl

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

// bigTime needs the 12-byte msgpack timestamp.
var bigTime = time.Date(2500, 6, 7, 8, 9, 10, 11, time.UTC)

// topLevelMembers counts the members of the JSON object obj.
func topLevelMembers(obj []byte) int {
	d := json.NewDecoder(bytes.NewReader(obj))
	depth, n, expectKey := 0, 0, true
	for {
		tok, err := d.Token()
		if err != nil {
			return n
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth == 1 { // a container value: a key comes after it
				expectKey = true
			}
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		default:
			if depth == 1 {
				if expectKey {
					n++
				}
				expectKey = !expectKey
			}
		}
	}
}

func isSentinel(err error) bool {
	switch err {
	case ErrNotMap, ErrTruncated, ErrMalformed, ErrDepth, ErrKeyType, ErrTrailing:
		return true
	}
	return false
}

// FuzzAppendRecord: whatever the bytes, AppendRecord either writes valid
// JSON (and valid UTF-8) meaning what the msgp-based oracle reads, or
// refuses with one of the package's errors leaving dst as it was. It
// never panics.
func FuzzAppendRecord(f *testing.F) {
	f.Add(dockerRecord(), []byte("app.web"), ts)
	f.Add(parsedRecord(), []byte("t\xff"), int64(-1))
	f.Add(record("a\x00\"\\\xed\xa0\x80\xf4\x90\x80\x80", -5), []byte(""), int64(0))
	f.Add(one(wire.AppendEventTime(nil, ts)), []byte("t"), ts)
	f.Add(one(msgp.AppendTimeExt(nil, bigTime)), []byte("t"), ts)
	f.Add(b(0x83, 5, 1, 0xc3, 2, 0xa3, 't', 'a', 'g', 0xc0), []byte("t"), ts)
	f.Add(cat(b(0x81), msgp.AppendString(nil, "@timestamp"), msgp.AppendFloat32(nil, 1.5)), []byte("t"), ts)
	f.Add(deep(70), []byte("t"), ts)
	bare := mustEncoder(f, Options{OmitTime: true})
	full := mustEncoder(f, Options{TagKey: "tag"})
	secs := mustEncoder(f, Options{TimeKey: "t", TimeFormat: EpochSeconds, TagKey: "\xc3\xa9"})
	f.Fuzz(func(t *testing.T, rec, tag []byte, ns int64) {
		ref, rerr := refRecord(rec, false)
		for i, e := range []*Encoder{bare, full, secs} {
			out, err := e.AppendRecord([]byte("pre"), tag, ns, rec)
			if err != nil {
				if string(out) != "pre" || !isSentinel(err) {
					t.Fatalf("encoder %d: %q, %v", i, out, err)
				}
				if rerr == nil {
					t.Fatalf("encoder %d refused what the oracle reads: %v", i, err)
				}
				continue
			}
			if !bytes.HasPrefix(out, []byte("pre")) {
				t.Fatal("dst prefix lost")
			}
			out = out[3:]
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("encoder %d: invalid output %q", i, out)
			}
			if rerr != nil {
				t.Fatalf("encoder %d accepted what the oracle refuses (%v): %s", i, rerr, out)
			}
			if !wire.WithinDepth(rec, MaxDepth) {
				t.Fatalf("encoder %d accepted a record deeper than %d", i, MaxDepth)
			}
			want := map[string]any{}
			for k, v := range ref.(map[string]any) {
				want[k] = v
			}
			switch e {
			case full:
				if _, ok := want["@timestamp"]; !ok {
					want["@timestamp"] = time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
				}
				if _, ok := want["tag"]; !ok {
					want["tag"] = string(tag)
				}
			case secs:
				if _, ok := want["t"]; !ok {
					want["t"] = json.Number(appendTime(nil, ns, EpochSeconds, false))
				}
				if _, ok := want["é"]; !ok {
					want["é"] = string(tag)
				}
			}
			if err := sameJSON(out, want); err != nil {
				t.Fatalf("encoder %d: %v", i, err)
			}
			// No added field duplicates one of the record's keys.
			pairs, _, _ := wire.ReadMapHeader(rec)
			if n := topLevelMembers(out); n != pairs+len(want)-len(ref.(map[string]any)) {
				t.Fatalf("encoder %d: %d members from %d pairs: %s", i, n, pairs, out)
			}
		}
		line, err := AppendLine([]byte("pre"), tag, ns, rec)
		if err != nil {
			if string(line) != "pre" {
				t.Fatalf("AppendLine: %q, %v", line, err)
			}
			return
		}
		line = line[3:]
		if !bytes.HasSuffix(line, []byte("}\n")) || !json.Valid(line) || !utf8.Valid(line) {
			t.Fatalf("AppendLine: %q", line)
		}
		refLine, err := refRecord(rec, true)
		if err != nil {
			t.Fatalf("AppendLine accepted what the oracle refuses: %v", err)
		}
		var v struct{ Record json.RawMessage }
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatal(err)
		}
		if err := sameJSON(v.Record, refLine); err != nil {
			t.Fatalf("AppendLine: %v", err)
		}
	})
}

package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

func record(log string, n int) []byte {
	rec := msgp.AppendMapHeader(nil, 2)
	rec = msgp.AppendString(rec, "log")
	rec = msgp.AppendString(rec, log)
	rec = msgp.AppendString(rec, "n")
	return msgp.AppendInt(rec, n)
}

// deep is a record {"x": [[[...]]]} nested depth arrays deep.
func deep(depth int) []byte {
	rec := msgp.AppendMapHeader(nil, 1)
	rec = msgp.AppendString(rec, "x")
	rec = append(rec, bytes.Repeat([]byte{0x91}, depth-1)...)
	return append(rec, 0x90)
}

var ts = time.Date(2024, 1, 2, 3, 4, 5, 123000000, time.UTC).UnixNano()

// TestAppendChunk is the test that used to be the file output's
// TestAppendJSONLines: the line format, and garbage reported.
func TestAppendChunk(t *testing.T) {
	var e []byte
	e = wire.AppendEntry(e, ts, record("a <b>", 0))
	e = wire.AppendEntry(e, ts, record("c\n", 1))
	got, n, err := AppendChunk(nil, []byte(`app."x"`), e)
	if err != nil || n != 2 {
		t.Fatalf("%d lines, %v", n, err)
	}
	lines := bytes.Split(bytes.TrimSuffix(got, []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), got)
	}
	var v struct {
		Tag    string
		Time   string
		Record map[string]any
	}
	if err := json.Unmarshal(lines[1], &v); err != nil {
		t.Fatalf("%s: %v", lines[1], err)
	}
	if v.Tag != `app."x"` || v.Time != "2024-01-02T03:04:05.123Z" || v.Record["log"] != "c\n" || v.Record["n"] != 1.0 {
		t.Fatalf("decoded %+v from %s", v, lines[1])
	}
	if _, n, err := AppendChunk(nil, []byte("t"), []byte{0x92, 0xc1}); err == nil || n != 0 {
		t.Fatalf("garbage entries: %d lines, %v", n, err)
	}
}

// TestSkipsUndecodableEvent: one event too deep for the decoder, between
// 100 good ones on each side, is left out whole; the 200 others are kept.
func TestSkipsUndecodableEvent(t *testing.T) {
	var e []byte
	for i := range 100 {
		e = wire.AppendEntry(e, ts, record("before", i))
	}
	e = wire.AppendEntry(e, ts, deep(100_000))
	for i := range 100 {
		e = wire.AppendEntry(e, ts, record("after", i))
	}
	prefix := []byte("kept\n")
	got, n, err := AppendChunk(append([]byte(nil), prefix...), []byte("t"), e)
	if n != 200 {
		t.Fatalf("%d lines, want 200", n)
	}
	if !errors.Is(err, msgp.ErrRecursion) {
		t.Fatalf("err = %v, want one wrapping msgp.ErrRecursion", err)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatal("dst prefix lost")
	}
	lines := bytes.Split(bytes.TrimSuffix(got[len(prefix):], []byte("\n")), []byte("\n"))
	for i, l := range lines {
		if !json.Valid(l) {
			t.Fatalf("line %d is not JSON: %.80s", i, l)
		}
	}
	if len(lines) != 200 || !bytes.Contains(lines[99], []byte(`"before"`)) || !bytes.Contains(lines[100], []byte(`"after"`)) {
		t.Fatalf("%d lines; 99: %s; 100: %s", len(lines), lines[99], lines[100])
	}
}

// TestBrokenEntriesKeepPrefix: when the entries break, the events before
// the break are kept.
func TestBrokenEntriesKeepPrefix(t *testing.T) {
	var e []byte
	for i := range 3 {
		e = wire.AppendEntry(e, ts, record("ok", i))
	}
	e = append(e, 0x92, 0xc1)
	got, n, err := AppendChunk(nil, []byte("t"), e)
	if n != 3 || err == nil || bytes.Count(got, []byte("\n")) != 3 {
		t.Fatalf("%d lines, %v: %s", n, err, got)
	}
}

func TestAppendLineLeavesDstOnError(t *testing.T) {
	dst := []byte("x")
	got, err := AppendLine(dst, []byte("t"), ts, []byte{0x81, 0xa1, 'k'}) // value missing
	if err == nil || string(got) != "x" {
		t.Fatalf("%q, %v", got, err)
	}
}

package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

func entries(logs ...string) []byte {
	var b []byte
	for i, l := range logs {
		rec := msgp.AppendMapHeader(nil, 2)
		rec = msgp.AppendString(rec, "log")
		rec = msgp.AppendString(rec, l)
		rec = msgp.AppendString(rec, "n")
		rec = msgp.AppendInt(rec, i)
		b = wire.AppendEntry(b, time.Date(2024, 1, 2, 3, 4, 5, 123000000, time.UTC).UnixNano(), rec)
	}
	return b
}

func TestAppendJSONLines(t *testing.T) {
	got, err := AppendJSONLines(nil, []byte(`app."x"`), entries("a <b>", "c\n"))
	if err != nil {
		t.Fatal(err)
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
	if _, err := AppendJSONLines(nil, []byte("t"), []byte{0x92, 0xc1}); err == nil {
		t.Fatal("garbage entries gave no error")
	}
}

// TestRunAcksAfterWrite: chunks from a real queue end up in the file and
// only then are acknowledged (the queue drains).
func TestRunAcksAfterWrite(t *testing.T) {
	dir := t.TempDir()
	q, err := buffer.Open(filepath.Join(dir, "q"), buffer.Options{Name: "f"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 3; i++ {
		if err := q.Append(ctx, []byte("t"), 2, entries("x", "y")); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "out", "f.jsonl")
	o, err := New("f", config.FileOutput{Path: path}, q, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := q.WaitEmpty(wctx); err != nil {
		t.Fatalf("queue not drained: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n != 6 {
		t.Fatalf("%d lines in file, want 6", n)
	}
	if _, err := New("f", config.FileOutput{}, q, nil, nil); err == nil {
		t.Fatal("empty path accepted")
	}
}

// flakyWriter writes half of the first write, then fails it.
type flakyWriter struct {
	bytes.Buffer
	failed bool
}

func (f *flakyWriter) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		n, _ := f.Buffer.Write(p[:len(p)/2])
		return n, errors.New("disk full")
	}
	return f.Buffer.Write(p)
}

// TestPartialWriteRetriesRest: a write that failed half way is retried with
// the rest only, so the output has each line exactly once.
func TestPartialWriteRetriesRest(t *testing.T) {
	q, err := buffer.Open(t.TempDir(), buffer.Options{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := q.Append(ctx, []byte("t"), 3, entries("a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	fw := &flakyWriter{}
	o := NewWriter("s", fw, q, nil, nil)
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := q.WaitEmpty(wctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	want, _ := AppendJSONLines(nil, []byte("t"), entries("a", "b", "c"))
	if !bytes.Equal(fw.Bytes(), want) {
		t.Fatalf("output after a partial write:\n%s\nwant:\n%s", fw.Bytes(), want)
	}
}

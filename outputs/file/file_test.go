package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
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
	o, err := New("f", config.FileOutput{Path: path}, config.Delivery{}, "", q, nil, nil)
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
	if _, err := New("f", config.FileOutput{}, config.Delivery{}, "", q, nil, nil); err == nil {
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
	want, _, _ := jsonl.AppendChunk(nil, []byte("t"), entries("a", "b", "c"))
	if !bytes.Equal(fw.Bytes(), want) {
		t.Fatalf("output after a partial write:\n%s\nwant:\n%s", fw.Bytes(), want)
	}
}

func openQueue(t *testing.T) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(t.TempDir(), buffer.Options{Name: "f"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// runUntilEmpty runs o until q is drained, then stops it.
func runUntilEmpty(t *testing.T, o *Output, q *buffer.Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
}

// deepRecord is {"x": [[[...]]]}, nested past the JSON decoder's limit.
func deepRecord() []byte {
	rec := msgp.AppendMapHeader(nil, 1)
	rec = msgp.AppendString(rec, "x")
	rec = append(rec, bytes.Repeat([]byte{0x91}, 100_000-1)...)
	return append(rec, 0x90)
}

// TestSkipsUndecodableEvent: a chunk of 100 good events, one nested
// 100,000 deep and 100 good ones delivers the 200, counts the one as
// skipped and is acked; both the file and the stdout variant.
func TestSkipsUndecodableEvent(t *testing.T) {
	var e []byte
	good := entries(make([]string, 100)...)
	e = append(e, good...)
	e = wire.AppendEntry(e, time.Now().UnixNano(), deepRecord())
	e = append(e, good...)
	for name, mk := range map[string]func(q *buffer.Queue, set *metrics.Set) (*Output, func() []byte){
		"file": func(q *buffer.Queue, set *metrics.Set) (*Output, func() []byte) {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			o, err := New("f", config.FileOutput{Path: path}, config.Delivery{}, "", q, nil, set)
			if err != nil {
				t.Fatal(err)
			}
			return o, func() []byte { b, _ := os.ReadFile(path); return b }
		},
		"stdout": func(q *buffer.Queue, set *metrics.Set) (*Output, func() []byte) {
			var b bytes.Buffer
			return NewWriter("f", &b, q, nil, set), b.Bytes
		},
	} {
		t.Run(name, func(t *testing.T) {
			q := openQueue(t)
			if err := q.Append(context.Background(), []byte("t"), 201, e); err != nil {
				t.Fatal(err)
			}
			set := metrics.NewSet()
			o, out := mk(q, set)
			runUntilEmpty(t, o, q)
			lines := bytes.Split(bytes.TrimSuffix(out(), []byte("\n")), []byte("\n"))
			if len(lines) != 200 {
				t.Fatalf("%d lines delivered, want 200", len(lines))
			}
			for i, l := range lines {
				if !json.Valid(l) {
					t.Fatalf("line %d is not JSON: %.100s", i, l)
				}
			}
			for series, want := range map[string]uint64{
				`sluice_output_rejected_events_total{output="f",reason="undecodable"}`: 1,
				`sluice_output_sent_events_total{output="f"}`:                          200,
			} {
				if got := set.GetOrCreateCounter(series).Get(); got != want {
					t.Errorf("%s = %d, want %d", series, got, want)
				}
			}
			// No dead-letter queue here: the refused event counts as dropped.
			if st := q.Stats(); st.DeliveredEvents != 200 || st.DiscardedEvents != 1 || st.Pending != 0 {
				t.Errorf("queue: %+v; want 200 delivered, 1 dropped", st)
			}
		})
	}
}

// syncFailFile accepts writes; Sync fails from its failAt-th call on.
type syncFailFile struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	syncs     int
	failAt    int
	failTimes int // 0: fail forever from failAt on
}

func (f *syncFailFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(p)
}

func (f *syncFailFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if f.syncs >= f.failAt && (f.failTimes == 0 || f.syncs < f.failAt+f.failTimes) {
		return errors.New("input/output error")
	}
	return nil
}

func (f *syncFailFile) Close() error { return nil }

// TestFsyncErrorRewrites: a failed fsync acks nothing of its batch; the
// file is reopened and the whole batch written (and fsynced) again before
// it is acked.
func TestFsyncErrorRewrites(t *testing.T) {
	q := openQueue(t)
	for range 4 {
		if err := q.Append(context.Background(), []byte("t"), 2, entries("x", "y")); err != nil {
			t.Fatal(err)
		}
	}
	f := &syncFailFile{failAt: 1, failTimes: 1}
	o, err := New("f", config.FileOutput{Path: "/unused"}, config.Delivery{RetryInitial: time.Millisecond, RetryMax: time.Millisecond}, "", q, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	opens := 0
	o.open = func(string) (destination, bool, error) { opens++; return f, true, nil }
	runUntilEmpty(t, o, q)
	if opens != 2 {
		t.Fatalf("%d opens; want 2 (the file is reopened after the failed fsync)", opens)
	}
	// The first batch (at least one chunk) was written twice.
	if n := bytes.Count(f.buf.Bytes(), []byte("\n")); n < 10 || n > 16 {
		t.Fatalf("%d lines written, want the 8 plus the failed batch's again", n)
	}
	if st := q.Stats(); st.AckedChunks != 4 {
		t.Fatalf("queue %+v", st)
	}
}

// TestDeviceIsNotFsynced: a path that is not a regular file (here
// /dev/null, whose fsync fails with EINVAL) is written without fsync.
func TestDeviceIsNotFsynced(t *testing.T) {
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Skip(err)
	}
	q := openQueue(t)
	if err := q.Append(context.Background(), []byte("t"), 1, entries("x")); err != nil {
		t.Fatal(err)
	}
	o, err := New("f", config.FileOutput{Path: "/dev/null"}, config.Delivery{}, "", q, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilEmpty(t, o, q)
}

// TestStopsWhileFed: a stopped output returns even if chunks are ready
// (a queue fed without pause always has one), and acks none after the stop.
func TestStopsWhileFed(t *testing.T) {
	q := openQueue(t)
	for range 50 {
		if err := q.Append(context.Background(), []byte("t"), 1, entries("x")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewWriter("f", &bytes.Buffer{}, q, nil, nil).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.AckedChunks != 0 {
		t.Fatalf("%d chunks acked after the stop", st.AckedChunks)
	}
}

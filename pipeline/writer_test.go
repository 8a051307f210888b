package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// memQueue records appended chunks.
type memQueue struct {
	chunks    []chunk
	fail      error
	failAfter int // with fail: accept this many more appends first
	syncs     int
	syncedTo  uint64
}

type chunk struct {
	tag     string
	count   int
	entries []byte
}

func (q *memQueue) Append(_ context.Context, tag []byte, count int, entries []byte) error {
	if q.fail != nil {
		if q.failAfter == 0 {
			return q.fail
		}
		q.failAfter--
	}
	q.chunks = append(q.chunks, chunk{string(tag), count, append([]byte(nil), entries...)})
	return nil
}

func (q *memQueue) Sync() error { q.syncs++; return nil }

func (q *memQueue) Mark() uint64 { return uint64(len(q.chunks)) }

func (q *memQueue) SyncTo(m uint64) error { q.syncedTo = max(q.syncedTo, m); return nil }

// events decodes every entry of every chunk as "tag:log".
func (q *memQueue) events(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, c := range q.chunks {
		n := 0
		err := wire.ForEachEntry(c.entries, func(ns int64, rec []byte) error {
			v, _ := wire.LookupString(rec, []byte("log"))
			out = append(out, c.tag+":"+string(v))
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != c.count {
			t.Fatalf("chunk says %d events, holds %d", c.count, n)
		}
	}
	return out
}

func record(kv ...string) []byte {
	b := msgp.AppendMapHeader(nil, uint32(len(kv)/2))
	for _, s := range kv {
		b = msgp.AppendString(b, s)
	}
	return b
}

func newTestRouter(t *testing.T, routes []config.Route, dflt string, chunkBytes int, names ...string) (*Router, map[string]*memQueue, *metrics.Set) {
	t.Helper()
	qs := map[string]*memQueue{}
	var oq []OutputQueue
	for _, n := range names {
		q := &memQueue{}
		qs[n] = q
		oq = append(oq, OutputQueue{ID: n, Queue: q, ChunkBytes: chunkBytes})
	}
	set := metrics.NewSet()
	r, err := NewRouter(routes, dflt, oq, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, qs, set
}

func TestWriterRoutes(t *testing.T) {
	routes := []config.Route{
		{Match: "app.**", Outputs: []string{"app"}},
		{Match: "**", Field: "log_type", Value: "audit", Outputs: []string{"audit", "app"}},
		{Match: "access.*", Outputs: []string{"access"}, Continue: true},
		{Match: "access.web", Outputs: []string{"app"}},
	}
	r, qs, set := newTestRouter(t, routes, "", 0, "app", "audit", "access")
	w := r.NewWriter()
	ctx := context.Background()
	add := func(tag string, kv ...string) {
		w.Add(&Event{Tag: []byte(tag), Time: 1, Record: record(kv...)})
	}
	add("app.web", "log", "a1")
	add("x.y", "log", "u1", "log_type", "audit")
	add("access.web", "log", "w1")
	add("nothing", "log", "lost")
	add("app", "log", "a2")
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"app":    {"app.web:a1", "x.y:u1", "access.web:w1", "app:a2"},
		"audit":  {"x.y:u1"},
		"access": {"access.web:w1"},
	}
	for name, exp := range want {
		got := qs[name].events(t)
		if len(got) != len(exp) {
			t.Fatalf("%s: got %v want %v", name, got, exp)
		}
		seen := map[string]bool{}
		for _, g := range got {
			seen[g] = true
		}
		for _, e := range exp {
			if !seen[e] {
				t.Errorf("%s: missing %q in %v", name, e, got)
			}
		}
	}
	if n := set.GetOrCreateCounter(`sluice_events_unrouted_total`).Get(); n != 1 {
		t.Errorf("unrouted = %d, want 1", n)
	}
}

func TestWriterDefaultOutput(t *testing.T) {
	r, qs, set := newTestRouter(t, []config.Route{{Match: "a", Outputs: []string{"a"}}}, "other", 0, "a", "other")
	w := r.NewWriter()
	ctx := context.Background()
	w.Add(&Event{Tag: []byte("b"), Record: record("log", "x")})
	w.Flush(ctx)
	if got := qs["other"].events(t); len(got) != 1 || got[0] != "b:x" {
		t.Fatalf("default output got %v", got)
	}
	if n := set.GetOrCreateCounter(`sluice_events_unrouted_total`).Get(); n != 0 {
		t.Errorf("unrouted = %d", n)
	}
}

func TestWriterChunkSize(t *testing.T) {
	r, qs, _ := newTestRouter(t, []config.Route{{Match: "**", Outputs: []string{"o"}}}, "", 1000, "o")
	w := r.NewWriter()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		w.Add(&Event{Tag: []byte("t"), Record: record("log", "0123456789012345678901234567890123456789")})
	}
	if len(qs["o"].chunks) != 0 {
		t.Fatal("Add appended to a queue; only Flush may")
	}
	w.Flush(ctx)
	total := 0
	for _, c := range qs["o"].chunks {
		if len(c.entries) > 1000+100 {
			t.Errorf("chunk of %d bytes exceeds target", len(c.entries))
		}
		total += c.count
	}
	if total != 100 || len(qs["o"].events(t)) != 100 {
		t.Fatalf("got %d events, want 100", total)
	}
}

func TestWriterFlushErrorKeepsEvents(t *testing.T) {
	r, qs, _ := newTestRouter(t, []config.Route{{Match: "**", Outputs: []string{"o"}}}, "", 0, "o")
	w := r.NewWriter()
	ctx := context.Background()
	w.Add(&Event{Tag: []byte("t"), Record: record("log", "kept")})
	qs["o"].fail = errors.New("disk full")
	if err := w.Flush(ctx); err == nil {
		t.Fatal("Flush hid the queue error")
	}
	if !w.Pending() {
		t.Fatal("events lost after a failed Flush")
	}
	qs["o"].fail = nil
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := qs["o"].events(t); len(got) != 1 || got[0] != "t:kept" {
		t.Fatalf("got %v", got)
	}
	if err := r.Sync(); err != nil || qs["o"].syncs != 1 {
		t.Fatalf("sync: %v, %d", err, qs["o"].syncs)
	}
}

func BenchmarkWriterAdd(b *testing.B) {
	q := &memQueue{}
	r, err := NewRouter([]config.Route{{Match: "app.*", Outputs: []string{"o"}}}, "", []OutputQueue{{ID: "o", Queue: discardQueue{}}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	_ = q
	w := r.NewWriter()
	rec := record("log", string(make([]byte, 200)), "stream", "stdout", "container_id", "0123456789ab0123456789ab0123456789ab0123456789ab0123456789ab0123", "container_name", "web")
	ev := &Event{Tag: []byte("app.web"), Time: 1700000000123456789, Record: rec}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		w.Add(ev)
	}
	w.Flush(ctx)
}

type discardQueue struct{}

func (discardQueue) Append(context.Context, []byte, int, []byte) error { return nil }
func (discardQueue) Sync() error                                       { return nil }
func (discardQueue) Mark() uint64                                      { return 1 }
func (discardQueue) SyncTo(uint64) error                               { return nil }

// smallQueue accepts chunks of at most 500 entries bytes, like a buffer
// with a tiny segment.
type smallQueue struct{ memQueue }

func (q *smallQueue) MaxEntries(int) int { return 500 }

func (q *smallQueue) Append(ctx context.Context, tag []byte, count int, entries []byte) error {
	if len(entries) > 500 {
		return errors.New("chunk too large")
	}
	return q.memQueue.Append(ctx, tag, count, entries)
}

// TestWriterTooLargeEvent: an event that can never fit a chunk is counted
// and skipped for that output only; it never jams the writer.
func TestWriterTooLargeEvent(t *testing.T) {
	small, other := &smallQueue{}, &memQueue{}
	set := metrics.NewSet()
	r, err := NewRouter([]config.Route{{Match: "**", Outputs: []string{"small", "other"}}}, "",
		[]OutputQueue{{ID: "small", Queue: small}, {ID: "other", Queue: other}}, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := r.NewWriter()
	ctx := context.Background()
	big := string(make([]byte, 1000))
	for _, l := range []string{"a", big, "b", "c"} {
		if stored := w.Add(&Event{Tag: []byte("t"), Record: record("log", l)}); stored != (l != big) {
			t.Fatalf("Add(%d bytes) stored = %v", len(l), stored)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := small.events(t); len(got) != 3 {
		t.Fatalf("small got %d events, want 3 (the big one refused)", len(got))
	}
	if got := other.events(t); len(got) != 4 {
		t.Fatalf("other got %d events, want 4", len(got))
	}
	if n := set.GetOrCreateCounter(`sluice_events_too_large_total{output="small"}`).Get(); n != 1 {
		t.Fatalf("too large = %d, want 1", n)
	}
	// Events that together pass the limit are cut into several chunks.
	for range 20 {
		w.Add(&Event{Tag: []byte("t"), Record: record("log", "0123456789012345678901234567890123456789")})
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := small.events(t); len(got) != 23 {
		t.Fatalf("small got %d events, want 23", len(got))
	}
}

// TestWriterRetainedBounded: many tags do not pin one encode buffer each.
func TestWriterRetainedBounded(t *testing.T) {
	r, _, _ := newTestRouter(t, []config.Route{{Match: "**", Outputs: []string{"o"}}}, "", 1<<20, "o")
	w := r.NewWriter()
	ctx := context.Background()
	rec := record("log", string(make([]byte, 64<<10)))
	for i := range 200 {
		w.Add(&Event{Tag: []byte{byte(i), 'x'}, Record: rec})
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if w.freeCap > maxRetained {
			t.Fatalf("retained %d bytes after %d tags", w.freeCap, i+1)
		}
	}
	for i := range 200 { // 200 tags in one Flush: buffers are released after it
		w.Add(&Event{Tag: []byte{byte(i), 'y'}, Record: rec})
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, ts := range w.tags {
		for _, b := range ts.builders {
			if b != nil {
				held += cap(b.entries)
			}
		}
	}
	if held != 0 || w.freeCap > maxRetained {
		t.Fatalf("builders hold %d bytes, pool %d after a Flush", held, w.freeCap)
	}
}

// TestWriterFlushFailsMidway: appends fail in the middle of a Flush that
// holds many sealed chunks for two outputs; retried Flushes append every
// chunk exactly once and in order, whatever failed where.
func TestWriterFlushFailsMidway(t *testing.T) {
	for failAt := 0; failAt < 12; failAt++ {
		r, qs, _ := newTestRouter(t, []config.Route{{Match: "**", Outputs: []string{"a", "b"}}}, "", 300, "a", "b")
		w := r.NewWriter()
		ctx := context.Background()
		var want []string
		for i := range 40 {
			l := fmt.Sprintf("line-%03d-%s", i, strings.Repeat("x", i%7*20))
			w.Add(&Event{Tag: []byte("t"), Record: record("log", l)})
			want = append(want, "t:"+l)
		}
		failing := qs["a"]
		if failAt%2 == 1 {
			failing = qs["b"]
		}
		failing.fail, failing.failAfter = errors.New("no space left on device"), failAt/2
		if err := w.Flush(ctx); err == nil {
			t.Fatalf("failAt %d: Flush hid the error", failAt)
		}
		if !w.Pending() {
			t.Fatalf("failAt %d: nothing held after a failed Flush", failAt)
		}
		// More events arrive while the queue is failing; still in order.
		for i := 40; i < 60; i++ {
			l := fmt.Sprintf("line-%03d", i)
			w.Add(&Event{Tag: []byte("t"), Record: record("log", l)})
			want = append(want, "t:"+l)
		}
		if err := w.Flush(ctx); err == nil {
			t.Fatalf("failAt %d: second Flush hid the error", failAt)
		}
		failing.fail = nil
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if w.Pending() {
			t.Fatal("held after a successful Flush")
		}
		for _, name := range []string{"a", "b"} {
			got := qs[name].events(t)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("failAt %d: output %s got %d events, want %d in order:\n%v", failAt, name, len(got), len(want), got)
			}
			for _, c := range qs[name].chunks {
				if len(c.entries) > 300 && c.count > 1 {
					t.Fatalf("chunk of %d bytes past chunk_bytes", len(c.entries))
				}
			}
		}
	}
}

// TestWriterSyncCoversAppends: Sync waits on exactly the queues this Writer
// appended to, with their marks.
func TestWriterSyncCoversAppends(t *testing.T) {
	r, qs, _ := newTestRouter(t, []config.Route{{Match: "a", Outputs: []string{"a"}}, {Match: "b", Outputs: []string{"b"}}}, "", 0, "a", "b")
	w := r.NewWriter()
	ctx := context.Background()
	w.Add(&Event{Tag: []byte("a"), Record: record("log", "x")})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if qs["a"].syncedTo != 1 || qs["b"].syncedTo != 0 {
		t.Fatalf("synced a to %d, b to %d", qs["a"].syncedTo, qs["b"].syncedTo)
	}
}

func TestWriterDiscard(t *testing.T) {
	r, qs, _ := newTestRouter(t, []config.Route{{Match: "**", Outputs: []string{"a", "b"}}}, "", 100, "a", "b")
	w := r.NewWriter()
	for range 10 {
		w.Add(&Event{Tag: []byte("t"), Record: record("log", "0123456789012345678901234567890123456789")})
	}
	if n, _ := w.Held(); n != 20 {
		t.Fatalf("held %d entries, want 20", n)
	}
	if n := w.Discard(); n != 20 || w.Pending() {
		t.Fatalf("discarded %d, pending %v", n, w.Pending())
	}
	if err := w.Flush(context.Background()); err != nil || len(qs["a"].chunks) != 0 {
		t.Fatalf("flush after discard: %v, %d chunks", err, len(qs["a"].chunks))
	}
}

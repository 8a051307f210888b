package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// memQueue records appended chunks.
type memQueue struct {
	chunks []chunk
	fail   error
	syncs  int
}

type chunk struct {
	tag     string
	count   int
	entries []byte
}

func (q *memQueue) Append(_ context.Context, tag []byte, count int, entries []byte) error {
	if q.fail != nil {
		return q.fail
	}
	q.chunks = append(q.chunks, chunk{string(tag), count, append([]byte(nil), entries...)})
	return nil
}

func (q *memQueue) Sync() error { q.syncs++; return nil }

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
		if err := w.Add(ctx, &Event{Tag: []byte(tag), Time: 1, Record: record(kv...)}); err != nil {
			t.Fatal(err)
		}
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
	w.Add(ctx, &Event{Tag: []byte("b"), Record: record("log", "x")})
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
		w.Add(ctx, &Event{Tag: []byte("t"), Record: record("log", "0123456789012345678901234567890123456789")})
	}
	if len(qs["o"].chunks) == 0 {
		t.Fatal("no chunk appended before Flush although chunk size was exceeded")
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
	w.Add(ctx, &Event{Tag: []byte("t"), Record: record("log", "kept")})
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
		w.Add(ctx, ev)
	}
	w.Flush(ctx)
}

type discardQueue struct{}

func (discardQueue) Append(context.Context, []byte, int, []byte) error { return nil }
func (discardQueue) Sync() error                                       { return nil }

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
		if err := w.Add(ctx, &Event{Tag: []byte("t"), Record: record("log", l)}); err != nil {
			t.Fatal(err)
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
		w.Add(ctx, &Event{Tag: []byte("t"), Record: record("log", "0123456789012345678901234567890123456789")})
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
		w.Add(ctx, &Event{Tag: []byte{byte(i), 'x'}, Record: rec})
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if w.retained > maxRetained+2*len(rec) {
			t.Fatalf("retained %d bytes after %d tags", w.retained, i+1)
		}
	}
	held := 0
	for _, ts := range w.tags {
		for _, b := range ts.builders {
			if b != nil {
				held += cap(b.entries)
			}
		}
	}
	if held != w.retained || held > maxRetained+2*len(rec) {
		t.Fatalf("builders hold %d bytes, accounted %d", held, w.retained)
	}
}

package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
)

// markQueue counts events and syncs, and fails after close.
type markQueue struct {
	countQueue
	closed   atomic.Bool
	syncedTo atomic.Uint64
}

var errQueueClosed = errors.New("closed")

func (q *markQueue) Sync() error {
	if q.closed.Load() {
		return errQueueClosed
	}
	return q.countQueue.Sync()
}

func (q *markQueue) SyncTo(m uint64) error {
	if q.closed.Load() {
		return errQueueClosed
	}
	q.syncedTo.Store(max(q.syncedTo.Load(), m))
	return q.countQueue.Sync()
}

func routerTo(t *testing.T, outs []OutputQueue, to ...string) *Router {
	t.Helper()
	r, err := NewRouter([]config.Route{{Match: "**", Outputs: to}}, "", outs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSwapAtBatchBoundary: a Writer taken from the first Router keeps the
// Router of its batch until the batch is flushed, then routes its next
// batch through the current one; the settled func tracks the batch; Sync
// of the old Router and of the Writer cover the queues appended to.
func TestSwapAtBatchBoundary(t *testing.T) {
	a, b, c := &markQueue{}, &markQueue{}, &markQueue{}
	oldOuts := []OutputQueue{{ID: "a", Queue: a}, {ID: "c", Queue: c}}
	newOuts := []OutputQueue{{ID: "a", Queue: a}, {ID: "b", Queue: b}}
	r1 := routerTo(t, oldOuts, "a", "c")
	s := NewSwap(r1)
	w := r1.NewWriter()
	idle := r1.NewWriter() // never adds: must not hold back the settled func
	_ = idle
	ev := &Event{Tag: []byte("t"), Time: 1, Record: msgp.AppendMapHeader(nil, 0)}
	ctx := context.Background()

	w.Add(ev) // batch 1 starts on r1
	s.Retire(c, "c")
	settled := s.Store(routerTo(t, newOuts, "b"))
	w.Add(ev) // same batch: still r1
	if settled() {
		t.Fatal("settled while a Writer holds a batch routed by the old Router")
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !settled() {
		t.Fatal("not settled after the batch was flushed")
	}
	if a.n() != 2 || c.n() != 2 || b.n() != 0 {
		t.Fatalf("batch 1: a=%d c=%d b=%d, want 2 2 0 (one Router for the whole batch)", a.n(), c.n(), b.n())
	}
	w.Add(ev) // batch 2: new Router
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if a.n() != 2 || c.n() != 2 || b.n() != 1 {
		t.Fatalf("batch 2: a=%d c=%d b=%d, want 2 2 1", a.n(), c.n(), b.n())
	}
	// The Writer's mark on c (a queue the new Router lacks) is synced by
	// Writer.Sync; the old Router's Sync syncs the new Router's queues
	// and the retiring one.
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if c.syncedTo.Load() == 0 || b.syncedTo.Load() == 0 {
		t.Fatalf("Writer.Sync: c synced to %d, b to %d", c.syncedTo.Load(), b.syncedTo.Load())
	}
	bs, cs := b.syncs, c.syncs
	if err := r1.Sync(); err != nil {
		t.Fatal(err)
	}
	if b.syncs != bs+1 || c.syncs != cs+1 {
		t.Fatal("old Router's Sync did not sync the current and the retiring queues")
	}
	// Retired: closed queues are no error any more.
	c.closed.Store(true)
	s.Retired(c)
	if err := r1.Sync(); err != nil {
		t.Fatalf("Sync after Retired: %v", err)
	}
	if r1.MaxEventBytes(1) != s.Load().MaxEventBytes(1) {
		t.Fatal("MaxEventBytes does not follow the Swap")
	}
}

// TestSwapFailedFlushKeepsRouter: a batch whose Flush fails stays on its
// Router until a Flush succeeds; Discard also ends the batch.
func TestSwapFailedFlushKeepsRouter(t *testing.T) {
	a, b := &countQueue{}, &countQueue{}
	outs := []OutputQueue{{ID: "a", Queue: a}, {ID: "b", Queue: b}}
	fa := &failQueue{q: a}
	r1 := routerTo(t, []OutputQueue{{ID: "a", Queue: fa}, {ID: "b", Queue: b}}, "a")
	s := NewSwap(r1)
	w := r1.NewWriter()
	ev := &Event{Tag: []byte("t"), Time: 1, Record: msgp.AppendMapHeader(nil, 0)}
	w.Add(ev)
	fa.fail = true
	settled := s.Store(routerTo(t, outs, "b"))
	if err := w.Flush(context.Background()); err == nil {
		t.Fatal("Flush did not fail")
	}
	w.Add(ev) // still the old batch
	if settled() {
		t.Fatal("settled with a failed batch held")
	}
	if n := w.Discard(); n != 2 {
		t.Fatalf("Discard dropped %d, want 2", n)
	}
	if !settled() {
		t.Fatal("not settled after Discard")
	}
	w.Add(ev)
	if err := w.Flush(context.Background()); err != nil || b.n() != 1 {
		t.Fatalf("after Discard: %v, b has %d", err, b.n())
	}
}

type failQueue struct {
	q    Queue
	fail bool
}

func (f *failQueue) Append(ctx context.Context, tag []byte, n int, e []byte) error {
	if f.fail {
		return errors.New("full")
	}
	return f.q.Append(ctx, tag, n, e)
}
func (f *failQueue) Sync() error           { return f.q.Sync() }
func (f *failQueue) Mark() uint64          { return f.q.Mark() }
func (f *failQueue) SyncTo(m uint64) error { return f.q.SyncTo(m) }

// TestSwapConcurrent: Writers on many goroutines while Routers are
// swapped: every event lands in exactly one queue (routes alternate
// between a and b), and each batch goes to one queue only.
func TestSwapConcurrent(t *testing.T) {
	a, b := &countQueue{}, &countQueue{}
	outs := []OutputQueue{{ID: "a", Queue: a}, {ID: "b", Queue: b}}
	s := NewSwap(routerTo(t, outs, "a"))
	first := s.Load()
	const writers, batches, per = 4, 2000, 5
	var wg sync.WaitGroup
	ev := &Event{Tag: []byte("t"), Time: 1, Record: msgp.AppendMapHeader(nil, 0)}
	for range writers {
		wg.Go(func() {
			w := first.NewWriter()
			for range batches {
				for range per {
					w.Add(ev)
				}
				if err := w.Flush(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 200 {
		settled := s.Store(routerTo(t, outs, []string{"a", "b"}[i%2]))
		_ = settled()
	}
	wg.Wait()
	if got := a.n() + b.n(); got != writers*batches*per {
		t.Fatalf("a+b = %d, want %d", got, writers*batches*per)
	}
	if a.n()%per != 0 || b.n()%per != 0 {
		t.Fatalf("a=%d b=%d: a batch was split between Routers", a.n(), b.n())
	}
}

package pipeline

import (
	"context"
	"sync"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
)

// countQueue counts the events appended to it.
type countQueue struct {
	mu     sync.Mutex
	events int
	syncs  int
}

func (q *countQueue) Append(_ context.Context, _ []byte, count int, _ []byte) error {
	q.mu.Lock()
	q.events += count
	q.mu.Unlock()
	return nil
}

func (q *countQueue) Sync() error { q.mu.Lock(); q.syncs++; q.mu.Unlock(); return nil }

func (q *countQueue) Mark() uint64 { q.mu.Lock(); defer q.mu.Unlock(); return uint64(q.events) + 1 }

func (q *countQueue) SyncTo(uint64) error { return q.Sync() }

func (q *countQueue) n() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.events
}

// TestHolderSwapAtFlush: a HeldWriter keeps its Router while events are
// pending and takes the new one at the next successful Flush; a plain
// Writer keeps its Router.
func TestHolderSwapAtFlush(t *testing.T) {
	a, b := &countQueue{}, &countQueue{}
	outs := []OutputQueue{{ID: "a", Queue: a}, {ID: "b", Queue: b}}
	toA, err := NewRouter([]config.Route{{Match: "**", Outputs: []string{"a"}}}, "", outs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	toB, err := NewRouter([]config.Route{{Match: "**", Outputs: []string{"b"}}}, "", outs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHolder(toA)
	hw := h.NewWriter()
	plain := h.Load().NewWriter()
	ev := &Event{Tag: []byte("t"), Time: 1, Record: msgp.AppendMapHeader(nil, 0)}
	ctx := context.Background()

	hw.Add(ev)
	h.Store(toB)
	if h.Load() != toB {
		t.Fatal("Load does not return the stored Router")
	}
	hw.Add(ev) // still pending on toA: same Router until the boundary
	if hw.Router() != toA {
		t.Fatal("HeldWriter moved before its Flush")
	}
	if err := hw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if hw.Router() != toB {
		t.Fatal("HeldWriter did not move at its Flush")
	}
	hw.Add(ev)
	plain.Add(ev)
	if err := hw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := plain.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if a.n() != 3 || b.n() != 1 {
		t.Fatalf("a got %d events, b %d; want 3 (two held, one plain) and 1", a.n(), b.n())
	}
	// Sync covers the Writer it moved away from: queue a is synced too.
	if err := hw.Sync(); err != nil {
		t.Fatal(err)
	}
	if a.syncs != 1 || b.syncs != 1 {
		t.Fatalf("Sync reached a %d times and b %d times, want once each", a.syncs, b.syncs)
	}
	if len(hw.prev) != 0 {
		t.Fatalf("%d earlier Writers kept after a good Sync", len(hw.prev))
	}
}

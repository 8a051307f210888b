package buffer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestWaitEmpty(t *testing.T) {
	q := mustOpen(t, t.TempDir(), smallOpts())
	if err := q.WaitEmpty(context.Background()); err != nil {
		t.Fatalf("empty queue: %v", err)
	}
	appendRange(t, q, 0, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.WaitEmpty(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pending queue: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 5 {
			c := next(t, q)
			time.Sleep(time.Millisecond)
			q.Ack(c.ID)
		}
	})
	if err := q.WaitEmpty(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if st := q.Stats(); st.Pending != 0 || st.AckedChunks != 5 {
		t.Fatalf("stats %+v", st)
	}
	appendRange(t, q, 5, 6)
	q.Close()
	if err := q.WaitEmpty(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed with pending: %v", err)
	}
}

func TestRewind(t *testing.T) {
	q := mustOpen(t, t.TempDir(), smallOpts())
	appendRange(t, q, 0, 8)
	var cs []Chunk
	for range 5 {
		cs = append(cs, next(t, q))
	}
	q.Ack(cs[1].ID)
	q.Ack(cs[3].ID)
	q.Rewind()
	// Unacked 0, 2, 4 again, then the unread 5..7.
	c0 := next(t, q)
	if chunkIndex(t, c0) != 0 || c0.ID != cs[0].ID {
		t.Fatalf("first after rewind: %d %s", chunkIndex(t, c0), c0.ID)
	}
	q.Ack(cs[2].ID) // an ack of the earlier delivery still counts
	got, rest := drain(t, q)
	if !equalInts(got, []int{4, 5, 6, 7}) {
		t.Fatalf("after rewind read %v", got)
	}
	q.Ack(c0.ID)
	q.Ack(cs[0].ID) // second ack of the same chunk: ignored
	for _, c := range rest {
		q.Ack(c.ID)
	}
	if st := q.Stats(); st.Pending != 0 || st.AckedChunks != 8 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	q.Rewind() // nothing in flight: no-op
	if got, _ := drain(t, q); len(got) != 0 {
		t.Fatalf("rewind with nothing in flight read %v", got)
	}
}

func TestRuntimeCorruption(t *testing.T) {
	// A frame damaged on disk after it was written is skipped by Next,
	// counted, and no longer pending once the reader leaves its segment.
	dir := t.TempDir()
	q := mustOpen(t, dir, smallOpts())
	appendRange(t, q, 0, 3)
	flipByte(t, segFile(dir, 1), testFrameLen+20) // chunk 1
	appendRange(t, q, 3, 5)                       // segment 2
	got, cs := drain(t, q)
	if !equalInts(got, []int{0, 2, 3, 4}) {
		t.Fatalf("read %v", got)
	}
	for _, c := range cs {
		q.Ack(c.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("lost chunk still pending: %v (%+v)", err, q.Stats())
	}
	if st := q.Stats(); st.CorruptChunks != 1 || st.Segments != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Damage to a chunk in flight shows when it is re-delivered.
	appendRange(t, q, 5, 7)
	c5 := next(t, q)
	next(t, q)
	flipByte(t, segFile(dir, c5.ID.Segment), c5.ID.Offset+30)
	q.Rewind()
	if got := chunkIndex(t, next(t, q)); got != 6 {
		t.Fatalf("after rewind got %d, want 6", got)
	}
	if st := q.Stats(); st.CorruptChunks != 2 || st.Pending != 1 {
		t.Fatalf("stats %+v", st)
	}
}

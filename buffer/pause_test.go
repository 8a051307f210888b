package buffer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPauseResume: a paused queue hands out no chunk, not even one that
// was appended before the Pause or is due for redelivery, while appends go
// on; Resume wakes a waiting Next.
func TestPauseResume(t *testing.T) {
	q := mustOpen(t, t.TempDir(), Options{})
	ctx := context.Background()
	if err := q.Append(ctx, []byte("t"), testCount(6), testEntries(6)); err != nil {
		t.Fatal(err)
	}
	q.Pause()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := q.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("paused Next: %v, want the context's deadline", err)
	}
	if err := q.Append(ctx, []byte("t"), testCount(6), testEntries(6)); err != nil {
		t.Fatal(err) // appends go on while paused
	}
	got := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Next returned while paused (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	q.Resume()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Resume did not wake Next")
	}
	// Redelivery is paused too.
	q.Rewind()
	q.Pause()
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := q.Next(short2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("paused redelivery: %v", err)
	}
	q.Resume()
	if c, err := q.Next(ctx); err != nil || c.Count == 0 {
		t.Fatalf("after Resume: %+v %v", c, err)
	}
}

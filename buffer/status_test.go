package buffer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/wire"
)

// TestStatusOldest: Status reports the pending and in-flight chunks and
// the event time of the oldest chunk not acked, across segments, until
// everything is acked; Err and Open follow Close.
func TestStatusOldest(t *testing.T) {
	q := mustOpen(t, t.TempDir(), Options{Name: "t", SegmentBytes: 128, MaxBytes: 1 << 20})
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ctx := context.Background()
	for i := range 6 { // two entries per chunk (43-byte frames), two chunks per segment
		var entries []byte
		for j := range 2 {
			entries = wire.AppendEntry(entries, base.Add(time.Duration(10*i+j)*time.Second).UnixNano(), []byte{0x80})
		}
		if err := q.Append(ctx, []byte("t"), 2, entries); err != nil {
			t.Fatal(err)
		}
	}
	s := q.Status()
	if !s.Open || s.Error != "" || q.Err() != nil || s.PendingChunks != 6 || s.PendingEvents != 12 || s.InFlightChunks != 0 || s.Segments != 3 {
		t.Fatalf("status %+v", s)
	}
	if s.OldestEventTime == nil || !s.OldestEventTime.Equal(base) || s.OldestAgeSeconds < 3599 {
		t.Fatalf("oldest %v (%.0fs), want %v", s.OldestEventTime, s.OldestAgeSeconds, base)
	}
	var ids []ID
	for range 6 {
		c, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	if s := q.Status(); s.InFlightChunks != 6 || !s.OldestEventTime.Equal(base) {
		t.Fatalf("after Next: %+v", s)
	}
	// Acks out of order leave the oldest where it is; the prefix moves it.
	q.Ack(ids[1])
	if s := q.Status(); !s.OldestEventTime.Equal(base) || s.InFlightChunks != 5 {
		t.Fatalf("after an out-of-order ack: %+v", s)
	}
	for i, id := range ids[:4] {
		if i != 1 {
			q.Ack(id)
		}
	}
	if s := q.Status(); s.PendingChunks != 2 || !s.OldestEventTime.Equal(base.Add(40*time.Second)) {
		t.Fatalf("after 4 acks: oldest %v, want chunk 4's %v (%+v)", s.OldestEventTime, base.Add(40*time.Second), s)
	}
	q.Ack(ids[4])
	q.Ack(ids[5])
	if s := q.Status(); s.PendingChunks != 0 || s.OldestEventTime != nil || s.OldestAgeSeconds != 0 {
		t.Fatalf("all acked: %+v", s)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if s := q.Status(); s.Open || !errors.Is(q.Err(), ErrClosed) {
		t.Fatalf("closed: open %v, err %v", s.Open, q.Err())
	}
}

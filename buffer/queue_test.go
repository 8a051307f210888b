package buffer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func TestOptionsValidation(t *testing.T) {
	tests := map[string]struct {
		opts Options
		err  string
	}{
		"defaults":               {Options{}, ""},
		"max below two segments": {Options{SegmentBytes: 1000, MaxBytes: 1999}, "at least twice segment bytes"},
		"segment too small":      {Options{SegmentBytes: 10}, "segment bytes 10 out of range"},
		"segment too large":      {Options{SegmentBytes: 2 << 30, MaxBytes: 8 << 30}, "out of range"},
		"bad overflow":           {Options{Overflow: 7}, "invalid overflow policy 7"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q, err := Open(t.TempDir(), tc.opts)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if q.opts.SegmentBytes != DefaultSegmentBytes || q.opts.MaxBytes != DefaultMaxBytes || q.opts.FsyncInterval != DefaultFsyncInterval {
					t.Fatalf("defaults not applied: %+v", q.opts)
				}
				q.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestAppendRejectsBadChunks(t *testing.T) {
	q := mustOpen(t, t.TempDir(), smallOpts())
	ctx := context.Background()
	err := q.Append(ctx, []byte("t"), 1, make([]byte, 200))
	if !errors.Is(err, ErrChunkTooLarge) || !strings.Contains(err.Error(), "segment_bytes 200") {
		t.Fatalf("oversized chunk: %v", err)
	}
	if err := q.Append(ctx, []byte("t"), -1, nil); err == nil {
		t.Fatal("negative count accepted")
	}
	if err := q.Append(ctx, make([]byte, 70000), 1, nil); err == nil {
		t.Fatal("70000-byte tag accepted")
	}
	// The largest chunk that fits is accepted, and nothing else was lost.
	appendRange(t, q, 0, 1)
	if err := q.Append(ctx, []byte("t"), 1, make([]byte, 200-minFrameLen-1)); err != nil {
		t.Fatalf("largest chunk: %v", err)
	}
	if got := chunkIndex(t, next(t, q)); got != 0 {
		t.Fatalf("got chunk %d", got)
	}
	if c := next(t, q); len(c.Entries) != 200-minFrameLen-1 {
		t.Fatalf("largest chunk came back with %d bytes", len(c.Entries))
	}
}

func TestDropOldest(t *testing.T) {
	set := metrics.NewSet()
	opts := Options{Name: "out", SegmentBytes: 200, MaxBytes: 400, Metrics: set}
	q := mustOpen(t, t.TempDir(), opts)
	appendRange(t, q, 0, 6) // segments 1 and 2 full: 354 bytes
	// Chunk 0 acked, chunks 1 and 2 unread.
	q.Ack(next(t, q).ID)
	appendRange(t, q, 6, 7) // segment 3 starts; 413 > 400 drops segment 1
	st := q.Stats()
	wantEvents := int64(testCount(1) + testCount(2))
	if st.DroppedChunks != 2 || st.DroppedEvents != wantEvents || st.DroppedBytes != 2*entriesLen {
		t.Fatalf("dropped %+v", st)
	}
	if st.Pending != 4 || st.Bytes != 4*testFrameLen || st.Segments != 2 || st.InFlight != 0 {
		t.Fatalf("after drop %+v", st)
	}
	for name, want := range map[string]uint64{
		`sluice_buffer_dropped_chunks_total{output="out"}`:  2,
		`sluice_buffer_dropped_events_total{output="out"}`:  uint64(wantEvents),
		`sluice_buffer_dropped_bytes_total{output="out"}`:   2 * entriesLen,
		`sluice_buffer_acked_chunks_total{output="out"}`:    1,
		`sluice_buffer_appended_chunks_total{output="out"}`: 7,
	} {
		if got := set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if got := set.GetOrCreateGauge(`sluice_buffer_pending_chunks{output="out"}`, nil).Get(); got != 4 {
		t.Errorf("pending gauge = %v", got)
	}
	if got, _ := drain(t, q); !equalInts(got, seq(3, 7)) {
		t.Fatalf("after drop read %v", got)
	}
	// Drops are durable: a reopen resumes after them.
	dir := q.dir
	q.Close()
	q = mustOpen(t, dir, opts)
	if got, _ := drain(t, q); !equalInts(got, seq(3, 7)) {
		t.Fatalf("after reopen read %v", got)
	}
}

// TestDropOldestSkipsInFlight: drop_oldest does not delete a chunk an output
// holds (read and not settled): it deletes the oldest segment without one,
// and the held chunk is still acked (and counted) normally.
func TestDropOldestSkipsInFlight(t *testing.T) {
	opts := Options{Name: "out", SegmentBytes: 200, MaxBytes: 400}
	q := mustOpen(t, t.TempDir(), opts)
	appendRange(t, q, 0, 6) // segment 1: chunks 0-2, segment 2: chunks 3-5
	q.Ack(next(t, q).ID)
	c1 := next(t, q) // in flight, say in an S3 object being built
	appendRange(t, q, 6, 7)
	st := q.Stats()
	wantEvents := int64(testCount(3) + testCount(4) + testCount(5))
	if st.DroppedChunks != 3 || st.DroppedEvents != wantEvents || st.Pending != 3 || st.InFlight != 1 {
		t.Fatalf("dropped %+v", st)
	}
	q.Ack(c1.ID)
	if st := q.Stats(); st.AckedChunks != 2 || st.Pending != 2 {
		t.Fatalf("ack of the held chunk: %+v", st)
	}
	if got, _ := drain(t, q); !equalInts(got, []int{2, 6}) {
		t.Fatalf("after drop read %v", got)
	}
	dir := q.dir
	q.Close()
	q = mustOpen(t, dir, opts)
	if got, _ := drain(t, q); !equalInts(got, []int{2, 6}) {
		t.Fatalf("after reopen read %v", got)
	}
}

// TestDropOldestInFlightLastResort: when every older segment holds chunks
// in flight, the oldest is dropped anyway (counted); its acks are ignored
// and the queue goes on.
func TestDropOldestInFlightLastResort(t *testing.T) {
	opts := Options{Name: "out", SegmentBytes: 200, MaxBytes: 400}
	q := mustOpen(t, t.TempDir(), opts)
	appendRange(t, q, 0, 6)
	var held []Chunk
	for range 6 {
		held = append(held, next(t, q))
	}
	appendRange(t, q, 6, 7)
	st := q.Stats()
	if st.DroppedChunks != 3 || st.Pending != 4 || st.InFlight != 3 {
		t.Fatalf("dropped %+v", st)
	}
	for _, c := range held {
		q.Ack(c.ID)
	}
	if st := q.Stats(); st.AckedChunks != 3 || st.Pending != 1 || st.Segments != 1 {
		t.Fatalf("after acks %+v", st)
	}
	dir := q.dir
	q.Close()
	q = mustOpen(t, dir, opts)
	if got, _ := drain(t, q); !equalInts(got, []int{6}) {
		t.Fatalf("after reopen read %v", got)
	}
}

func TestBlockWaitsForAck(t *testing.T) {
	opts := Options{Name: "t", SegmentBytes: 200, MaxBytes: 400, Overflow: Block}
	q := mustOpen(t, t.TempDir(), opts)
	appendRange(t, q, 0, 6)
	done := make(chan error, 1)
	go func() {
		done <- q.Append(context.Background(), []byte("t"), testCount(6), testEntries(6))
	}()
	select {
	case err := <-done:
		t.Fatalf("append did not block: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	// Acking two of segment 1's three chunks frees nothing.
	cs := []Chunk{next(t, q), next(t, q), next(t, q)}
	q.Ack(cs[0].ID)
	q.Ack(cs[2].ID)
	select {
	case err := <-done:
		t.Fatalf("append returned before space was freed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	q.Ack(cs[1].ID)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("append still blocked after its space was freed")
	}
	if got, _ := drain(t, q); !equalInts(got, seq(3, 7)) {
		t.Fatalf("read %v", got)
	}
	if st := q.Stats(); st.DroppedChunks != 0 {
		t.Fatalf("block policy dropped: %+v", st)
	}
}

func TestBlockedAppendCancel(t *testing.T) {
	opts := Options{Name: "t", SegmentBytes: 200, MaxBytes: 400, Overflow: Block}
	q := mustOpen(t, t.TempDir(), opts)
	appendRange(t, q, 0, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := q.Append(ctx, []byte("t"), 1, testEntries(6)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// A blocked Append also returns on Close.
	done := make(chan error, 1)
	go func() { done <- q.Append(context.Background(), []byte("t"), 1, testEntries(6)) }()
	time.Sleep(20 * time.Millisecond)
	q.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if st := q.Stats(); st.AppendedChunks != 6 {
		t.Fatalf("cancelled appends were written: %+v", st)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	mustOpen(t, dir, smallOpts())
	if _, err := Open(dir, smallOpts()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
}

func TestOpenIOError(t *testing.T) {
	// A real I/O problem (here: the directory cannot be created because a
	// file is in the way) is the one thing Open reports.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(file, "q"), smallOpts())
	if err == nil || !strings.Contains(err.Error(), "buffer: create dir") {
		t.Fatalf("err = %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	for _, always := range []bool{false, true} {
		name := "interval"
		if always {
			name = "always"
		}
		t.Run(name, func(t *testing.T) {
			const writers, perWriter = 4, 150
			opts := Options{Name: "t", SegmentBytes: 1024, MaxBytes: 1 << 20, FsyncAlways: always, FsyncInterval: time.Millisecond}
			q := mustOpen(t, t.TempDir(), opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var bg sync.WaitGroup
			bg.Go(func() { q.Run(ctx) })

			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range perWriter {
						if err := q.Append(ctx, []byte{byte('a' + w)}, i+1, []byte{byte(w), byte(i >> 8), byte(i)}); err != nil {
							t.Error(err)
							return
						}
						if i%50 == 0 {
							if err := q.Sync(); err != nil {
								t.Error(err)
							}
						}
					}
				})
			}

			// One consumer; three ackers ack in random order, and the
			// consumer rewinds now and then.
			acks := make(chan ID, 64)
			for range 3 {
				bg.Go(func() {
					var batch []ID
					flush := func() {
						rand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
						for _, id := range batch {
							q.Ack(id)
						}
						batch = batch[:0]
					}
					for id := range acks {
						batch = append(batch, id)
						if len(batch) == 8 {
							flush()
						}
					}
					flush()
				})
			}
			seen := make([]map[int]bool, writers)
			last := make([]int, writers)
			for w := range seen {
				seen[w] = map[int]bool{}
				last[w] = -1
			}
			got := 0
			for got < writers*perWriter {
				c, err := q.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				w, i := int(c.Entries[0]), int(c.Entries[1])<<8|int(c.Entries[2])
				if string(c.Tag) != string(rune('a'+w)) || c.Count != i+1 {
					t.Fatalf("chunk %s corrupted: %q %d %v", c.ID, c.Tag, c.Count, c.Entries)
				}
				if !seen[w][i] {
					if i < last[w] {
						t.Fatalf("writer %d: chunk %d after %d", w, i, last[w])
					}
					seen[w][i], last[w] = true, i
					got++
				}
				if rand.IntN(40) == 0 {
					q.Rewind() // unacked chunks come again; dedup above
				} else {
					acks <- c.ID
				}
			}
			wg.Wait()
			// Rewound chunks may still be unacked: ack whatever comes back.
			close(acks)
			for {
				ctx2, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
				c, err := q.Next(ctx2)
				cancel2()
				if err != nil {
					break
				}
				q.Ack(c.ID)
			}
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			defer wcancel()
			if err := q.WaitEmpty(wctx); err != nil {
				t.Fatalf("not empty: %v %+v", err, q.Stats())
			}
			cancel()
			bg.Wait()
			st := q.Stats()
			if st.AppendedChunks != writers*perWriter || st.Segments != 1 || st.Bytes > opts.SegmentBytes {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestDropOldestKeepsLaterAcks: chunks after a dropped segment that were
// already acked (out of order) become the acked prefix at once; a reopen
// does not deliver them again.
func TestDropOldestKeepsLaterAcks(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Name: "out", SegmentBytes: 200, MaxBytes: 400}
	q := mustOpen(t, dir, opts)
	appendRange(t, q, 0, 6) // segments 1 (chunks 0-2) and 2 (chunks 3-5)
	var cs []Chunk
	for range 5 {
		cs = append(cs, next(t, q))
	}
	q.Ack(cs[3].ID)         // chunk 3 in segment 2 acked; 0-2 still in flight
	appendRange(t, q, 6, 7) // drops segment 1
	q.Close()
	q = mustOpen(t, dir, opts)
	if got, _ := drain(t, q); !equalInts(got, seq(4, 7)) {
		t.Fatalf("after drop and reopen read %v, want %v (chunk 3 was acked)", got, seq(4, 7))
	}
}

// TestDiscardCountsApart: a discarded chunk leaves the queue like an acked
// one but is counted by reason, never as acked.
func TestDiscardCountsApart(t *testing.T) {
	set := metrics.NewSet()
	opts := smallOpts()
	opts.Name, opts.Metrics = "out", set
	q := mustOpen(t, t.TempDir(), opts)
	appendRange(t, q, 0, 3)
	a, b, c := next(t, q), next(t, q), next(t, q)
	q.Discard(b.ID, "max_retries")
	q.Discard(b.ID, "max_retries") // settled: ignored
	q.Ack(a.ID)
	q.Ack(c.ID)
	st := q.Stats()
	if st.AckedChunks != 2 || st.DiscardedChunks != 1 || st.DiscardedEvents != int64(b.Count) || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	for _, want := range []string{
		`sluice_buffer_discarded_chunks_total{output="out",reason="max_retries"} 1`,
		fmt.Sprintf(`sluice_buffer_discarded_events_total{output="out",reason="max_retries"} %d`, b.Count),
		`sluice_buffer_acked_chunks_total{output="out"} 2`,
	} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, sb.String())
		}
	}
}

// TestSettleCounts: each way of settling a chunk counts where it belongs,
// and only fully delivered chunks count as acked.
func TestSettleCounts(t *testing.T) {
	set := metrics.NewSet()
	q := mustOpen(t, t.TempDir(), Options{Name: "o", Metrics: set})
	appendRange(t, q, 0, 3)
	a, b, c := next(t, q), next(t, q), next(t, q)
	q.Settle(a.ID, Settlement{})
	q.Settle(b.ID, Settlement{DeadLettered: 1, Reason: "rejected"})
	q.Settle(c.ID, Settlement{DeadLettered: 1, Dropped: 1, Reason: "max_retries"})
	q.Settle(c.ID, Settlement{}) // settled: ignored
	st := q.Stats()
	delivered := int64(a.Count + b.Count - 1 + c.Count - 2)
	if st.AckedChunks != 1 || st.DeadLetteredChunks != 1 || st.DiscardedChunks != 1 || st.Pending != 0 ||
		st.DeliveredEvents != delivered || st.DeadLetteredEvents != 2 || st.DiscardedEvents != 1 {
		t.Fatalf("%+v", st)
	}
	for name, want := range map[string]uint64{
		`sluice_buffer_acked_chunks_total{output="o"}`:                          1,
		`sluice_buffer_settled_events_total{output="o",status="delivered"}`:     uint64(delivered),
		`sluice_buffer_settled_events_total{output="o",status="dead_lettered"}`: 2,
		`sluice_buffer_settled_events_total{output="o",status="dropped"}`:       1,
		`sluice_buffer_discarded_events_total{output="o",reason="max_retries"}`: 1,
	} {
		if got := set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

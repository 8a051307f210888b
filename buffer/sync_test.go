package buffer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestClose(t *testing.T) {
	q := mustOpen(t, t.TempDir(), smallOpts())
	errc := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background())
		errc <- err
	}()
	runc := make(chan error, 1)
	go func() { runc <- q.Run(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting next: %v", err)
	}
	if err := <-runc; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := q.Append(context.Background(), []byte("t"), 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := q.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("next after close: %v", err)
	}
	if err := q.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
	q.Ack(ID{1, 0}) // no panic
	q.Rewind()
}

func TestRunSyncs(t *testing.T) {
	q := mustOpen(t, t.TempDir(), Options{Name: "t", FsyncInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	runc := make(chan error, 1)
	go func() { runc <- q.Run(ctx) }()
	appendRange(t, q, 0, 3)
	deadline := time.Now().Add(time.Second)
	for {
		q.mu.Lock()
		synced := q.syncedEpoch == q.epoch
		q.mu.Unlock()
		if synced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not fsync")
		}
		time.Sleep(time.Millisecond)
	}
	appendRange(t, q, 3, 4)
	cancel()
	if err := <-runc; err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.syncedEpoch != q.epoch || q.segDirty {
		t.Fatal("Run returned without a final fsync")
	}
}

func TestFsyncAlwaysGroupCommit(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, dir, Options{Name: "t", FsyncAlways: true, SegmentBytes: 4096, MaxBytes: 1 << 20})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { appendRange(t, q, w*25, w*25+25) })
	}
	wg.Wait()
	q.mu.Lock()
	clean := q.syncedEpoch == q.epoch && !q.segDirty && !q.dirDirty && len(q.unsynced) == 0
	rounds := q.syncRounds
	q.mu.Unlock()
	if !clean {
		t.Fatal("FsyncAlways appends returned with unsynced data")
	}
	// Concurrent appenders share fsyncs.
	if rounds >= 200 {
		t.Fatalf("%d fsync rounds for 200 concurrent appends: no group commit", rounds)
	}
	t.Logf("%d fsync rounds for 200 appends", rounds)
	// Crash right away: everything is there.
	crash(q)
	q = mustOpen(t, dir, Options{Name: "t"})
	got, _ := drain(t, q)
	if len(got) != 200 {
		t.Fatalf("recovered %d chunks", len(got))
	}
}

// TestSyncToGroupCommit: SyncTo returns at once for a covered mark, does
// not wait for the interval timer, and concurrent waiters share rounds.
func TestSyncToGroupCommit(t *testing.T) {
	q := mustOpen(t, t.TempDir(), Options{Name: "t", FsyncInterval: time.Hour})
	appendRange(t, q, 0, 1)
	m := q.Mark()
	start := time.Now()
	if err := q.SyncTo(m); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("SyncTo waited %s", d)
	}
	q.mu.Lock()
	rounds := q.syncRounds
	q.mu.Unlock()
	if err := q.SyncTo(m); err != nil { // covered: no new round
		t.Fatal(err)
	}
	q.mu.Lock()
	if q.syncRounds != rounds {
		t.Fatalf("covered mark started a round: %d -> %d", rounds, q.syncRounds)
	}
	q.mu.Unlock()

	const waiters = 32
	var wg sync.WaitGroup
	errs := make([]error, waiters)
	for i := range waiters {
		wg.Go(func() {
			if err := q.Append(context.Background(), []byte("t"), 1, testEntries(i)); err != nil {
				errs[i] = err
				return
			}
			errs[i] = q.SyncTo(q.Mark())
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	q.mu.Lock()
	shared := q.syncRounds - rounds
	synced := q.syncedEpoch == q.epoch
	q.mu.Unlock()
	if !synced {
		t.Fatal("not everything synced")
	}
	if shared > waiters {
		t.Fatalf("%d rounds for %d waiters", shared, waiters)
	}
	t.Logf("%d waiters shared %d fsync rounds", waiters, shared)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.SyncTo(m); err != nil {
		t.Fatalf("covered mark after close: %v", err)
	}
}

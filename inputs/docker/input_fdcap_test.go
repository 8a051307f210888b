package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

// fdcapQueue: small segments, so that the queue keeps creating and
// opening segment files while the input holds its descriptors.
var fdcapQueue = buffer.Options{Name: "out", SegmentBytes: 64 << 10, MaxBytes: 1 << 30, FsyncInterval: time.Hour}

// TestFDCapThousandsOfContainers (issue 12.4): 3,000 containers with
// RLIMIT_NOFILE lowered to 1024 for the test process. The docker input,
// with its default cap (the budget: 1024 minus the 256 reserve), writes
// into a real disk queue with 64 KiB segments that a consumer reads and
// acks at the same time (segments created, opened for reading, removed).
// Every container logs, then grows again in turn; every 100th is rotated
// (renamed, a new file created) between two writes. Every line is
// delivered exactly once, the input never holds more than 768 log files
// and the process never runs out of descriptors.
func TestFDCapThousandsOfContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 containers: skipped with -short")
	}
	const containers, limit, budget = 3000, 1024, 768
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Max < limit {
		t.Skipf("hard RLIMIT_NOFILE %d below %d", orig.Max, limit)
	}
	setup := time.Now()
	h := newHarness(t)
	paths := make([]string, containers)
	want := map[string]bool{}
	for i := range paths {
		paths[i] = h.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/c%d", i), nil)
		data, w := lines(fmt.Sprintf("c%04d-a-", i), 0, 3)
		tailtest.AppendFile(t, paths[i], data)
		for _, l := range w {
			want[l] = true
		}
	}

	t.Logf("%d containers created in %v", containers, time.Since(setup).Round(time.Millisecond))
	lowered := orig
	lowered.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	}()

	q, err := buffer.Open(filepath.Join(h.dataDir, "buffer", "out"), fdcapQueue)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q, ChunkBytes: 4 << 10}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, consumed, stopConsumer := consume(t, q)
	in, err := New("dk", testCfg(h.root), h.dataDir, r, tailtest.Logger(t), h.set)
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name string) float64 { return h.set.GetOrCreateGauge(name+`{input="dk"}`, nil).Get() }
	var peakOpen float64
	var peakFDs int
	sample := func() {
		peakOpen = max(peakOpen, gauge("sluice_input_files_open"))
		if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
			peakFDs = max(peakFDs, len(ents))
		}
	}
	waitDelivered := func(n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for consumed() < n {
			sample()
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d lines delivered", consumed(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	start := time.Now()
	stop := tailtest.Start(t, in)
	waitDelivered(len(want))
	first := time.Since(start)
	for i, p := range paths {
		data, w := lines(fmt.Sprintf("c%04d-b-", i), 0, 2)
		tailtest.AppendFile(t, p, data)
		for _, l := range w {
			want[l] = true
		}
		if i%100 == 0 {
			if err := os.Rename(p, p+".1"); err != nil {
				t.Fatal(err)
			}
			data, w := lines(fmt.Sprintf("c%04d-c-", i), 0, 2)
			tailtest.AppendFile(t, p, data)
			for _, l := range w {
				want[l] = true
			}
		}
		if i%300 == 0 {
			sample()
		}
	}
	waitDelivered(len(want))
	second := time.Since(start) - first
	// Idle: full scans (every 200 ms here) find the parked files unchanged
	// and leave them closed; duplicates, if any, arrive meanwhile.
	time.Sleep(300 * time.Millisecond)
	idleReopened := h.counter("sluice_input_files_reopened_total")
	time.Sleep(time.Second)
	if n := h.counter("sluice_input_files_reopened_total"); n != idleReopened {
		t.Errorf("%d parked files reopened while idle", n-idleReopened)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stopConsumer()
	st := q.Stats()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	missing, dups := 0, 0
	for l := range want {
		if got[l] == 0 {
			missing++
		}
	}
	for l, n := range got {
		if !want[l] {
			t.Errorf("unexpected line %q", l)
		}
		dups += n - 1
	}
	closed, reopened := h.counter("sluice_input_files_closed_idle_total"), h.counter("sluice_input_files_reopened_total")
	t.Logf("%d containers, RLIMIT_NOFILE %d: %d lines (first %d in %v, the rest in %v), %d missing, %d duplicates; open log files peak %.0f (limit %.0f), process fds peak %d; closed idle %d, reopened %d, deferred %d; queue: %d chunks appended, %d segments at the end",
		containers, limit, len(want), 3*containers, first.Round(time.Millisecond), second.Round(time.Millisecond), missing, dups, peakOpen,
		gauge("sluice_input_files_open_limit"), peakFDs, closed, reopened, h.counter("sluice_input_files_open_deferred_total"),
		st.AppendedChunks, st.Segments)
	if missing > 0 || dups > 0 {
		t.Fatalf("%d of %d lines missing, %d duplicates", missing, len(want), dups)
	}
	if l := gauge("sluice_input_files_open_limit"); l != budget {
		t.Fatalf("open files limit %.0f, want %d", l, budget)
	}
	if peakOpen > budget || peakFDs >= limit {
		t.Fatalf("peak open log files %.0f (cap %d), process fds %d (limit %d)", peakOpen, budget, peakFDs, limit)
	}
	if closed == 0 || reopened == 0 {
		t.Fatalf("closed idle %d, reopened %d: the cap was not exercised", closed, reopened)
	}
}

// consume reads and acks q's chunks until stopped, counting each "log".
// got may be read after stop.
func consume(t *testing.T, q *buffer.Queue) (got map[string]int, n func() int, stop func()) {
	got = map[string]int{}
	var mu sync.Mutex
	count := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := q.Next(ctx)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("queue Next: %v", err)
				}
				return
			}
			mu.Lock()
			err = wire.ForEachEntry(c.Entries, func(_ int64, rec []byte) error {
				v, _ := wire.LookupString(rec, []byte("log"))
				got[string(v)]++
				count++
				return nil
			})
			mu.Unlock()
			if err != nil {
				t.Errorf("decode chunk: %v", err)
			}
			q.Ack(c.ID)
		}
	}()
	n = func() int { mu.Lock(); defer mu.Unlock(); return count }
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return got, n, stop
}

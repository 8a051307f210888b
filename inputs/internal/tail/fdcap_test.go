package tail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// openFDs counts the process's open descriptors (Linux), or -1.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // ReadDir's own
}

// watchFDs samples openFDs every millisecond until stop is called, which
// returns the highest count seen.
func watchFDs() (stop func() int) {
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if n := int64(openFDs()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() int { close(done); wg.Wait(); return int(peak.Load()) }
}

// fdSlack is what the process opens besides log files, at most, at one
// time: inotify, the position journal, a directory being listed, the
// offsets file and its directory while a checkpoint writes them, the
// runtime's poller (epoll and its wake-up fd, if first used meanwhile)
// and the test's own writer.
const fdSlack = 8

// TestFDCapManySources: 50 sources with a cap of 8 open files, each
// growing in turn, some rotated (renamed, a new file created) between
// two rounds: every line is delivered once, in order per source, and
// never more than 8 log files are open (neither by the Tail's count nor
// in /proc/self/fd).
func TestFDCapManySources(t *testing.T) {
	const sources, capN, rounds, per = 50, 8, 4, 5
	h := newHarness(t)
	cfg := h.cfg()
	cfg.MaxOpenFiles = capN
	paths := make([]string, sources)
	want := map[string][]string{}
	add := func(i int, lines []string) { tag := fmt.Sprintf("t.c%d", i); want[tag] = append(want[tag], lines...) }
	for i := range paths {
		paths[i] = h.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/c%d", i))
		_, w := writeLines(t, paths[i], fmt.Sprintf("c%d-r0-", i), 0, per)
		add(i, w)
	}
	base := openFDs()
	stopFDs := watchFDs()
	in := h.tail(cfg)
	stop := tailtest.Start(t, in)
	total := sources * per
	h.waitEvents(total)
	rotated := 0
	for r := 1; r <= rounds; r++ {
		for i, p := range paths {
			_, w := writeLines(t, p, fmt.Sprintf("c%d-r%d-", i, r), 0, per)
			add(i, w)
			total += per
			if r == 2 && i%5 == 0 {
				// Rotated while (most likely) closed: its tail in .1, then
				// a new live file.
				must(t, os.Rename(p, p+".1"))
				_, w := writeLines(t, p, fmt.Sprintf("c%d-new-", i), 0, per)
				add(i, w)
				total += per
				rotated++
			}
			time.Sleep(2 * time.Millisecond)
		}
		h.waitEvents(total)
	}
	time.Sleep(200 * time.Millisecond) // duplicates, if any, arrive
	must(t, stop())
	peakFDs := stopFDs()
	got := h.q.LogsBy(func(e tailtest.Event) string { return e.Tag })
	if len(got) != sources {
		t.Fatalf("%d sources delivered, want %d", len(got), sources)
	}
	for tag, w := range want {
		tailtest.EqualStrings(t, got[tag], w)
	}
	if in.peakOpen > capN {
		t.Fatalf("peak open files %d, cap %d", in.peakOpen, capN)
	}
	if base >= 0 && peakFDs > base+capN+fdSlack {
		t.Fatalf("peak process descriptors %d, base %d + cap %d + slack %d", peakFDs, base, capN, fdSlack)
	}
	closed, reopened := h.counter("sluice_input_files_closed_idle_total"), h.counter("sluice_input_files_reopened_total")
	if closed == 0 || reopened == 0 {
		t.Fatalf("closed idle %d, reopened %d: the cap was never used", closed, reopened)
	}
	if lost := h.counter("sluice_input_files_lost_bytes_total"); lost != 0 {
		t.Fatalf("lost %d bytes", lost)
	}
	t.Logf("%d sources, cap %d, %d lines (%d rotations): peak open %d, process fds peak %d (base %d), closed idle %d, reopened %d, deferred %d",
		sources, capN, total, rotated, in.peakOpen, peakFDs, base, closed, reopened, h.counter("sluice_input_files_open_deferred_total"))
}

// settle drives a hand-driven Tail until it is quiet: scans and turns,
// enough times for deferred opens to be retried.
func settle(t *testing.T, in *Tail) {
	t.Helper()
	t.Cleanup(in.Close)
	for range 8 {
		in.Scan()
		must(t, in.Drain(context.Background()))
	}
}

// parkedSetup tracks two sources with a cap of 1: a's file is read, then
// parked so that b's can be read. It returns the tail and a's live path.
func (h *harness) parkedSetup(t *testing.T) (in *Tail, pathA, pathB string, wantA, wantB []string) {
	t.Helper()
	pathA, pathB = h.container(idA, "/a"), h.container(idB, "/b")
	_, wantA = writeLines(t, pathA, "a", 0, 10)
	_, wantB = writeLines(t, pathB, "b", 0, 10)
	cfg := h.cfg()
	cfg.MaxOpenFiles = 1
	in = h.tail(cfg)
	settle(t, in)
	if f := in.sources[idA].files[0]; !f.parked || f.f != nil {
		t.Fatalf("a's file not parked (parked %v, open %v)", f.parked, f.f != nil)
	}
	return in, pathA, pathB, wantA, wantB
}

func (h *harness) byTag() map[string][]string {
	return h.q.LogsBy(func(e tailtest.Event) string { return e.Tag })
}

// TestFDCapRotatedWhileClosed: a parked file grows, is renamed and a new
// file created at its path: the parked file is reopened by fingerprint
// among the rotated names and read to its end, then the new file.
func TestFDCapRotatedWhileClosed(t *testing.T) {
	h := newHarness(t)
	in, pathA, pathB, wantA, wantB := h.parkedSetup(t)
	_, tail := writeLines(t, pathA, "a-tail", 0, 10)
	must(t, os.Rename(pathA, pathA+".1"))
	_, fresh := writeLines(t, pathA, "a-new", 0, 10)
	_, moreB := writeLines(t, pathB, "b-more", 0, 10)
	settle(t, in)
	got := h.byTag()
	tailtest.EqualStrings(t, got["t.a"], append(append(wantA, tail...), fresh...))
	tailtest.EqualStrings(t, got["t.b"], append(wantB, moreB...))
	if in.peakOpen > 1 {
		t.Fatalf("peak open %d, cap 1", in.peakOpen)
	}
	if n := h.counter("sluice_input_files_reopened_total"); n < 1 {
		t.Fatalf("reopened %d, want at least a's", n)
	}
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Fatalf("lost %d", n)
	}
}

// TestFDCapDeletedWhileClosed: a parked file (read to its end) is deleted
// and a new file created at its path: the new file is read from 0,
// nothing is counted as lost.
func TestFDCapDeletedWhileClosed(t *testing.T) {
	h := newHarness(t)
	in, pathA, _, wantA, _ := h.parkedSetup(t)
	must(t, os.Remove(pathA))
	_, fresh := writeLines(t, pathA, "a-new", 0, 10)
	settle(t, in)
	tailtest.EqualStrings(t, h.byTag()["t.a"], append(wantA, fresh...))
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Fatalf("lost %d (nothing was unread)", n)
	}
}

// TestFDCapCopytruncateWhileClosed: a parked file grows, is copied to .1
// and truncated, and the truncated file gets fewer bytes than its old
// offset (then, in a second round, more): the copy is read on from the
// offset, the new content from 0, nothing twice.
func TestFDCapCopytruncateWhileClosed(t *testing.T) {
	for _, longer := range []bool{false, true} {
		t.Run(fmt.Sprintf("longer=%v", longer), func(t *testing.T) {
			h := newHarness(t)
			in, pathA, _, wantA, _ := h.parkedSetup(t)
			_, tail := writeLines(t, pathA, "a-tail", 0, 10)
			copyFile(t, pathA, pathA+".1")
			must(t, os.Truncate(pathA, 0))
			n := 3
			if longer {
				n = 60 // beyond the old offset: the size alone does not tell
			}
			_, fresh := writeLines(t, pathA, "c", 0, n)
			settle(t, in)
			tailtest.EqualStrings(t, h.byTag()["t.a"], append(append(wantA, tail...), fresh...))
			if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
				t.Fatalf("lost %d", n)
			}
		})
	}
}

// TestFDCapRestartWithClosedFiles: files parked at the cap are in the
// offsets file like open ones; after a stop, growth and a rotation while
// stopped, a restart (same cap) reads exactly what is new.
func TestFDCapRestartWithClosedFiles(t *testing.T) {
	const sources, capN = 12, 3
	h := newHarness(t)
	cfg := h.cfg()
	cfg.MaxOpenFiles = capN
	paths := make([]string, sources)
	for i := range paths {
		paths[i] = h.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/c%d", i))
		writeLines(t, paths[i], fmt.Sprintf("c%d-a", i), 0, 10)
	}
	in := h.tail(cfg)
	stop := tailtest.Start(t, in)
	h.waitEvents(sources * 10)
	must(t, stop())
	if n := h.counter("sluice_input_files_closed_idle_total"); n == 0 {
		t.Fatal("nothing was parked")
	}
	if st := h.savedState(); len(st) != sources {
		t.Fatalf("offsets file has %d entries, want %d", len(st), sources)
	}
	for _, p := range paths {
		st, _ := os.Stat(p)
		if off, ok := h.offsetOf(p); !ok || off != st.Size() {
			t.Fatalf("%s: saved offset %d (%v), want %d", filepath.Base(p), off, ok, st.Size())
		}
	}
	want := map[string][]string{}
	for i, p := range paths {
		tag := fmt.Sprintf("t.c%d", i)
		_, w := writeLines(t, p, fmt.Sprintf("c%d-b", i), 0, 5)
		want[tag] = w
		if i%4 == 0 {
			must(t, os.Rename(p, p+".1"))
			_, w := writeLines(t, p, fmt.Sprintf("c%d-c", i), 0, 5)
			want[tag] = append(want[tag], w...)
		}
	}
	h2 := *h
	h2.q = &tailtest.Queue{}
	in2 := h2.tail(cfg)
	stop = tailtest.Start(t, in2)
	total := 0
	for _, w := range want {
		total += len(w)
	}
	h2.waitEvents(total)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	got := h2.byTag()
	for tag, w := range want {
		tailtest.EqualStrings(t, got[tag], w)
	}
	if in2.peakOpen > capN {
		t.Fatalf("peak open %d, cap %d", in2.peakOpen, capN)
	}
}

// TestFDPoolShared: two tails share the process budget (here 8). The
// first holds every descriptor on idle files; the second, started later,
// gets its fair share and reads all its sources.
func TestFDPoolShared(t *testing.T) {
	old := nofileLimit
	nofileLimit = func() (uint64, error) { return 16, nil } // budget 16 - 8 = 8
	defer func() { nofileLimit = old }()
	if b := fdBudget(); b != 8 {
		t.Fatalf("budget %d, want 8", b)
	}
	h1, h2 := newHarness(t), newHarness(t)
	for i := range 12 {
		writeLines(t, h1.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/one%d", i)), "one", 0, 5)
		writeLines(t, h2.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/two%d", i)), "two", 0, 5)
	}
	in1 := h1.tail(h1.cfg())
	stop1 := tailtest.Start(t, in1)
	h1.waitEvents(60)
	in2 := h2.tail(h2.cfg())
	stop2 := tailtest.Start(t, in2)
	h2.waitEvents(60)
	must(t, stop2())
	must(t, stop1())
	if in1.peakOpen > 8 || in2.peakOpen > 8 {
		t.Fatalf("peak open %d and %d, budget 8", in1.peakOpen, in2.peakOpen)
	}
	// 12 sources through 8 descriptors park at least 4; shedding down to
	// the share of 4 for the second tail parks 4 more.
	if n := h1.counter("sluice_input_files_closed_idle_total"); n < 8 {
		t.Fatalf("first tail parked %d files, want at least 8", n)
	}
	fds.mu.Lock()
	used := fds.used
	fds.mu.Unlock()
	if used != 0 {
		t.Fatalf("%d tokens still used after both stopped", used)
	}
}

func TestFDBudget(t *testing.T) {
	old := nofileLimit
	defer func() { nofileLimit = old }()
	for _, c := range []struct {
		soft uint64
		want int
	}{{1024, 768}, {4096, 3072}, {20000, 15000}, {1 << 40, 3 << 18}, {512, 256}, {256, 128}, {16, 8}, {1, 1}} {
		nofileLimit = func() (uint64, error) { return c.soft, nil }
		if got := fdBudget(); got != c.want {
			t.Errorf("soft %d: budget %d, want %d", c.soft, got, c.want)
		}
	}
}

// TestFDCapCopytruncateAtCap: with a cap of 1, the file being read is
// copied and truncated: its descriptor (on content now replaced) is given
// up for the copy's, the copy is read on from the offset, then the new
// content; nothing is lost or read twice.
func TestFDCapCopytruncateAtCap(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/a")
	_, want := writeLines(t, path, "a", 0, 10)
	cfg := h.cfg()
	cfg.MaxOpenFiles = 1
	in := h.tail(cfg)
	settle(t, in)
	_, tail := writeLines(t, path, "a-tail", 0, 10)
	copyFile(t, path, path+".1")
	must(t, os.Truncate(path, 0))
	_, fresh := writeLines(t, path, "c", 0, 3)
	settle(t, in)
	tailtest.EqualStrings(t, h.byTag()["t.a"], append(append(want, tail...), fresh...))
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Fatalf("lost %d", n)
	}
	if in.peakOpen > 1 {
		t.Fatalf("peak open %d, cap 1", in.peakOpen)
	}
}

// TestFDCapOutOfDescriptors: the budget says there is room, but the
// process runs out of descriptors (RLIMIT_NOFILE lowered under it, as if
// the rest of the agent used more than the reserve): EMFILE defers opens
// (an idle file is closed and the open tried again, a directory that
// cannot be listed keeps its source as it is) and every line is still
// read once.
func TestFDCapOutOfDescriptors(t *testing.T) {
	old := nofileLimit
	nofileLimit = func() (uint64, error) { return 1 << 16, nil }
	defer func() { nofileLimit = old }()
	h := newHarness(t)
	want := map[string][]string{}
	for i := range 10 {
		// A rotated file and the live one: two opens after one listing.
		p := h.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/c%d", i))
		_, w1 := writeLines(t, p+".1", fmt.Sprintf("c%d-old-", i), 0, 5)
		_, w := writeLines(t, p, fmt.Sprintf("c%d-", i), 0, 5)
		want[fmt.Sprintf("t.c%d", i)] = append(w1, w...)
	}
	in := h.tail(h.cfg())
	var orig syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig))
	base := openFDs()
	if base < 0 {
		t.Skip("no /proc/self/fd")
	}
	low := orig
	low.Cur = uint64(base + 4)
	must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	restored := false
	restore := func() {
		if !restored {
			restored = true
			must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig))
		}
	}
	defer restore()
	t.Cleanup(in.Close)
	for range 12 {
		in.Scan()
		must(t, in.Drain(context.Background()))
	}
	restore()
	got := h.byTag()
	for tag, w := range want {
		tailtest.EqualStrings(t, got[tag], w)
	}
	if n := h.counter("sluice_input_files_open_deferred_total"); n == 0 {
		t.Fatal("no open was deferred: the limit was not reached")
	}
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Fatalf("lost %d", n)
	}
	t.Logf("peak open %d with RLIMIT_NOFILE %d (%d in use before), deferred %d, closed idle %d",
		in.peakOpen, low.Cur, base, h.counter("sluice_input_files_open_deferred_total"), h.counter("sluice_input_files_closed_idle_total"))
}

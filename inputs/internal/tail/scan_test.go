package tail

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

func TestStartAtEnd(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	writeLines(t, path, "old", 0, 5)
	cfg := h.cfg()
	cfg.StartAtEnd = true
	in := h.tail(cfg)
	must(t, tailtest.Pump(t, in))
	_, want := writeLines(t, path, "new", 0, 3)
	pb := h.container(idB, "/b") // appears later: read from the start
	_, wantB := writeLines(t, pb, "b", 0, 2)
	must(t, tailtest.Pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), append(want, wantB...))
}

// TestDepthTwoLayout: sources two levels below the root, as CRI's
// <root>/<ns>_<pod>_<uid>/<container>/. Rotated files are read first, a
// pod directory created while running is picked up, the source key (the
// path below the root) is what the offsets file stores.
func TestDepthTwoLayout(t *testing.T) {
	h := newHarness(t)
	cfg := h.cfg()
	cfg.Layout = testLayout{depth: 2}
	keyA := filepath.Join("ns_pod-a_uid1", "app")
	dirA := filepath.Join(h.root, keyA)
	must(t, os.MkdirAll(dirA, 0o755))
	r, wantR := lines("rotated", 0, 5)
	tailtest.AppendFile(t, filepath.Join(dirA, "0.log.1"), r)
	a, wantA := lines("a", 0, 5)
	tailtest.AppendFile(t, filepath.Join(dirA, "0.log"), a)
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(10)
	keyB := filepath.Join("ns_pod-b_uid2", "side")
	must(t, os.MkdirAll(filepath.Join(h.root, keyB), 0o755))
	b, wantB := lines("b", 0, 5)
	tailtest.AppendFile(t, filepath.Join(h.root, keyB, "0.log"), b)
	h.waitEvents(15)
	must(t, stop())
	bySource := h.q.LogsBy(func(e tailtest.Event) string { return e.Record["source"].(string) })
	tailtest.EqualStrings(t, bySource[keyA], append(wantR, wantA...))
	tailtest.EqualStrings(t, bySource[keyB], wantB)
	if off, ok := h.offsetOf(filepath.Join(dirA, "0.log")); !ok || off != int64(len(a)) {
		t.Fatalf("offset %d %v", off, ok)
	}
	for _, s := range h.savedState() {
		if s.ContainerID != keyA && s.ContainerID != keyB {
			t.Fatalf("saved key %q", s.ContainerID)
		}
	}
}

// TestInotifyWithoutPolling: with full scans an hour apart, writes, a new
// source and a rotation by rename are all seen through inotify events.
func TestInotifyWithoutPolling(t *testing.T) {
	h := newHarness(t)
	cfg := h.cfg()
	cfg.PollInterval = time.Hour
	path := h.container(idA, "/a")
	_, wantA := writeLines(t, path, "a", 0, 10)
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(10)
	_, wantA2 := writeLines(t, path, "a", 10, 10)
	h.waitEvents(20)
	pb := h.container(idB, "/b")
	_, wantB := writeLines(t, pb, "b", 0, 10)
	h.waitEvents(30)
	must(t, os.Rename(path, path+".1"))
	_, wantC := writeLines(t, path, "c", 0, 10)
	h.waitEvents(40)
	time.Sleep(50 * time.Millisecond) // let duplicates, if any, arrive
	must(t, stop())
	byTag := h.q.LogsBy(func(e tailtest.Event) string { return e.Tag })
	tailtest.EqualStrings(t, byTag["t.a"], append(append(wantA, wantA2...), wantC...))
	tailtest.EqualStrings(t, byTag["t.b"], wantB)
}

// logCounter counts the messages logged.
type logCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCounter) WithGroup(string) slog.Handler            { return c }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, r.Message)
	c.mu.Unlock()
	return nil
}

func (c *logCounter) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// TestWatchLimitFallsBackToPolling: when a watch cannot be added (the
// inotify watch limit), that is logged once, the whole tree is scanned
// every PollInterval again (not ten times less often) and the sources in
// unwatched directories are polled; the others still use their watches.
func TestWatchLimitFallsBackToPolling(t *testing.T) {
	h := newHarness(t)
	logs := &logCounter{}
	cfg := h.cfg()
	cfg.PollInterval = 100 * time.Millisecond
	cfg.Log = slog.New(logs)
	pa, pb, pc := h.container(idA, "/a"), h.container(idB, "/b"), h.container(idC, "/c")
	in := h.tail(cfg)
	in.watch.failAdd = func(dir string) error {
		if dir != h.root && dir != filepath.Join(h.root, idB) {
			return syscall.ENOSPC
		}
		return nil
	}
	stop := tailtest.Start(t, in)
	var want [3][]string
	for round := range 2 {
		for i, p := range []string{pa, pb, pc} {
			_, w := writeLines(t, p, fmt.Sprintf("%d-", i), round*10, 10)
			want[i] = append(want[i], w...)
		}
		h.waitEvents(30 * (round + 1))
	}
	must(t, stop())
	byTag := h.q.LogsBy(func(e tailtest.Event) string { return e.Tag })
	tailtest.EqualStrings(t, byTag["t.a"], want[0])
	tailtest.EqualStrings(t, byTag["t.b"], want[1])
	tailtest.EqualStrings(t, byTag["t.c"], want[2])
	if n := logs.count("cannot watch directory"); n != 1 {
		t.Fatalf("watch failure logged %d times", n)
	}
	if in.sources[idA].watched || !in.sources[idB].watched || !in.watch.degraded || in.scanInterval() != cfg.PollInterval {
		t.Fatal("watch state")
	}
}

// BenchmarkScan measures one full scan of 3,000 idle sources (one small
// log each, already tracked): the fallback scan's cost.
func BenchmarkScan(b *testing.B) {
	h := newHarness(b)
	for i := range 3000 {
		data, _ := lines("x", 0, 3)
		tailtest.AppendFile(b, h.container(fmt.Sprintf("%064x", i+1), "c"), data)
	}
	in := h.tail(h.cfg())
	defer in.Close()
	in.Scan()
	if err := in.Drain(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		in.scan(time.Now())
	}
}

package tail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// filterLayout is testLayout{depth: 2} reading only the sources whose key
// does not start with skip; asked counts the calls of Wants.
type filterLayout struct {
	testLayout
	skip  string
	asked *int
}

func (l filterLayout) Wants(key string) bool {
	*l.asked++
	return !strings.HasPrefix(key, l.skip)
}

// TestSourceFilter: a source the Layout does not want is never read, not
// even when it is created or written to while running, and its entries in
// the offsets file are dropped at the next start.
func TestSourceFilter(t *testing.T) {
	h := newHarness(t)
	keep := filepath.Join("ns_pod-a_uid1", "app")
	skip := filepath.Join("kube-system_dns_uid2", "coredns")
	for _, k := range []string{keep, skip} {
		must(t, os.MkdirAll(filepath.Join(h.root, k), 0o755))
	}
	_, wantA := writeLines(t, filepath.Join(h.root, keep, "0.log"), "a", 0, 5)
	writeLines(t, filepath.Join(h.root, skip, "0.log"), "s", 0, 5)

	// A first run without the filter tracks both sources.
	all := h.tail(func() Config { c := h.cfg(); c.Layout = testLayout{depth: 2}; return c }())
	must(t, tailtest.Pump(t, all))
	must(t, all.Checkpoint())
	all.Close()
	if n := len(h.savedState()); n != 2 {
		t.Fatalf("%d saved entries, want 2", n)
	}

	h.q = &tailtest.Queue{}
	asked := 0
	cfg := h.cfg()
	cfg.Layout = filterLayout{testLayout: testLayout{depth: 2}, skip: "kube-system_", asked: &asked}
	tl := h.tail(cfg)
	stop := tailtest.Start(t, tl)
	_, wantA2 := writeLines(t, filepath.Join(h.root, keep, "0.log"), "a", 5, 5)
	writeLines(t, filepath.Join(h.root, skip, "0.log"), "s", 5, 5)
	skip2 := filepath.Join("kube-system_proxy_uid3", "kube-proxy")
	must(t, os.MkdirAll(filepath.Join(h.root, skip2), 0o755))
	writeLines(t, filepath.Join(h.root, skip2, "0.log"), "p", 0, 5)
	keep2 := filepath.Join("ns_pod-b_uid4", "side")
	must(t, os.MkdirAll(filepath.Join(h.root, keep2), 0o755))
	_, wantB := writeLines(t, filepath.Join(h.root, keep2, "0.log"), "b", 0, 5)
	h.waitEvents(10)
	time.Sleep(150 * time.Millisecond) // several scans: nothing of the skipped sources may come
	must(t, stop())
	bySource := h.q.LogsBy(func(e tailtest.Event) string { return e.Record["source"].(string) })
	if len(bySource) != 2 {
		t.Fatalf("sources read: %v", bySource)
	}
	tailtest.EqualStrings(t, bySource[keep], wantA2)
	tailtest.EqualStrings(t, bySource[keep2], wantB)
	_ = wantA
	for _, s := range h.savedState() {
		if strings.HasPrefix(s.ContainerID, "kube-system_") {
			t.Fatalf("offsets entry of a skipped source: %+v", s)
		}
	}
	if asked == 0 {
		t.Fatal("Wants never asked")
	}
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Fatalf("lost bytes %d counted for skipped sources", n)
	}
}

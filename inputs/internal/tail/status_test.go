package tail

import (
	"errors"
	"testing"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// TestStatusLag: Ready once the first scan ran; Status counts the files and
// reports as lag exactly the bytes written after the committed offset,
// growing while the queues refuse appends, with the laggiest file first.
func TestStatusLag(t *testing.T) {
	h := newHarness(t)
	pathA, pathB := h.container(idA, "/a"), h.container(idB, "/b")
	writeLines(t, pathA, "a", 0, 20)
	writeLines(t, pathB, "b", 0, 5)
	in := h.tail(h.cfg())
	if in.Ready() {
		t.Fatal("ready before Run")
	}
	stop := tailtest.Start(t, in)
	tailtest.WaitFor(t, "everything committed", func() bool {
		s := in.Status()
		return s.FirstScanDone && s.FilesTracked == 2 && s.LagBytes == 0 && len(h.q.All()) == 25
	})
	if !in.Ready() {
		t.Error("not ready after the first scan")
	}
	if s := in.Status(); s.Sources != 2 || s.FilesOpen != 2 || s.FilesParked != 0 || len(s.Laggiest) != 0 {
		t.Errorf("status %+v", s)
	}

	h.q.SetFail(errors.New("queue full"), nil)
	data, _ := writeLines(t, pathA, "a", 20, 30)
	tailtest.WaitFor(t, "lag of the refused lines", func() bool { return in.Status().LagBytes == int64(len(data)) })
	s := in.Status()
	if len(s.Laggiest) != 1 || s.Laggiest[0].Path != pathA || s.Laggiest[0].Source != idA ||
		s.Laggiest[0].LagBytes != int64(len(data)) || s.Laggiest[0].Size != s.Laggiest[0].Committed+int64(len(data)) {
		t.Errorf("laggiest %+v", s.Laggiest)
	}
	h.q.SetFail(nil, nil)
	tailtest.WaitFor(t, "lag gone", func() bool { return in.Status().LagBytes == 0 })
	must(t, stop())
}

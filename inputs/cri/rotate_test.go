package cri

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/cri/crigen"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
	"github.com/sluice-agent/sluice/pipeline"
)

// gen returns a crigen container under h's root.
func (h *harness) gen(o crigen.Options) *crigen.Container {
	h.t.Helper()
	c, err := crigen.New(h.root, o)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// payloads returns the payloads of lines from..to-1 of c.
func payloads(c *crigen.Container, from, to int64) []string {
	var out []string
	for s := from; s < to; s++ {
		out = append(out, c.Payload(s))
	}
	return out
}

// rotations returns the rotated and compressed files of c's directory.
func rotations(t testing.TB, c *crigen.Container) (plain, gz []string) {
	t.Helper()
	ents, err := os.ReadDir(c.Dir())
	must(t, err)
	for _, e := range ents {
		switch n := e.Name(); {
		case strings.HasSuffix(n, ".gz"):
			gz = append(gz, n)
		case strings.Contains(n, ".log."):
			plain = append(plain, n)
		}
	}
	return plain, gz
}

// TestKubeletRotationWhileRunning: the kubelet renames 0.log to
// 0.log.<timestamp>, the runtime writes a few more lines to the renamed
// file before it reopens a new 0.log, and at the next rotation the
// kubelet gzips the older rotation. Every line arrives once, in order
// (the renamed file is finished first), and no .gz is ever read.
func TestKubeletRotationWhileRunning(t *testing.T) {
	h := newHarness(t)
	c := h.gen(crigen.Options{Namespace: "shop", Pod: "web", Name: "nginx", LateLines: 7, Payload: 300})
	must(t, c.Write(100))
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(100)
	for round := range 4 {
		must(t, c.Rotate())
		must(t, c.Write(100))
		h.waitEvents(int(c.Seq())) // finished before the next rotation gzips it
		if _, gz := rotations(t, c); len(gz) != round {
			t.Fatalf("round %d: %d .gz files", round, len(gz))
		}
	}
	time.Sleep(150 * time.Millisecond) // let duplicates, if any, arrive
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), payloads(c, 0, c.Seq()))
	if n := h.counter("sluice_input_rotations_total"); n != 4 {
		t.Errorf("rotations %d, want 4", n)
	}
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Errorf("lost bytes %d", n)
	}
	st, err := os.Stat(c.Path())
	must(t, err)
	if off, ok := h.offsetOf(c.Path()); !ok || off != st.Size() {
		t.Fatalf("saved offset of the live file %d %v, want %d", off, ok, st.Size())
	}
	for _, s := range h.savedState() {
		if strings.HasSuffix(s.Path, ".gz") {
			t.Fatalf("a .gz is tracked: %+v", s)
		}
	}
}

// TestGzAndTmpNeverRead: compressed and temporary files, even ones that
// hold plain CRI lines, are never read as new data.
func TestGzAndTmpNeverRead(t *testing.T) {
	h := newHarness(t)
	path := h.container("ns", "pod", uidA, "app")
	data, want := lines("live", 0, 10)
	tailtest.AppendFile(t, path, data)
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(10)
	other, _ := lines("never", 0, 10)
	dir := filepath.Dir(path)
	tailtest.AppendFile(t, filepath.Join(dir, "0.log.20240102-030405.tmp"), other)
	tailtest.AppendFile(t, filepath.Join(dir, "0.log.20240102-030405.gz"), other) // not even gzip
	f, err := os.Create(filepath.Join(dir, "0.log.20240102-020405.gz"))
	must(t, err)
	zw := gzip.NewWriter(f)
	fmt.Fprint(zw, other)
	must(t, zw.Close())
	must(t, f.Close())
	more, want2 := lines("live", 10, 5)
	tailtest.AppendFile(t, path, more)
	h.waitEvents(15)
	time.Sleep(150 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(want, want2...))
}

// TestRotationWhileStopped: lines written after the last checkpoint, a
// kubelet rotation and more lines in the new 0.log, all while the agent
// is stopped: at restart the renamed file is found by its fingerprint and
// read on from its offset, then the new 0.log; nothing is missing or
// repeated.
func TestRotationWhileStopped(t *testing.T) {
	h := newHarness(t)
	c := h.gen(crigen.Options{Namespace: "shop", Pod: "web", Name: "nginx", Stream: "both", Payload: 40 << 10})
	must(t, c.Write(30))
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(30)
	must(t, stop())
	must(t, c.Write(20)) // after the last checkpoint
	must(t, c.Rotate())
	must(t, c.Write(25))

	h2 := h.restarted()
	stop = tailtest.Start(t, h2.input(testCfg(h.root)))
	h2.waitEvents(45)
	time.Sleep(150 * time.Millisecond)
	must(t, stop())
	got := h2.q.All()
	// Per stream, in order; the two streams interleave.
	byStream := h2.q.LogsBy(func(e tailtest.Event) string { return e.Record["stream"].(string) })
	var wantOut, wantErr []string
	for s := int64(30); s < c.Seq(); s++ {
		if c.StreamOf(s) == "stdout" {
			wantOut = append(wantOut, c.Payload(s))
		} else {
			wantErr = append(wantErr, c.Payload(s))
		}
	}
	tailtest.EqualStrings(t, byStream["stdout"], wantOut)
	tailtest.EqualStrings(t, byStream["stderr"], wantErr)
	if len(got) != int(c.Seq()-30) {
		t.Fatalf("%d events, want %d", len(got), c.Seq()-30)
	}
	if n := h2.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Errorf("lost bytes %d", n)
	}
}

// TestTwoRotationsWhileStopped: the second rotation gzips the first one
// before the agent could finish it. Its unread lines are gone (the lost
// bytes are estimated from the size last seen, here the offset: the agent
// never saw them), and they are never read from the .gz; everything
// after them arrives, oldest first.
func TestTwoRotationsWhileStopped(t *testing.T) {
	h := newHarness(t)
	c := h.gen(crigen.Options{Namespace: "shop", Pod: "web", Name: "nginx"})
	must(t, c.Write(10))
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(10)
	must(t, stop())
	must(t, c.Write(10)) // lost with the gzip
	must(t, c.Rotate())
	from := c.Seq()
	must(t, c.Write(10))
	must(t, c.Rotate()) // gzips the first rotation
	must(t, c.Write(10))
	if _, gz := rotations(t, c); len(gz) != 1 {
		t.Fatalf(".gz files %v", gz)
	}

	h2 := h.restarted()
	stop = tailtest.Start(t, h2.input(testCfg(h.root)))
	h2.waitEvents(20)
	time.Sleep(150 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h2.q.Logs(), payloads(c, from, c.Seq()))
}

// TestContainerRestart: a restarted container writes 1.log; 0.log (its
// exited predecessor's) is finished first and closed.
func TestContainerRestart(t *testing.T) {
	h := newHarness(t)
	c := h.gen(crigen.Options{Namespace: "shop", Pod: "web", Name: "nginx"})
	must(t, c.Write(20))
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(20)
	must(t, c.Write(5))
	must(t, c.Restart())
	must(t, c.Write(20))
	must(t, c.Rotate())
	must(t, c.Write(5))
	h.waitEvents(50)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), payloads(c, 0, c.Seq()))
	if !strings.HasSuffix(c.Path(), "1.log") {
		t.Fatalf("live file %s", c.Path())
	}
}

// TestHandoffFailsAcrossRotations: appends to the queue fail again and
// again (in small chunks, mid-turn) while the kubelet rotates and lines
// are split into P pieces on two streams. Offsets are committed only
// after a successful Flush: every line arrives exactly once, per stream
// in order, and the committed offset ends at the end of the live file.
func TestHandoffFailsAcrossRotations(t *testing.T) {
	h := newHarness(t)
	c := h.gen(crigen.Options{Namespace: "shop", Pod: "web", Name: "nginx", Stream: "both", Payload: 20 << 10, SplitAt: 8 << 10, LateLines: 3})
	// Every 7th attempt fails: a turn's flush (about 5 chunks) fails
	// midway about every other turn, and its retry succeeds.
	h.q.SetFailWhen(func(n int) bool { return n%7 == 0 })
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: h.q, ChunkBytes: 64 << 10}}, metrics.NewSet(), nil)
	must(t, err)
	in, err := New("cri", testCfg(h.root), h.dataDir, r, tailtest.Logger(t), h.set)
	must(t, err)
	stop := tailtest.Start(t, in)
	for range 4 {
		must(t, c.Write(40))
		tailtest.WaitFor(t, "the lines so far", func() bool { return len(h.q.All()) >= int(c.Seq()) })
		must(t, c.Rotate())
	}
	must(t, c.Write(40))
	tailtest.WaitFor(t, "every line", func() bool { return len(h.q.All()) >= int(c.Seq()) })
	st, err := os.Stat(c.Path())
	must(t, err)
	tailtest.WaitFor(t, "offset at the end", func() bool { off, _ := h.offsetOf(c.Path()); return off == st.Size() })
	must(t, stop())
	byStream := h.q.LogsBy(func(e tailtest.Event) string { return e.Record["stream"].(string) })
	var wantOut, wantErr []string
	for s := range c.Seq() {
		if c.StreamOf(s) == "stdout" {
			wantOut = append(wantOut, c.Payload(s))
		} else {
			wantErr = append(wantErr, c.Payload(s))
		}
	}
	tailtest.EqualStrings(t, byStream["stdout"], wantOut)
	tailtest.EqualStrings(t, byStream["stderr"], wantErr)
	if a := h.q.Attempts(); a < 70 {
		t.Fatalf("only %d append attempts (%d failed): the failures were not exercised", a, a/7)
	}
	t.Logf("%d lines, %d append attempts, %d failed", c.Seq(), h.q.Attempts(), h.q.Attempts()/7)
}

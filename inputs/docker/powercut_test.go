package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/journal"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
	"github.com/sluice-agent/sluice/internal/testkit/powercut"
	"github.com/sluice-agent/sluice/pipeline"
)

// TestCommittedSurvivesPowerCut: the docker input tails a log that keeps
// growing into a real disk queue whose fsync interval never fires. The
// power is cut (only what an fsync covered survives, including the
// offsets file, which is written tmp+fsync+rename+fsync) and the machine
// "reboots" (a new boot id, so the position journal is not trusted). The
// restarted input, on the recovered queue, then delivers every line of
// the log: what was committed before the cut is in the queue, the rest is
// read again.
func TestCommittedSurvivesPowerCut(t *testing.T) {
	bootFile := filepath.Join(t.TempDir(), "boot_id")
	os.WriteFile(bootFile, []byte("boot-1"), 0o600)
	oldBoot := journal.BootIDPath
	journal.BootIDPath = bootFile
	defer func() { journal.BootIDPath = oldBoot }()

	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	disk := powercut.New(h.dataDir)
	restore := buffer.SetSyncHook(disk.Sync)
	defer restore()
	open := func(dataDir string) (*buffer.Queue, *pipeline.Router) { return openQueue(t, dataDir) }
	q, r := open(h.dataDir)
	in, err := New("dk", testCfg(h.root), h.dataDir, r, tailtest.Logger(t), h.set)
	if err != nil {
		t.Fatal(err)
	}
	stop := tailtest.Start(t, in)
	var want []string
	for i := range 40 {
		data, w := lines(fmt.Sprintf("l%02d-", i), 0, 100)
		tailtest.AppendFile(t, path, data)
		want = append(want, w...)
		time.Sleep(5 * time.Millisecond)
	}
	tailtest.WaitFor(t, "a checkpoint", func() bool { off, _ := h.offsetOf(path); return off > 0 })
	// Cut: the offsets file as it is now (always durable once renamed),
	// then what the queue's fsyncs made durable.
	cut := t.TempDir()
	stateDir := filepath.Join("inputs", "dk")
	os.MkdirAll(filepath.Join(cut, stateDir), 0o750)
	if b, err := os.ReadFile(filepath.Join(h.dataDir, stateDir, "offsets.json")); err == nil {
		os.WriteFile(filepath.Join(cut, stateDir, "offsets.json"), b, 0o600)
	}
	committed, _ := h.offsetOf(path)
	if err := disk.Crash(cut); err != nil {
		t.Fatal(err)
	}
	// The journal files survive too (worst case): they must be ignored
	// after the reboot, their boot id no longer being the kernel's.
	journals, _ := filepath.Glob(filepath.Join(h.dataDir, stateDir, "journal.*"))
	for _, f := range journals {
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(cut, stateDir, filepath.Base(f)), b, 0o600)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	restore()

	os.WriteFile(bootFile, []byte("boot-2"), 0o600) // the reboot
	q2, r2 := open(cut)
	in2, err := New("dk", testCfg(h.root), cut, r2, tailtest.Logger(t), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in2); err != nil {
		t.Fatal(err)
	}
	q2.Close()
	got := recovered(t, cut)
	missing := 0
	for _, l := range want {
		if got[l] == 0 {
			missing++
		}
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("%d lines; offset committed before the cut %d of %d bytes; after the reboot %d missing, %d read twice; %d fsyncs recorded",
		len(want), committed, func() int64 { st, _ := os.Stat(path); return st.Size() }(), missing, dups, disk.Syncs())
	if missing > 0 {
		t.Fatalf("%d of %d lines lost by the power cut", missing, len(want))
	}
}

// TestSameBootRestartThenPowerCut: kill -9 leaves the queue's data in the
// page cache only; the restart in the same boot resumes from the position
// journal and checkpoints offsets past that data. A power cut after that
// checkpoint must not lose those lines: the recovered segments are fsynced
// when the queue opens, before any offset is committed past them.
func TestSameBootRestartThenPowerCut(t *testing.T) {
	bootFile := filepath.Join(t.TempDir(), "boot_id")
	os.WriteFile(bootFile, []byte("boot-1"), 0o600)
	oldBoot := journal.BootIDPath
	journal.BootIDPath = bootFile
	defer func() { journal.BootIDPath = oldBoot }()
	open := func(dataDir string) (*buffer.Queue, *pipeline.Router) { return openQueue(t, dataDir) }
	copyTree := func(from, to string) {
		filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(from, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(to, rel), 0o750)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(to, rel), b, 0o600)
		})
	}

	// Run 1: lines handed off and journaled, no checkpoint, then kill -9
	// (the copy is what the page cache holds).
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	data, want := lines("x-", 0, 2000)
	tailtest.AppendFile(t, path, data)
	q1, r1 := open(h.dataDir)
	cfg := testCfg(h.root)
	cfg.CheckpointInterval = time.Hour
	in1, err := New("dk", cfg, h.dataDir, r1, tailtest.Logger(t), h.set)
	if err != nil {
		t.Fatal(err)
	}
	stop := tailtest.Start(t, in1)
	tailtest.WaitFor(t, "every line read", func() bool { return h.counter("sluice_input_lines_total") >= 2000 })
	time.Sleep(50 * time.Millisecond)
	killed := t.TempDir()
	copyTree(h.dataDir, killed)
	os.Remove(filepath.Join(killed, "inputs", "dk", "offsets.json")) // none was checkpointed before the kill
	stop()
	q1.Close()

	// Run 2, same boot: resumes from the journal, checkpoints, power cut.
	disk := powercut.New(killed)
	restore := buffer.SetSyncHook(disk.Sync)
	q2, r2 := open(killed)
	in2, err := New("dk", cfg, killed, r2, tailtest.Logger(t), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in2); err != nil {
		t.Fatal(err)
	}
	if err := in2.t.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	cut := t.TempDir()
	os.MkdirAll(filepath.Join(cut, "inputs", "dk"), 0o750)
	b, err := os.ReadFile(filepath.Join(killed, "inputs", "dk", "offsets.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cut, "inputs", "dk", "offsets.json"), b, 0o600)
	if err := disk.Crash(cut); err != nil {
		t.Fatal(err)
	}
	q2.Close()
	restore()

	// Run 3, after the reboot.
	os.WriteFile(bootFile, []byte("boot-2"), 0o600)
	q3, r3 := open(cut)
	in3, err := New("dk", cfg, cut, r3, tailtest.Logger(t), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in3); err != nil {
		t.Fatal(err)
	}
	q3.Close()
	got := recovered(t, cut)
	missing := 0
	for _, l := range want {
		if got[l] == 0 {
			missing++
		}
	}
	t.Logf("%d lines; after kill -9, a same-boot restart, a checkpoint and a power cut: %d missing", len(want), missing)
	if missing > 0 {
		t.Fatalf("%d of %d lines lost", missing, len(want))
	}
}

var powercutQueue = buffer.Options{Name: "out", SegmentBytes: 1 << 20, MaxBytes: 1 << 30, FsyncInterval: time.Hour}

// openQueue opens the real queue of output "out" under dataDir (fsync
// interval an hour: only explicit syncs make data durable) and a router
// sending every tag to it.
func openQueue(t *testing.T, dataDir string) (*buffer.Queue, *pipeline.Router) {
	t.Helper()
	q, err := buffer.Open(filepath.Join(dataDir, "buffer", "out"), powercutQueue)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q, ChunkBytes: 4 << 10}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return q, r
}

// recovered returns the "log" of every event in the queue of dataDir.
func recovered(t *testing.T, dataDir string) map[string]int {
	t.Helper()
	got, err := powercut.Logs(filepath.Join(dataDir, "buffer", "out"), powercutQueue)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

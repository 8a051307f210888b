package tail

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// TestCheckpointNeverAhead: while the queue refuses chunks, or accepts
// them but cannot sync, the saved offset does not move; once it works,
// every line arrives exactly once.
func TestCheckpointNeverAhead(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, wantA := writeLines(t, path, "a", 0, 10)
	stop := tailtest.Start(t, h.tail(h.cfg()))
	h.waitEvents(10)
	tailtest.WaitFor(t, "checkpoint", func() bool { off, _ := h.offsetOf(path); return off == int64(len(a)) })

	h.q.SetFail(errors.New("disk full"), nil)
	b, wantB := writeLines(t, path, "b", 0, 10)
	tailtest.WaitFor(t, "lines read", func() bool { return h.counter("sluice_input_lines_total") >= 20 })
	time.Sleep(150 * time.Millisecond) // several checkpoint intervals
	if off, _ := h.offsetOf(path); off != int64(len(a)) {
		t.Fatalf("offset %d moved while Append failed", off)
	}

	h.q.SetFail(nil, errors.New("fsync failed")) // accepted, not durable
	h.waitEvents(20)
	time.Sleep(150 * time.Millisecond)
	if off, _ := h.offsetOf(path); off != int64(len(a)) {
		t.Fatalf("offset %d moved while Sync failed", off)
	}

	h.q.SetFail(nil, nil)
	tailtest.WaitFor(t, "checkpoint", func() bool { off, _ := h.offsetOf(path); return off == int64(len(a)+len(b)) })
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(wantA, wantB...))
}

// TestShutdownWritesFinalCheckpoint: with a checkpoint interval longer than
// the test, the offsets file is still current after Run returns, and a
// restart reads nothing again.
func TestShutdownWritesFinalCheckpoint(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, want := writeLines(t, path, "a", 0, 25)
	cfg := h.cfg()
	cfg.CheckpointInterval = time.Hour
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(25)
	must(t, stop())
	if off, ok := h.offsetOf(path); !ok || off != int64(len(a)) {
		t.Fatalf("saved offset %d, want %d", off, len(a))
	}
	if h.q.Syncs() == 0 {
		t.Fatal("offsets written without Router.Sync")
	}
	_, wantB := writeLines(t, path, "b", 0, 5)
	stop = tailtest.Start(t, h.tail(cfg))
	h.waitEvents(30)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(want, wantB...))
}

// TestShutdownWithStuckQueue: Run returns even if the queue blocks, and
// the offset of what was not accepted is not saved.
func TestShutdownWithStuckQueue(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	h.q.Hold() // never released
	writeLines(t, path, "a", 0, 5)
	in := h.tail(h.cfg())
	in.finalFlush = 200 * time.Millisecond
	stop := tailtest.Start(t, in)
	tailtest.WaitFor(t, "lines read", func() bool { return h.counter("sluice_input_lines_total") >= 5 })
	t0 := time.Now()
	err := stop()
	if err == nil || time.Since(t0) > 3*time.Second {
		t.Fatalf("Run returned %v after %v", err, time.Since(t0))
	}
	if off, _ := h.offsetOf(path); off != 0 {
		t.Fatalf("offset %d saved for lines the queue never accepted", off)
	}
}

func TestCorruptStateMovedAside(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	_, want := writeLines(t, path, "a", 0, 3)
	dir := filepath.Join(h.dataDir, "inputs", "tl")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, stateName), []byte("{not json"), 0o600))
	cfg := h.cfg()
	cfg.StartAtEnd = true // must not apply: state existed
	in := h.tail(cfg)
	if _, err := os.Stat(filepath.Join(dir, stateName+".bad")); err != nil {
		t.Fatal(err)
	}
	must(t, tailtest.Pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), want)
}

func TestStateWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, stateName)
	files := []savedFile{{ContainerID: "c", Path: "/p", Fingerprint: strings.Repeat("ab", 32), FingerprintLen: 10, Offset: 5}}
	must(t, writeState(path, stateFile{Gen: 7, Files: files}))
	st, existed, err := loadState(path)
	if got := st.Files; err != nil || !existed || st.Gen != 7 || !reflect.DeepEqual(got, files) {
		t.Fatalf("got %v %v %v", got, existed, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temp file left behind")
	}
	// A directory in place of the temp file makes the write fail cleanly
	// and leaves the old state intact.
	must(t, os.Mkdir(path+".tmp", 0o755))
	if err := writeState(path, stateFile{}); err == nil {
		t.Fatal("no error")
	}
	if got, _, _ := loadState(path); !reflect.DeepEqual(got.Files, files) {
		t.Fatal("old state damaged")
	}
	if _, _, err := loadState(filepath.Join(dir, "missing")); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(path, []byte(`{"version":9}`), 0o600))
	if _, _, err := loadState(path); !errors.Is(err, errCorruptState) {
		t.Fatalf("version 9: %v", err)
	}
}

package tail

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCheckpointNeverAhead: while the queue refuses chunks, or accepts
// them but cannot sync, the saved offset does not move; once it works,
// every line arrives exactly once.
func TestCheckpointNeverAhead(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, wantA := lines("a", 0, 10)
	appendFile(t, path, a)
	stop := start(t, h.tail(h.cfg()))
	h.waitEvents(10)
	waitFor(t, "checkpoint", func() bool { off, _ := h.offsetOf(path); return off == int64(len(a)) })

	h.q.setFail(errors.New("disk full"), nil)
	b, wantB := lines("b", 0, 10)
	appendFile(t, path, b)
	waitFor(t, "lines read", func() bool { return h.counter("sluice_input_lines_total") >= 20 })
	time.Sleep(150 * time.Millisecond) // several checkpoint intervals
	if off, _ := h.offsetOf(path); off != int64(len(a)) {
		t.Fatalf("offset %d moved while Append failed", off)
	}

	h.q.setFail(nil, errors.New("fsync failed")) // accepted, not durable
	h.waitEvents(20)
	time.Sleep(150 * time.Millisecond)
	if off, _ := h.offsetOf(path); off != int64(len(a)) {
		t.Fatalf("offset %d moved while Sync failed", off)
	}

	h.q.setFail(nil, nil)
	waitFor(t, "checkpoint", func() bool { off, _ := h.offsetOf(path); return off == int64(len(a)+len(b)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), append(wantA, wantB...))
}

// TestShutdownWritesFinalCheckpoint: with a checkpoint interval longer than
// the test, the offsets file is still current after Run returns, and a
// restart reads nothing again.
func TestShutdownWritesFinalCheckpoint(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, want := lines("a", 0, 25)
	appendFile(t, path, a)
	cfg := h.cfg()
	cfg.CheckpointInterval = time.Hour
	stop := start(t, h.tail(cfg))
	h.waitEvents(25)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if off, ok := h.offsetOf(path); !ok || off != int64(len(a)) {
		t.Fatalf("saved offset %d, want %d", off, len(a))
	}
	h.q.mu.Lock()
	syncs := h.q.syncs
	h.q.mu.Unlock()
	if syncs == 0 {
		t.Fatal("offsets written without Router.Sync")
	}
	b, wantB := lines("b", 0, 5)
	appendFile(t, path, b)
	stop = start(t, h.tail(cfg))
	h.waitEvents(30)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), append(want, wantB...))
}

// TestShutdownWithStuckQueue: Run returns even if the queue blocks, and
// the offset of what was not accepted is not saved.
func TestShutdownWithStuckQueue(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	h.q.gate = make(chan struct{}) // never opened
	a, _ := lines("a", 0, 5)
	appendFile(t, path, a)
	in := h.tail(h.cfg())
	in.finalFlush = 200 * time.Millisecond
	stop := start(t, in)
	waitFor(t, "lines read", func() bool { return h.counter("sluice_input_lines_total") >= 5 })
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
	a, want := lines("a", 0, 3)
	appendFile(t, path, a)
	dir := filepath.Join(h.dataDir, "inputs", "tl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := h.cfg()
	cfg.StartAtEnd = true // must not apply: state existed
	in := h.tail(cfg)
	if _, err := os.Stat(filepath.Join(dir, stateName+".bad")); err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), want)
}

func TestStateWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, stateName)
	files := []savedFile{{ContainerID: "c", Path: "/p", Fingerprint: strings.Repeat("ab", 32), FingerprintLen: 10, Offset: 5}}
	if err := writeState(path, stateFile{Gen: 7, Files: files}); err != nil {
		t.Fatal(err)
	}
	st, existed, err := loadState(path)
	if got := st.Files; err != nil || !existed || st.Gen != 7 || !reflect.DeepEqual(got, files) {
		t.Fatalf("got %v %v %v", got, existed, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temp file left behind")
	}
	// A directory in place of the temp file makes the write fail cleanly
	// and leaves the old state intact.
	if err := os.Mkdir(path+".tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeState(path, stateFile{}); err == nil {
		t.Fatal("no error")
	}
	if got, _, _ := loadState(path); !reflect.DeepEqual(got.Files, files) {
		t.Fatal("old state damaged")
	}
	if _, _, err := loadState(filepath.Join(dir, "missing")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"version":9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadState(path); !errors.Is(err, errCorruptState) {
		t.Fatalf("version 9: %v", err)
	}
}

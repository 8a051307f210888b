package tail

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// TestRotateRenameWhileRunning: lines written through the old descriptor
// after the rename are read before the new file.
func TestRotateRenameWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a, wantA := lines("a", 0, 100)
	if _, err := w.WriteString(a); err != nil {
		t.Fatal(err)
	}
	stop := start(t, h.tail(h.cfg()))
	h.waitEvents(100)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	b, wantB := lines("b", 0, 100)
	if _, err := w.WriteString(b); err != nil { // Docker's last write before it reopens
		t.Fatal(err)
	}
	c, wantC := lines("c", 0, 100)
	appendFile(t, path, c)
	h.waitEvents(300)
	time.Sleep(100 * time.Millisecond) // let duplicates, if any, arrive
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), append(append(wantA, wantB...), wantC...))
	if n := h.counter("sluice_input_rotations_total"); n != 1 {
		t.Fatalf("rotations %d", n)
	}
	st, _ := os.Stat(path)
	if off, ok := h.offsetOf(path); !ok || off != st.Size() {
		t.Fatalf("saved offset %d, want %d", off, st.Size())
	}
}

// TestCopytruncateWhileRunning: the reader is held inside Flush while the
// file is copied and truncated; the unread lines are read from the copy,
// then the truncated file from 0.
func TestCopytruncateWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, wantA := lines("a", 0, 20)
	appendFile(t, path, a)
	stop := start(t, h.tail(h.cfg()))
	h.waitEvents(20)

	h.q.mu.Lock()
	gate := make(chan struct{})
	h.q.gate = gate
	h.q.mu.Unlock()
	b, wantB := lines("b", 0, 20)
	appendFile(t, path, b) // read, then blocked in Flush
	waitFor(t, "reader blocked", func() bool { return h.counter("sluice_input_lines_total") >= 40 })
	b2, wantB2 := lines("b2-", 0, 20)
	appendFile(t, path, b2) // not read yet
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	c, wantC := lines("c-longer-lines-so-the-new-file-outgrows-the-old-offset-", 0, 60)
	appendFile(t, path, c)
	h.q.mu.Lock()
	h.q.gate = nil
	h.q.mu.Unlock()
	close(gate)
	h.waitEvents(120)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), append(append(append(wantA, wantB...), wantB2...), wantC...))
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestCopytruncateWhileStopped(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, _ := lines("a", 0, 20)
	appendFile(t, path, a)
	stop := start(t, h.tail(h.cfg()))
	h.waitEvents(20)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, wantB := lines("b", 0, 20)
	appendFile(t, path, b)
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	c, wantC := lines("c", 0, 5) // shorter than the old offset
	appendFile(t, path, c)

	h2 := *h
	h2.q = &fakeQueue{}
	stop = start(t, h2.tail(h.cfg()))
	h2.waitEvents(25)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h2.q.logs(), append(wantB, wantC...))
}

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	_, ino := fileID(fi)
	return ino
}

// TestInodeReuseWhileRunning: a deleted file's inode given to a new file at
// the same path must not be taken for the old file.
func TestInodeReuseWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, wantA := lines("a", 0, 10)
	appendFile(t, path, a)
	in := h.tail(h.cfg())
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	old := inode(t, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in); err != nil { // finishes and closes the deleted file
		t.Fatal(err)
	}
	b, wantB := lines("b", 0, 10)
	appendFile(t, path, b)
	if got := inode(t, path); got != old {
		t.Logf("filesystem did not reuse the inode (%d vs %d); the restart test covers reuse", got, old)
	}
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), append(wantA, wantB...))
}

// TestInodeReuseAcrossRestart: a saved entry whose inode now belongs to a
// different file (other fingerprint) does not give that file its offset.
func TestInodeReuseAcrossRestart(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	b, wantB := lines("b", 0, 10)
	appendFile(t, path, b)
	fi, _ := os.Stat(path)
	dev, ino := fileID(fi)
	other := newFingerprint([]byte(tl("something else entirely\n", "stdout")))
	state := []savedFile{{
		ContainerID: idA, Path: path, Fingerprint: other.String(), FingerprintLen: other.n,
		Offset: fi.Size() - 10, Size: fi.Size() - 10, Dev: dev, Ino: ino, LastSeen: time.Now().Unix(),
	}}
	dir := filepath.Join(h.dataDir, "inputs", "tl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeState(filepath.Join(dir, stateName), stateFile{Files: state}); err != nil {
		t.Fatal(err)
	}
	in := h.tail(h.cfg())
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), wantB)
}

// TestDeleteWhileRunningReadsRest: Docker's max-file=1 rotation unlinks the
// file and creates a new one; lines not yet read are read through the open
// descriptor, before the new file.
func TestDeleteWhileRunningReadsRest(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, wantA := lines("a", 0, 10)
	appendFile(t, path, a)
	stop := start(t, h.tail(h.cfg()))
	h.waitEvents(10)
	h.q.mu.Lock()
	gate := make(chan struct{})
	h.q.gate = gate
	h.q.mu.Unlock()
	b, wantB := lines("b", 0, 10)
	appendFile(t, path, b) // read, then held in Flush
	waitFor(t, "reader blocked", func() bool { return h.counter("sluice_input_lines_total") >= 20 })
	b2, wantB2 := lines("b2-", 0, 10)
	appendFile(t, path, b2) // never seen through the path
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c, wantC := lines("c", 0, 10)
	appendFile(t, path, c)
	h.q.mu.Lock()
	h.q.gate = nil
	h.q.mu.Unlock()
	close(gate)
	h.waitEvents(40)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), append(append(append(wantA, wantB...), wantB2...), wantC...))
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Fatalf("lost %d", n)
	}
}

// TestDeletedWithUnreadDataCounted: lines read but never accepted, then the
// file is deleted while the agent is stopped: the loss is counted.
func TestDeletedWithUnreadDataCounted(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, _ := lines("a", 0, 10)
	appendFile(t, path, a)
	h.q.setFail(errors.New("down"), nil)
	stop := start(t, h.tail(h.cfg()))
	waitFor(t, "lines read", func() bool { return h.counter("sluice_input_lines_total") >= 10 })
	time.Sleep(50 * time.Millisecond)
	_ = stop()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.q.setFail(nil, nil)
	h.set = metrics.NewSet() // count only what the restarted input sees
	in := h.tail(h.cfg())
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != uint64(len(a)) {
		t.Fatalf("lost bytes %d, want %d", n, len(a))
	}
}

func TestForgetGoneEntries(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, _ := lines("a", 0, 3)
	appendFile(t, path, a)
	in := h.tail(h.cfg())
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(h.root, idA)); err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	c := in.sources[idA]
	if c == nil || len(c.files) != 1 || c.files[0].f != nil {
		t.Fatal("entry should be kept (closed) for a while")
	}
	c.files[0].lastSeen = time.Now().Add(-2 * time.Hour)
	in.scan(time.Now())
	if len(in.sources) != 0 {
		t.Fatal("entry not forgotten after an hour")
	}
	if err := in.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if st := h.savedState(); len(st) != 0 {
		t.Fatalf("state still has %d entries", len(st))
	}
}

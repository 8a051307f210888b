package tail

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// TestRotateRenameWhileRunning: lines written through the old descriptor
// after the rename are read before the new file.
func TestRotateRenameWhileRunning(t *testing.T) {
	h := newHarness(t)
	path, w, wantA := runtimeWriter(t, h, 100)
	stop := tailtest.Start(t, h.tail(h.cfg()))
	h.waitEvents(100)
	must(t, os.Rename(path, path+".1"))
	b, wantB := lines("b", 0, 100)
	if _, err := w.WriteString(b); err != nil { // Docker's last write before it reopens
		t.Fatal(err)
	}
	_, wantC := writeLines(t, path, "c", 0, 100)
	h.waitEvents(300)
	time.Sleep(100 * time.Millisecond) // let duplicates, if any, arrive
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(append(wantA, wantB...), wantC...))
	if n := h.counter("sluice_input_rotations_total"); n != 1 {
		t.Fatalf("rotations %d", n)
	}
	st, _ := os.Stat(path)
	if off, ok := h.offsetOf(path); !ok || off != st.Size() {
		t.Fatalf("saved offset %d, want %d", off, st.Size())
	}
}

// TestRotateLateWritesBeforeReopen: the runtime keeps writing to the
// renamed file, a line in two writes, while the new file does not exist
// yet (the kubelet renamed it, containerd has not reopened): the late
// lines, the split one whole, are read from the renamed file, and the new
// file only after them. Nothing is cut at the renamed file's end while its
// successor is empty.
func TestRotateLateWritesBeforeReopen(t *testing.T) {
	h := newHarness(t)
	path, w, wantA := runtimeWriter(t, h, 50)
	cfg := h.cfg()
	cfg.RotateWait = time.Minute // only the successor's data may seal it
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(50)
	must(t, os.Rename(path, path+".1"))
	time.Sleep(100 * time.Millisecond) // the scan sees the rename
	if _, err := w.WriteString("late-0 first half"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // read: the half line must wait
	if _, err := w.WriteString(" second half\nlate-1\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	must(t, os.WriteFile(path, nil, 0o640)) // reopened: empty at first
	time.Sleep(100 * time.Millisecond)
	_, wantC := writeLines(t, path, "c", 0, 20)
	h.waitEvents(72)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	want := append(append(wantA, "late-0 first half second half", "late-1"), wantC...)
	tailtest.EqualStrings(t, h.q.Logs(), want)
}

// TestRotateWaitSealsWithoutSuccessor: a renamed file whose successor never
// comes is finished RotateWait after its last data, its last line (no
// "\n") emitted then and not before.
func TestRotateWaitSealsWithoutSuccessor(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	_, wantA := writeLines(t, path, "a", 0, 10)
	cfg := h.cfg()
	cfg.RotateWait = 600 * time.Millisecond
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(10)
	must(t, os.Rename(path, path+".1"))
	tailtest.AppendFile(t, path+".1", "tail without newline")
	time.Sleep(300 * time.Millisecond)
	if n := len(h.q.Logs()); n != 10 {
		t.Fatalf("%d events before the wait is over, want 10: the unfinished line was cut", n)
	}
	h.waitEvents(11)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(wantA, "tail without newline"))
}

// TestCopytruncateWhileRunning: the reader is held inside Flush while the
// file is copied and truncated; the unread lines are read from the copy,
// then the truncated file from 0.
func TestCopytruncateWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	stop, release, want := h.startHeld(path, 20)
	copyFile(t, path, path+".1")
	must(t, os.Truncate(path, 0))
	_, wantC := writeLines(t, path, "c-longer-lines-so-the-new-file-outgrows-the-old-offset-", 0, 60)
	release()
	h.waitEvents(120)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(want, wantC...))
}

// startHeld runs a tail over path, which holds n lines "a<i>", then holds
// the queue and appends n lines "b<i>" (read, then held in Flush) and n
// lines "b2-<i>" (not read yet). It returns the stop function, the release
// of the queue and the logs of the 3n lines.
func (h *harness) startHeld(path string, n int) (stop func() error, release func(), want []string) {
	h.t.Helper()
	_, wantA := writeLines(h.t, path, "a", 0, n)
	stop = tailtest.Start(h.t, h.tail(h.cfg()))
	h.waitEvents(n)
	release = h.q.Hold()
	_, wantB := writeLines(h.t, path, "b", 0, n)
	tailtest.WaitFor(h.t, "reader blocked", func() bool { return h.counter("sluice_input_lines_total") >= uint64(2*n) })
	_, wantB2 := writeLines(h.t, path, "b2-", 0, n)
	return stop, release, append(append(wantA, wantB...), wantB2...)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(to, data, 0o640))
}

func TestCopytruncateWhileStopped(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	writeLines(t, path, "a", 0, 20)
	stop := tailtest.Start(t, h.tail(h.cfg()))
	h.waitEvents(20)
	must(t, stop())
	_, wantB := writeLines(t, path, "b", 0, 20)
	copyFile(t, path, path+".1")
	must(t, os.Truncate(path, 0))
	_, wantC := writeLines(t, path, "c", 0, 5) // shorter than the old offset

	h2 := *h
	h2.q = &tailtest.Queue{}
	stop = tailtest.Start(t, h2.tail(h.cfg()))
	h2.waitEvents(25)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h2.q.Logs(), append(wantB, wantC...))
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
	_, wantA := writeLines(t, path, "a", 0, 10)
	in := h.tail(h.cfg())
	must(t, tailtest.Pump(t, in))
	old := inode(t, path)
	must(t, os.Remove(path))
	must(t, tailtest.Pump(t, in)) // finishes and closes the deleted file
	_, wantB := writeLines(t, path, "b", 0, 10)
	if got := inode(t, path); got != old {
		t.Logf("filesystem did not reuse the inode (%d vs %d); the restart test covers reuse", got, old)
	}
	must(t, tailtest.Pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), append(wantA, wantB...))
}

// TestInodeReuseAcrossRestart: a saved entry whose inode now belongs to a
// different file (other fingerprint) does not give that file its offset.
func TestInodeReuseAcrossRestart(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	_, wantB := writeLines(t, path, "b", 0, 10)
	fi, _ := os.Stat(path)
	dev, ino := fileID(fi)
	other := newFingerprint([]byte(tl("something else entirely\n", "stdout")))
	state := []savedFile{{
		ContainerID: idA, Path: path, Fingerprint: other.String(), FingerprintLen: other.n,
		Offset: fi.Size() - 10, Size: fi.Size() - 10, Dev: dev, Ino: ino, LastSeen: time.Now().Unix(),
	}}
	dir := filepath.Join(h.dataDir, "inputs", "tl")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, writeState(filepath.Join(dir, stateName), stateFile{Files: state}))
	in := h.tail(h.cfg())
	must(t, tailtest.Pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), wantB)
}

// TestDeleteWhileRunningReadsRest: Docker's max-file=1 rotation unlinks the
// file and creates a new one; lines not yet read are read through the open
// descriptor, before the new file.
func TestDeleteWhileRunningReadsRest(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	stop, release, want := h.startHeld(path, 10) // the "b2-" lines never seen through the path
	must(t, os.Remove(path))
	_, wantC := writeLines(t, path, "c", 0, 10)
	release()
	h.waitEvents(40)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(want, wantC...))
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != 0 {
		t.Fatalf("lost %d", n)
	}
}

// TestDeletedWithUnreadDataCounted: lines read but never accepted, then the
// file is deleted while the agent is stopped: the loss is counted.
func TestDeletedWithUnreadDataCounted(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	a, _ := writeLines(t, path, "a", 0, 10)
	h.q.SetFail(errors.New("down"), nil)
	stop := tailtest.Start(t, h.tail(h.cfg()))
	tailtest.WaitFor(t, "lines read", func() bool { return h.counter("sluice_input_lines_total") >= 10 })
	time.Sleep(50 * time.Millisecond)
	_ = stop()
	must(t, os.Remove(path))
	h.q.SetFail(nil, nil)
	h.set = metrics.NewSet() // count only what the restarted input sees
	in := h.tail(h.cfg())
	must(t, tailtest.Pump(t, in))
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != uint64(len(a)) {
		t.Fatalf("lost bytes %d, want %d", n, len(a))
	}
}

func TestForgetGoneEntries(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	writeLines(t, path, "a", 0, 3)
	in := h.tail(h.cfg())
	must(t, tailtest.Pump(t, in))
	must(t, os.RemoveAll(filepath.Join(h.root, idA)))
	must(t, tailtest.Pump(t, in))
	c := in.sources[idA]
	if c == nil || len(c.files) != 1 || c.files[0].f != nil {
		t.Fatal("entry should be kept (closed) for a while")
	}
	c.files[0].lastSeen = time.Now().Add(-2 * time.Hour)
	in.scan(time.Now())
	if len(in.sources) != 0 {
		t.Fatal("entry not forgotten after an hour")
	}
	must(t, in.checkpoint())
	if st := h.savedState(); len(st) != 0 {
		t.Fatalf("state still has %d entries", len(st))
	}
}

// runtimeWriter creates container idA's live log file and writes n lines
// "a<i>" through a descriptor held open, as a container runtime does (it
// keeps writing there after a rename until it reopens).
func runtimeWriter(t *testing.T, h *harness, n int) (path string, w *os.File, want []string) {
	t.Helper()
	path = h.container(idA, "/web")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	a, want := lines("a", 0, n)
	if _, err := w.WriteString(a); err != nil {
		t.Fatal(err)
	}
	return path, w, want
}

// raceLayout runs hook, once armed, inside Logs: after the scan listed
// the directory and before it stats the names, where a rotation can fall.
type raceLayout struct {
	testLayout
	hook *atomic.Pointer[func()]
}

func (l raceLayout) Logs(dst []Log, names []string) []Log {
	if f := l.hook.Swap(nil); f != nil {
		(*f)()
	}
	return l.testLayout.Logs(dst, names)
}

// TestRotateRacingTheListing: the kubelet renames the live file between
// the scan's listing and its stats (CI saw it: the listing held 0.log,
// the stat found nothing, the rename's new name was not listed). The file
// must not be taken for deleted and finished at once: a line half written
// through the old descriptor is read whole, then the new file.
func TestRotateRacingTheListing(t *testing.T) {
	h := newHarness(t)
	path, w, wantA := runtimeWriter(t, h, 50)
	cfg := h.cfg()
	cfg.RotateWait = time.Minute // only the successor's data may seal it
	var hook atomic.Pointer[func()]
	cfg.Layout = raceLayout{hook: &hook}
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(50)
	renamed := make(chan struct{})
	rename := func() {
		must(t, os.Rename(path, path+".1"))
		close(renamed)
	}
	hook.Store(&rename)
	<-renamed
	late := tl("late-0 first half second half\n", "stdout") + tl("late-1\n", "stdout")
	cut := len(t0) + 20 // inside the first line
	if _, err := w.WriteString(late[:cut]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several scans and reads: the half line must wait
	if n := len(h.q.Logs()); n != 50 {
		t.Fatalf("%d events, want 50: the renamed file was finished under a half-written line", n)
	}
	if _, err := w.WriteString(late[cut:]); err != nil {
		t.Fatal(err)
	}
	_, wantC := writeLines(t, path, "c", 0, 20) // reopened
	h.waitEvents(72)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(append(wantA, "late-0 first half second half", "late-1"), wantC...))
	if n := h.counter("sluice_input_parse_errors_total"); n != 0 {
		t.Fatalf("parse errors %d", n)
	}
}

// TestMovedOutOfViewWaits: a file renamed out of its directory (no scan
// will find it again) still has a name, so it is not deleted: it waits
// RotateWait for its writer before its end is taken for the end; a
// deleted file is finished at once (TestDeleteWhileRunningReadsRest).
func TestMovedOutOfViewWaits(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	_, wantA := writeLines(t, path, "a", 0, 10)
	cfg := h.cfg()
	cfg.RotateWait = 700 * time.Millisecond
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(10)
	away := filepath.Join(t.TempDir(), "moved.log")
	must(t, os.Rename(path, away))
	tailtest.AppendFile(t, away, "tail without newline")
	time.Sleep(350 * time.Millisecond)
	if n := len(h.q.Logs()); n != 10 {
		t.Fatalf("%d events before the wait is over, want 10: the moved file was finished at once", n)
	}
	h.waitEvents(11)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), append(wantA, "tail without newline"))
}

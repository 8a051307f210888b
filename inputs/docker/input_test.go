package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
)

const (
	idA = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
)

func TestRecordLayoutAndTag(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", map[string]string{"app": "shop", "tier": "front"})
	appendFile(t, path,
		`{"log":"hello \u003cworld\u003e\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`+"\n"+
			`{"stream":"stderr","time":"2024-01-02T03:04:06Z","log":"oops\n"}`+"\n")
	cfg := testCfg(h.root)
	cfg.Tag = "k.{name}.{stream}.{label:app}.{short_id}"
	stop := start(t, h.input(cfg))
	evs := h.waitEvents(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []event{
		{Tag: "k.web.stdout.shop.aaaaaaaaaaaa", Time: mustTime(t, "2024-01-02T03:04:05.123456789Z"), Record: map[string]any{
			"log": "hello <world>", "stream": "stdout", "container_id": idA, "container_name": "web",
			"labels": map[string]any{"app": "shop", "tier": "front"},
		}},
		{Tag: "k.web.stderr.shop.aaaaaaaaaaaa", Time: mustTime(t, "2024-01-02T03:04:06Z"), Record: map[string]any{
			"log": "oops", "stream": "stderr", "container_id": idA, "container_name": "web",
			"labels": map[string]any{"app": "shop", "tier": "front"},
		}},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("got  %+v\nwant %+v", evs, want)
	}
	if n := h.counter("sluice_input_lines_total"); n != 2 {
		t.Fatalf("lines_total %d", n)
	}
}

func TestParseJSONNoLabelsMissingConfig(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "", nil) // no config.v2.json
	appendFile(t, path, jl(`{"level":"info","n":3,"log":"inner","stream":"x"}`+"\n", "stdout")+jl("not json\n", "stdout"))
	cfg := testCfg(h.root)
	cfg.ParseJSON = true
	no := false
	cfg.IncludeLabels = &no
	cfg.Tag = "{name}.{field:level}"
	stop := start(t, h.input(cfg))
	evs := h.waitEvents(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want0 := map[string]any{
		"log": `{"level":"info","n":3,"log":"inner","stream":"x"}`, "stream": "stdout",
		"container_id": idA, "container_name": "aaaaaaaaaaaa", "level": "info", "n": int64(3),
	}
	if !reflect.DeepEqual(evs[0].Record, want0) || evs[0].Tag != "aaaaaaaaaaaa.info" {
		t.Fatalf("got %s %v", evs[0].Tag, evs[0].Record)
	}
	if len(evs[1].Record) != 4 || evs[1].Tag != "aaaaaaaaaaaa.unknown" {
		t.Fatalf("got %s %v", evs[1].Tag, evs[1].Record)
	}
}

func TestContainerConfigReloaded(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/old", nil)
	appendFile(t, path, jl("one\n", "stdout"))
	in := h.input(testCfg(h.root))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, filepath.Join(h.root, idA), "/new", map[string]string{"v": "2"})
	// Make sure the mtime differs even on coarse-timestamp filesystems.
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(h.root, idA, configFile), future, future); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, jl("two\n", "stdout"))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	evs := h.q.all()
	if len(evs) != 2 || evs[0].Tag != "docker.old" || evs[1].Tag != "docker.new" ||
		evs[1].Record["container_name"] != "new" || !reflect.DeepEqual(evs[1].Record["labels"], map[string]any{"v": "2"}) {
		t.Fatalf("got %+v", evs)
	}
}

func TestMalformedLinesEmittedRaw(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	bad := []string{`garbage`, `{"log":"x\q","stream":"stdout"}`, `{"log":"unterminated`}
	appendFile(t, path, jl("ok1\n", "stdout")+bad[0]+"\n"+bad[1]+"\n\n"+jl("ok2\n", "stdout")+bad[2]+"\n"+jl("ok3\n", "stdout"))
	in := h.input(testCfg(h.root))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), []string{"ok1", bad[0], bad[1], "ok2", bad[2], "ok3"})
	if evs := h.q.all(); evs[1].Record["stream"] != "" || evs[1].Time == 0 {
		t.Fatalf("malformed record %+v", evs[1])
	}
	if n := h.counter("sluice_input_parse_errors_total"); n != 3 {
		t.Fatalf("parse errors %d", n)
	}
}

func TestPartialJoinPerStream(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	exact := strings.Repeat("E", 16384)
	appendFile(t, path,
		jl("out-1 ", "stdout")+jl("err-1 ", "stderr")+jl("out-2 ", "stdout")+
			jl("err-2\n", "stderr")+jl("out-3\n", "stdout")+
			jl(exact, "stdout")+jl("\n", "stdout")+ // exactly 16 KiB: empty final chunk
			jl("done\n", "stdout"))
	in := h.input(testCfg(h.root))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	evs := h.q.all()
	got := make([]string, len(evs))
	for i, e := range evs {
		got[i] = e.Record["stream"].(string) + ":" + e.log()
	}
	equalStrings(t, got, []string{"stderr:err-1 err-2", "stdout:out-1 out-2 out-3", "stdout:" + exact, "stdout:done"})
	if n := h.counter("sluice_input_partial_joins_total"); n != 3 {
		t.Fatalf("joins %d", n)
	}
	// Nothing pending: the committed offset is the end of the file.
	st, _ := os.Stat(path)
	if f := in.containers[idA].files[0]; f.commit != st.Size() {
		t.Fatalf("commit %d, size %d", f.commit, st.Size())
	}
}

func TestPartialHoldsOffsetAndDanglingFlush(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	head := jl("first\n", "stdout")
	appendFile(t, path, head+jl("dangling-", "stdout")+jl("other\n", "stderr"))
	cfg := testCfg(h.root)
	cfg.PartialFlushTimeout = 500 * time.Millisecond
	in := h.input(cfg)
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), []string{"first", "other"})
	f := in.containers[idA].files[0]
	if f.commit != int64(len(head)) {
		t.Fatalf("commit %d, want %d (start of the pending partial)", f.commit, len(head))
	}
	// Not yet expired.
	if err := in.expirePartials(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.q.all()) != 2 {
		t.Fatal("partial emitted before its timeout")
	}
	time.Sleep(600 * time.Millisecond)
	if err := in.expirePartials(context.Background()); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), []string{"first", "other", "dangling-"})
	if st, _ := os.Stat(path); f.commit != st.Size() {
		t.Fatalf("commit %d after flush, size %d", f.commit, st.Size())
	}
}

func TestDanglingPartialWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	appendFile(t, path, jl("tail-without-newline", "stdout"))
	stop := start(t, h.input(testCfg(h.root)))
	evs := h.waitEvents(1)
	if evs[0].log() != "tail-without-newline" {
		t.Fatalf("got %q", evs[0].log())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTruncateJoinedLine: a 5 MiB line in 16 KiB chunks with a 1 MiB limit
// becomes one 1 MiB record; the join buffer never exceeds the limit.
func TestTruncateJoinedLine(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	cfg := testCfg(h.root)
	cfg.MaxLineBytes = 1 << 20
	in := h.input(cfg)
	chunk := strings.Repeat("z", 16384)
	var sb strings.Builder
	for range 320 { // 5 MiB
		sb.WriteString(jl(chunk, "stdout"))
	}
	appendFile(t, path, sb.String())
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	f := in.containers[idA].files[0]
	p := f.partialFor([]byte("stdout"))
	if p == nil || len(p.buf) != 1<<20 || cap(p.buf) > 2<<20 || !p.truncated {
		t.Fatalf("pending group: %v", p != nil)
	}
	if len(in.buf) != readBufSize {
		t.Fatal("read buffer resized")
	}
	appendFile(t, path, jl("end\n", "stdout")+jl("next\n", "stdout"))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	logs := h.q.logs()
	if len(logs) != 2 || len(logs[0]) != 1<<20 || logs[0] != strings.Repeat("z", 1<<20) || logs[1] != "next" {
		t.Fatalf("got %d events, first %d bytes", len(logs), len(logs[0]))
	}
	if n := h.counter("sluice_input_truncated_lines_total"); n != 1 {
		t.Fatalf("truncated %d", n)
	}
	if cap(p.buf) > keepBufCap {
		t.Fatal("join buffer kept after use")
	}
}

// TestTruncatePhysicalLine: one 5 MiB physical line (longer than the read
// buffer) is parsed as a stream; "stream" and "time" after "log" are still
// found; the line is never held whole.
func TestTruncatePhysicalLine(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	cfg := testCfg(h.root)
	cfg.MaxLineBytes = 1 << 20
	in := h.input(cfg)
	in.buf = make([]byte, 64<<10)
	const total = 5 << 20
	body := strings.Repeat("0123456789\\u00e9", total/16) // escaped: é is 2 bytes
	appendFile(t, path, jl("before\n", "stdout")+`{"log":"`+body[:len(body)/2])
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	f := in.containers[idA].files[0]
	if !f.inLong || cap(f.long.log) > 2<<20 || cap(f.long.raw) > 2<<20 || len(in.buf) != 64<<10 {
		t.Fatalf("inLong %v, caps %d %d", f.inLong, cap(f.long.log), cap(f.long.raw))
	}
	if f.commit != int64(len(jl("before\n", "stdout"))) {
		t.Fatalf("commit %d passed the start of the unfinished line", f.commit)
	}
	appendFile(t, path, body[len(body)/2:]+`\n","stream":"stderr","time":"2024-05-06T07:08:09Z"}`+"\n"+jl("after\n", "stdout"))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	evs := h.q.all()
	if len(evs) != 3 {
		t.Fatalf("%d events", len(evs))
	}
	long := evs[1]
	if len(long.log()) > 1<<20 || len(long.log()) < 1<<20-1 || !strings.HasPrefix(long.log(), "0123456789é0123") ||
		long.Record["stream"] != "stderr" || long.Time != mustTime(t, "2024-05-06T07:08:09Z") || evs[2].log() != "after" {
		t.Fatalf("long line: %d bytes, stream %v, time %d", len(long.log()), long.Record["stream"], long.Time)
	}
	if n := h.counter("sluice_input_truncated_lines_total"); n != 1 {
		t.Fatalf("truncated %d", n)
	}
	if st, _ := os.Stat(path); f.commit != st.Size() {
		t.Fatalf("commit %d, size %d", f.commit, st.Size())
	}
}

// TestMalformedLongLine: an unparsable line longer than the buffer is
// emitted raw, cut to MaxLineBytes.
func TestMalformedLongLine(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	cfg := testCfg(h.root)
	cfg.MaxLineBytes = 100 << 10
	in := h.input(cfg)
	in.buf = make([]byte, 32<<10)
	appendFile(t, path, strings.Repeat("x", 300<<10)+"\n"+jl("ok\n", "stdout"))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	logs := h.q.logs()
	if len(logs) != 2 || logs[0] != strings.Repeat("x", 100<<10) || logs[1] != "ok" {
		t.Fatalf("got %d events", len(logs))
	}
	if h.counter("sluice_input_parse_errors_total") != 1 || h.counter("sluice_input_truncated_lines_total") != 1 {
		t.Fatal("counters")
	}
}

func TestNewContainerWhileRunning(t *testing.T) {
	h := newHarness(t)
	pa := h.container(idA, "/a", nil)
	data, want := lines("a", 0, 50)
	appendFile(t, pa, data)
	stop := start(t, h.input(testCfg(h.root)))
	h.waitEvents(50)
	pb := h.container(idB, "/b", nil)
	data, wantB := lines("b", 0, 50)
	appendFile(t, pb, data)
	data, wantA2 := lines("a", 50, 10)
	appendFile(t, pa, data)
	h.waitEvents(110)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byTag := map[string][]string{}
	for _, e := range h.q.all() {
		byTag[e.Tag] = append(byTag[e.Tag], e.log())
	}
	equalStrings(t, byTag["docker.a"], append(want, wantA2...))
	equalStrings(t, byTag["docker.b"], wantB)
	if g := h.set.GetOrCreateGauge(`sluice_input_files_tracked{input="dk"}`, nil).Get(); g != 0 {
		t.Fatalf("files tracked after stop: %v", g)
	}
}

// TestRotateRenameWhileRunning: lines written through the old descriptor
// after the rename are read before the new file.
func TestRotateRenameWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a, wantA := lines("a", 0, 100)
	if _, err := w.WriteString(a); err != nil {
		t.Fatal(err)
	}
	stop := start(t, h.input(testCfg(h.root)))
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

// TestRotateWhileStopped: stop, rotate twice (live→.1→.2), append to every
// file, restart: nothing missing, nothing repeated, oldest file first.
func TestRotateWhileStopped(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, wantA := lines("a", 0, 30)
	appendFile(t, path, a)
	stop := start(t, h.input(testCfg(h.root)))
	h.waitEvents(30)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, wantB := lines("b", 0, 30)
	appendFile(t, path, b) // written after the last checkpoint
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	c, wantC := lines("c", 0, 30)
	appendFile(t, path+".1", c)
	d, wantD := lines("d", 0, 30)
	appendFile(t, path, d)

	h2 := *h
	h2.q = &fakeQueue{}
	stop = start(t, h2.input(testCfg(h.root)))
	h2.waitEvents(90)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h2.q.logs(), append(append(wantB, wantC...), wantD...))
	_ = wantA
}

// TestCopytruncateWhileRunning: the reader is held inside Flush while the
// file is copied and truncated; the unread lines are read from the copy,
// then the truncated file from 0.
func TestCopytruncateWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, wantA := lines("a", 0, 20)
	appendFile(t, path, a)
	stop := start(t, h.input(testCfg(h.root)))
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
	path := h.container(idA, "/web", nil)
	a, _ := lines("a", 0, 20)
	appendFile(t, path, a)
	stop := start(t, h.input(testCfg(h.root)))
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
	stop = start(t, h2.input(testCfg(h.root)))
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
	path := h.container(idA, "/web", nil)
	a, wantA := lines("a", 0, 10)
	appendFile(t, path, a)
	in := h.input(testCfg(h.root))
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
	path := h.container(idA, "/web", nil)
	b, wantB := lines("b", 0, 10)
	appendFile(t, path, b)
	fi, _ := os.Stat(path)
	dev, ino := fileID(fi)
	other := newFingerprint([]byte(jl("something else entirely\n", "stdout")))
	state := []savedFile{{
		ContainerID: idA, Path: path, Fingerprint: other.String(), FingerprintLen: other.n,
		Offset: fi.Size() - 10, Size: fi.Size() - 10, Dev: dev, Ino: ino, LastSeen: time.Now().Unix(),
	}}
	dir := filepath.Join(h.dataDir, "inputs", "dk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeState(filepath.Join(dir, stateName), state); err != nil {
		t.Fatal(err)
	}
	in := h.input(testCfg(h.root))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), wantB)
}

// TestCheckpointNeverAhead: while the queue refuses chunks, or accepts
// them but cannot sync, the saved offset does not move; once it works,
// every line arrives exactly once.
func TestCheckpointNeverAhead(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, wantA := lines("a", 0, 10)
	appendFile(t, path, a)
	stop := start(t, h.input(testCfg(h.root)))
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
	path := h.container(idA, "/web", nil)
	a, want := lines("a", 0, 25)
	appendFile(t, path, a)
	cfg := testCfg(h.root)
	cfg.CheckpointInterval = time.Hour
	stop := start(t, h.input(cfg))
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
	stop = start(t, h.input(cfg))
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
	path := h.container(idA, "/web", nil)
	h.q.gate = make(chan struct{}) // never opened
	a, _ := lines("a", 0, 5)
	appendFile(t, path, a)
	in := h.input(testCfg(h.root))
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

// TestDeletedWithUnreadDataCounted: lines read but never accepted, then the
// file is deleted while the agent is stopped: the loss is counted.
func TestDeletedWithUnreadDataCounted(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, _ := lines("a", 0, 10)
	appendFile(t, path, a)
	h.q.setFail(errors.New("down"), nil)
	stop := start(t, h.input(testCfg(h.root)))
	waitFor(t, "lines read", func() bool { return h.counter("sluice_input_lines_total") >= 10 })
	time.Sleep(50 * time.Millisecond)
	_ = stop()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.q.setFail(nil, nil)
	h.set = metrics.NewSet() // count only what the restarted input sees
	in := h.input(testCfg(h.root))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	if n := h.counter("sluice_input_files_lost_bytes_total"); n != uint64(len(a)) {
		t.Fatalf("lost bytes %d, want %d", n, len(a))
	}
}

func TestForgetGoneEntries(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, _ := lines("a", 0, 3)
	appendFile(t, path, a)
	in := h.input(testCfg(h.root))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(h.root, idA)); err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	c := in.containers[idA]
	if c == nil || len(c.files) != 1 || c.files[0].f != nil {
		t.Fatal("entry should be kept (closed) for a while")
	}
	c.files[0].lastSeen = time.Now().Add(-2 * time.Hour)
	in.scan(time.Now())
	if len(in.containers) != 0 {
		t.Fatal("entry not forgotten after an hour")
	}
	if err := in.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if st := h.savedState(); len(st) != 0 {
		t.Fatalf("state still has %d entries", len(st))
	}
}

func TestReadFromHeadFalse(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	old, _ := lines("old", 0, 5)
	appendFile(t, path, old)
	cfg := testCfg(h.root)
	no := false
	cfg.ReadFromHead = &no
	in := h.input(cfg)
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	n, want := lines("new", 0, 3)
	appendFile(t, path, n)
	pb := h.container(idB, "/b", nil) // appears later: read from the start
	nb, wantB := lines("b", 0, 2)
	appendFile(t, pb, nb)
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), append(want, wantB...))
}

func TestCorruptStateMovedAside(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, want := lines("a", 0, 3)
	appendFile(t, path, a)
	dir := filepath.Join(h.dataDir, "inputs", "dk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testCfg(h.root)
	no := false
	cfg.ReadFromHead = &no // must not apply: state existed
	in := h.input(cfg)
	if _, err := os.Stat(filepath.Join(dir, stateName+".bad")); err != nil {
		t.Fatal(err)
	}
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, h.q.logs(), want)
}

func TestNewErrors(t *testing.T) {
	h := newHarness(t)
	r := newRouter(t, h.q)
	tests := map[string]struct {
		id, dataDir string
		cfg         config.DockerInput
	}{
		"empty id":     {"", h.dataDir, config.DockerInput{}},
		"no data dir":  {"x", "", config.DockerInput{}},
		"bad template": {"x", h.dataDir, config.DockerInput{Tag: "{bogus}"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.id, tc.cfg, tc.dataDir, r, nil, nil); err == nil {
				t.Fatal("no error")
			}
		})
	}
	in, err := New("x", config.DockerInput{Root: h.root}, h.dataDir, r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := in.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.Run(ctx); !errors.Is(err, ErrRunTwice) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestStateWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, stateName)
	files := []savedFile{{ContainerID: "c", Path: "/p", Fingerprint: strings.Repeat("ab", 32), FingerprintLen: 10, Offset: 5}}
	if err := writeState(path, files); err != nil {
		t.Fatal(err)
	}
	got, existed, err := loadState(path)
	if err != nil || !existed || !reflect.DeepEqual(got, files) {
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
	if err := writeState(path, nil); err == nil {
		t.Fatal("no error")
	}
	if got, _, _ := loadState(path); !reflect.DeepEqual(got, files) {
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

func TestLogRank(t *testing.T) {
	for name, want := range map[string]int{"x-json.log": 0, "x-json.log.1": 1, "x-json.log.12": 12} {
		if r, ok := logRank(name); !ok || r != want {
			t.Errorf("%s: %d %v", name, r, ok)
		}
	}
	for _, name := range []string{"x-json.log.1.gz", "x-json.log.gz", "-json.log", "x-json.log.0", "x-json.log.01", "config.v2.json", "x-json.log.a"} {
		if _, ok := logRank(name); ok {
			t.Errorf("%s accepted", name)
		}
	}
}

// TestManyContainersRoundRobin: one turn per container per round, at most
// turnBytes each, so a busy container does not starve the others; one fd
// per live file.
func TestManyContainersRoundRobin(t *testing.T) {
	h := newHarness(t)
	big, _ := lines("busy-", 0, 8000) // ~550 KB: several turns
	appendFile(t, h.container(idA, "/busy", nil), big)
	for i := range 20 {
		data, _ := lines(fmt.Sprintf("c%d-", i), 0, 5)
		appendFile(t, h.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/c%d", i), nil), data)
	}
	in := h.input(testCfg(h.root))
	in.w = in.r.NewWriter()
	in.scan(time.Now())
	if in.openFiles != 21 {
		t.Fatalf("%d open files", in.openFiles)
	}
	// One round: every container gets a turn.
	for _, c := range in.order {
		if _, err := in.turn(context.Background(), c.active()); err != nil {
			t.Fatal(err)
		}
	}
	busy := 0
	for _, e := range h.q.all() {
		if e.Tag == "docker.busy" {
			busy++
		}
	}
	if got := len(h.q.all()) - busy; got != 20*5 || busy == 0 || busy >= 8000 {
		t.Fatalf("after one round: %d busy events, %d others", busy, got)
	}
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	if len(h.q.all()) != 8000+100 {
		t.Fatalf("%d events", len(h.q.all()))
	}
}

// TestDeleteWhileRunningReadsRest: Docker's max-file=1 rotation unlinks the
// file and creates a new one; lines not yet read are read through the open
// descriptor, before the new file.
func TestDeleteWhileRunningReadsRest(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, wantA := lines("a", 0, 10)
	appendFile(t, path, a)
	stop := start(t, h.input(testCfg(h.root)))
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

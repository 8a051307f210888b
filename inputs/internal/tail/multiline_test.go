package tail

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
	"github.com/sluice-agent/sluice/internal/multiline"
)

// The multiline tests feed real traces (internal/multiline/testdata: the
// programs' own output) through the test format, one program per stream,
// and compare each stream's events with the multiline package's golden
// files: joining inside the tail gives what the Joiner gives alone.

const mlTestdata = "../../../internal/multiline/testdata"

// sample returns the lines of a testdata .log file and the texts of the
// events of its .golden file.
func sample(t testing.TB, log, golden string) (lines, want []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mlTestdata, log))
	must(t, err)
	lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	g, err := os.ReadFile(filepath.Join(mlTestdata, golden))
	must(t, err)
	sc := bufio.NewScanner(bytes.NewReader(g))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct{ Text string }
		must(t, json.Unmarshal(sc.Bytes(), &e))
		want = append(want, e.Text)
	}
	return lines, want
}

// mlTime is the time of the n-th line written by mlWriter.
func mlTime(n int) time.Time {
	return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(n) * time.Millisecond)
}

// mlWriter encodes lines in the test format, each with a time of its own
// (mlTime of its number), every split-th content as three partial pieces
// (P, P, F) of the same time.
type mlWriter struct {
	n     int
	split int
	b     strings.Builder
}

func (w *mlWriter) line(stream, content string) {
	w.n++
	ts := mlTime(w.n).Format(time.RFC3339Nano)
	if w.split > 0 && w.n%w.split == 0 && len(content) >= 3 {
		k := len(content) / 3
		w.b.WriteString(ts + " " + stream + " P " + content[:k] + "\n")
		w.b.WriteString(ts + " " + stream + " P " + content[k:2*k] + "\n")
		w.b.WriteString(ts + " " + stream + " F " + content[2*k:] + "\n")
		return
	}
	w.b.WriteString(ts + " " + stream + " F " + content + "\n")
}

// interleave writes a's lines on stdout and b's on stderr, alternately.
func (w *mlWriter) interleave(a, b []string) {
	for i := 0; i < max(len(a), len(b)); i++ {
		if i < len(a) {
			w.line("stdout", a[i])
		}
		if i < len(b) {
			w.line("stderr", b[i])
		}
	}
}

func (w *mlWriter) take() string {
	s := w.b.String()
	w.b.Reset()
	return s
}

func (h *harness) mlCfg(rules ...string) Config {
	cfg := h.cfg()
	cfg.Multiline = &multiline.Config{Rules: rules, FlushTimeout: time.Hour}
	return cfg
}

func byStream(h *harness) map[string][]string {
	return h.q.LogsBy(func(e tailtest.Event) string { return e.Record["stream"].(string) })
}

// TestMultilineInterleaved: a Java program's traces on stdout, a Python
// program's on stderr, interleaved line by line, every 5th line written
// in partial pieces (some inside traces): each stream's events are those
// of the golden files, each with its first line's time; the committed
// offset waits at the start of the group still open; the metrics count
// the groups.
func TestMultilineInterleaved(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	java, wantJava := sample(t, "java/shop.log", "java/shop.golden")
	py, wantPy := sample(t, "python/app.log", "python/app.golden")
	w := &mlWriter{split: 5}
	w.interleave(java, py)
	w.line("stderr", "py-done") // python's last trace ends
	wantPy = append(wantPy, "py-done")
	// A trace left open on stdout: it waits for its next line.
	held := int64(w.b.Len()) // the header's offset
	w.line("stdout", "java.lang.IllegalStateException: still open")
	w.line("stdout", "\tat Shop.main(Shop.java:1)")
	tailtest.AppendFile(t, path, w.take())
	in := h.tail(h.mlCfg("java", "python"))
	must(t, tailtest.Pump(t, in))

	got := byStream(h)
	tailtest.EqualStrings(t, got["stdout"], wantJava)
	tailtest.EqualStrings(t, got["stderr"], wantPy)
	f := in.sources[idA].files[0]
	if f.commit != held {
		t.Fatalf("commit %d, want %d: the start of the open group", f.commit, held)
	}
	if in.mlHeld != 1 {
		t.Fatalf("mlHeld %d", in.mlHeld)
	}
	// Each event has its first line's time: the first line of the
	// shop.log trace is stdout's 4th line, written 7th.
	for _, e := range h.q.All() {
		if strings.HasPrefix(e.Log(), "java.lang.IllegalArgumentException: checkout rejected\n") {
			if want := mlTime(7).UnixNano(); e.Time != want {
				t.Fatalf("group time %d, want %d", e.Time, want)
			}
		}
	}
	if n := h.counter("sluice_input_multiline_groups_total"); n != 5+4 {
		t.Fatalf("groups %d", n)
	}
	if n := h.counter("sluice_input_partial_joins_total"); n == 0 {
		t.Fatal("no partial pieces joined")
	}
	// The next line ends the group.
	tailtest.AppendFile(t, path, mlTime(999).Format(time.RFC3339Nano)+" stdout F done\n")
	must(t, tailtest.Pump(t, in))
	got = byStream(h)
	tailtest.EqualStrings(t, got["stdout"][len(wantJava):], []string{
		"java.lang.IllegalStateException: still open\n\tat Shop.main(Shop.java:1)", "done"})
	if st, _ := os.Stat(path); f.commit != st.Size() || in.mlHeld != 0 {
		t.Fatalf("commit %d, size %d, held %d", f.commit, st.Size(), in.mlHeld)
	}
}

// TestMultilineFlushTimeout: a trace with no line after it is emitted
// FlushTimeout after its last line by the running reader, and counted;
// then its offset is committed.
func TestMultilineFlushTimeout(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	cfg := h.mlCfg("go")
	cfg.Multiline.FlushTimeout = 300 * time.Millisecond
	lines, want := sample(t, "go/deadlock.log", "go/deadlock.golden")
	w := &mlWriter{}
	for _, l := range lines[:len(lines)-1] { // the trace last
		w.line("stderr", l)
	}
	tailtest.AppendFile(t, path, w.take())
	start := time.Now()
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(len(want) - 1)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("group emitted after %v, before its timeout", d)
	}
	tailtest.EqualStrings(t, h.q.Logs(), want[:len(want)-1])
	if n := h.counter("sluice_input_multiline_timeouts_total"); n != 1 {
		t.Fatalf("timeouts %d", n)
	}
	st, _ := os.Stat(path)
	tailtest.WaitFor(t, "offset committed", func() bool { off, ok := h.offsetOf(path); return ok && off == st.Size() })
	must(t, stop())
}

// TestMultilineRestart: stopped with a group open on stdout while
// stderr lines after its start were handed off, the tail commits the
// group's start and what stderr handed off past it; restarted, it reads
// the group again, completes it with the lines written meanwhile, and
// emits nothing twice.
func TestMultilineRestart(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	java, wantJava := sample(t, "java/shop.log", "java/shop.golden")
	js, wantJS := sample(t, "javascript/app.log", "javascript/app.golden")
	// Stop inside shop.log's first trace (its lines 4 to 14), 8 lines in.
	w := &mlWriter{split: 4}
	w.interleave(java[:11], js[:20])
	tailtest.AppendFile(t, path, w.take())
	stop := tailtest.Start(t, h.tail(h.mlCfg("java", "javascript")))
	h.waitEvents(3) // stdout's 3 lines before the trace
	tailtest.WaitFor(t, "stderr read", func() bool { return len(byStream(h)["stderr"]) > 0 })
	time.Sleep(200 * time.Millisecond)
	must(t, stop())
	first := h.q.Logs()
	tailtest.EqualStrings(t, byStream(h)["stdout"], wantJava[:3])
	var saved savedFile
	for _, s := range h.savedState() {
		if s.Path == path {
			saved = s
		}
	}
	if saved.Read <= saved.Offset || saved.Streams == nil {
		t.Fatalf("saved entry %+v: no record of the stderr lines handed off", saved)
	}
	if len(first) == 3 {
		t.Fatal("no stderr line was handed off past the open group")
	}

	w.interleave(java[11:], js[20:])
	tailtest.AppendFile(t, path, w.take())
	in := h.tail(h.mlCfg("java", "javascript"))
	stop = tailtest.Start(t, in)
	h.waitEvents(len(wantJava) + len(wantJS))
	time.Sleep(200 * time.Millisecond)
	must(t, stop())
	got := byStream(h)
	tailtest.EqualStrings(t, got["stdout"], wantJava)
	tailtest.EqualStrings(t, got["stderr"], wantJS)
	st, _ := os.Stat(path)
	if off, ok := h.offsetOf(path); !ok || off != st.Size() {
		t.Fatalf("saved offset %d, want %d", off, st.Size())
	}
}

// TestMultilineRotation: a trace cut by a rotation is emitted in two
// groups, the first at the rotated file's end (once it is sealed), the
// second from the new file; every line once.
func TestMultilineRotation(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	java, _ := sample(t, "java/shop.log", "java/shop.golden")
	w := &mlWriter{}
	for _, l := range java[:8] { // the trace's first 5 lines
		w.line("stdout", l)
	}
	w.line("stderr", "err-1")
	tailtest.AppendFile(t, path, w.take())
	in := h.tail(h.mlCfg("java"))
	must(t, tailtest.Pump(t, in))
	if n := len(h.q.All()); n != 4 {
		t.Fatalf("%d events before the rotation", n)
	}
	must(t, os.Rename(path, path+".1"))
	for _, l := range java[8:15] {
		w.line("stdout", l)
	}
	tailtest.AppendFile(t, path, w.take())
	must(t, tailtest.Pump(t, in))
	got := byStream(h)
	tailtest.EqualStrings(t, got["stdout"], []string{
		java[0], java[1], java[2], strings.Join(java[3:8], "\n"), strings.Join(java[8:14], "\n"), java[14]})
	tailtest.EqualStrings(t, got["stderr"], []string{"err-1"})
	if n := h.counter("sluice_input_multiline_groups_total"); n != 2 {
		t.Fatalf("groups %d", n)
	}
	for _, f := range in.sources[idA].files {
		if f.f == nil && len(f.joiners) > 0 {
			t.Fatal("a finished file keeps its joiners")
		}
	}
}

// TestMultilineMaxBytes: MaxBytes defaults to MaxLineBytes when smaller;
// a group past it is emitted cut, once, and counted.
func TestMultilineMaxBytes(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	cfg := h.mlCfg("java")
	cfg.MaxLineBytes = 1000
	lines, _ := sample(t, "java/overflow.log", "java/overflow.golden")
	w := &mlWriter{split: 3}
	for _, l := range lines {
		w.line("stdout", l)
	}
	w.line("stdout", "after")
	tailtest.AppendFile(t, path, w.take())
	in := h.tail(cfg)
	if in.ml.MaxBytes != 1000 {
		t.Fatalf("max bytes %d", in.ml.MaxBytes)
	}
	must(t, tailtest.Pump(t, in))
	logs := h.q.Logs()
	if len(logs) != 5 || len(logs[2]) > 1000 || len(logs[2]) < 900 || !strings.HasPrefix(logs[2], lines[2]+"\n\tat ") ||
		logs[3] != lines[len(lines)-1] || logs[4] != "after" {
		t.Fatalf("%d events: %q", len(logs), tailtest.Clip(logs))
	}
	if n := h.counter("sluice_input_multiline_truncated_total"); n != 1 {
		t.Fatalf("truncated %d", n)
	}
}

// TestMultilineSkipAfterPartialRestart: the saved bounds also serve
// pending partial groups without multiline: stderr lines read after a
// dangling stdout partial are not emitted again after a restart.
func TestMultilineSkipAfterPartialRestart(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	cfg := h.cfg()
	cfg.PartialFlushTimeout = time.Hour
	tailtest.AppendFile(t, path, tl("one\n", "stdout")+tl("dangling-", "stdout")+tl("e1\n", "stderr")+tl("e2\n", "stderr"))
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(3)
	must(t, stop())
	tailtest.AppendFile(t, path, tl("end\n", "stdout")+tl("e3\n", "stderr"))
	stop = tailtest.Start(t, h.tail(cfg))
	h.waitEvents(5)
	time.Sleep(200 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, h.q.Logs(), []string{"one", "e1", "e2", "dangling-end", "e3"})
	st, _ := os.Stat(path)
	if off, ok := h.offsetOf(path); !ok || off != st.Size() {
		t.Fatalf("saved offset %d, want %d", off, st.Size())
	}
	for _, s := range h.savedState() {
		if s.Read != 0 || s.Streams != nil {
			t.Fatalf("bounds kept with nothing held: %+v", s)
		}
	}
}

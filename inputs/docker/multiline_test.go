package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// Multiline through the whole input: real traces from
// internal/multiline/testdata (a Java program on stdout, a Go program on
// stderr, interleaved), one frame longer than Docker's 16 KiB chunks,
// the agent stopped with both streams inside a trace, the log rotated in
// the middle of the Java trace while stopped, and a last trace left to
// the flush timeout. Each stream gets the golden events, apart from the
// Java trace the rotation cut in two; every line exactly once.

const mlTestdata = "../../internal/multiline/testdata"

func mlSample(t testing.TB, name string) (lines, want []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mlTestdata, name+".log"))
	must(t, err)
	lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	g, err := os.ReadFile(filepath.Join(mlTestdata, name+".golden"))
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

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mlTime(n int) time.Time {
	return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(n) * time.Millisecond)
}

// dockerWriter writes json-file lines, each with its own time (mlTime of
// its number), a content over 16 KiB in Docker's chunks (a "log" without
// "\n" for all but the last).
type dockerWriter struct {
	n int
	b strings.Builder
}

func (w *dockerWriter) line(stream, content string) {
	w.n++
	ts := mlTime(w.n).Format(time.RFC3339Nano)
	for len(content) > 16384 {
		w.enc(content[:16384], stream, ts)
		content = content[16384:]
	}
	w.enc(content+"\n", stream, ts)
}

func (w *dockerWriter) enc(log, stream, ts string) {
	b, err := json.Marshal(map[string]string{"log": log, "stream": stream, "time": ts})
	if err != nil {
		panic(err)
	}
	w.b.Write(b)
	w.b.WriteByte('\n')
}

func (w *dockerWriter) interleave(out, errs []string) {
	for i := 0; i < max(len(out), len(errs)); i++ {
		if i < len(out) {
			w.line("stdout", out[i])
		}
		if i < len(errs) {
			w.line("stderr", errs[i])
		}
	}
}

func (w *dockerWriter) take() string {
	s := w.b.String()
	w.b.Reset()
	return s
}

func mlCfg(root string) config.DockerInput {
	cfg := testCfg(root)
	cfg.Multiline = &config.Multiline{Rules: []string{"java", "go"}, FlushTimeout: 1500 * time.Millisecond}
	return cfg
}

func byStream(q *tailtest.Queue) map[string][]string {
	return q.LogsBy(func(e tailtest.Event) string { return e.Record["stream"].(string) })
}

func TestMultilineRestartRotationTimeout(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/shop", nil)
	java, wantJava := mlSample(t, "java/shop")
	gol, wantGo := mlSample(t, "go/goroutines")
	// shop.log's line 6 ("\tat Shop.main(Shop.java:60)", in its first
	// trace) made 40 KiB long: three chunks.
	java[5] += " " + strings.Repeat("x", 40<<10)
	wantJava[3] = strings.Replace(wantJava[3], "(Shop.java:60)\n", "(Shop.java:60) "+strings.Repeat("x", 40<<10)+"\n", 1)

	// Run 1: stopped inside the Java trace (lines 4 to 14 of shop.log)
	// and the Go panic (lines 3 to 27 of goroutines.log).
	w := &dockerWriter{}
	w.interleave(java[:8], gol[:20])
	tailtest.AppendFile(t, path, w.take())
	stop := tailtest.Start(t, h.input(mlCfg(h.root)))
	h.waitEvents(5)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	tailtest.EqualStrings(t, byStream(h.q)["stdout"], wantJava[:3])
	tailtest.EqualStrings(t, byStream(h.q)["stderr"], wantGo[:2])

	// While stopped: the Go program ends, the Java trace goes on, the
	// log is rotated in the middle of the trace, the rest goes to the
	// new file.
	w.interleave(java[8:12], gol[20:])
	tailtest.AppendFile(t, path, w.take())
	must(t, os.Rename(path, path+".1"))
	for _, l := range java[12:] {
		w.line("stdout", l)
	}
	tailtest.AppendFile(t, path, w.take())

	// Run 2: the rotated file is read on from its committed offset,
	// skipping what run 1 handed off; its end (sealed: the new file has
	// data) flushes the Java group; the new file's frames are a group of
	// their own.
	set := metrics.NewSet()
	in, err := New("dk", mlCfg(h.root), h.dataDir, tailtest.NewRouter(t, h.q), tailtest.Logger(t), set)
	must(t, err)
	stop = tailtest.Start(t, in)
	wantOut := append(append(append([]string{}, wantJava[:3]...),
		strings.Join(java[3:12], "\n"), strings.Join(java[12:14], "\n")), wantJava[4:]...)
	h.waitEvents(len(wantOut) + len(wantGo))

	// A last trace, left to the flush timeout.
	w.line("stdout", "java.lang.IllegalStateException: late")
	w.line("stdout", "\tat Shop.main(Shop.java:99)")
	tailtest.AppendFile(t, path, w.take())
	h.waitEvents(len(wantOut) + len(wantGo) + 1)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	wantOut = append(wantOut, "java.lang.IllegalStateException: late\n\tat Shop.main(Shop.java:99)")

	got := byStream(h.q)
	tailtest.EqualStrings(t, got["stdout"], wantOut)
	tailtest.EqualStrings(t, got["stderr"], wantGo)
	for _, e := range h.q.All() {
		if strings.HasPrefix(e.Log(), "java.lang.IllegalArgumentException: checkout rejected\n") {
			// The group's time is its first line's: stdout's 4th, written
			// 7th; no trailing "\n" in "log".
			if e.Time != mlTime(7).UnixNano() || strings.HasSuffix(e.Log(), "\n") {
				t.Fatalf("group time %v, log ends %q", time.Unix(0, e.Time).UTC(), e.Log()[len(e.Log())-5:])
			}
		}
	}
	c := func(name string) uint64 { return set.GetOrCreateCounter(name + `{input="dk"}`).Get() }
	if n := c("sluice_input_partial_joins_total"); n != 1 {
		t.Fatalf("partial joins %d", n)
	}
	if n := c("sluice_input_multiline_timeouts_total"); n != 1 {
		t.Fatalf("timeouts %d", n)
	}
	// Run 2's groups: the two halves of the cut trace, shop.log's 4
	// others, goroutines.log's 2 (the one open at the stop read again
	// whole), the late one.
	if n := c("sluice_input_multiline_groups_total"); n != 2+4+2+1 {
		t.Fatalf("groups %d", n)
	}
	st, _ := os.Stat(path)
	if off, ok := h.offsetOf(path); !ok || off != st.Size() {
		t.Fatalf("saved offset %d, want %d", off, st.Size())
	}
}

// TestMultilineFinishedFile: a container's last trace is emitted when
// its rotated file is finished, without waiting for the flush timeout.
func TestMultilineFinishedFile(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/shop", nil)
	gol, wantGo := mlSample(t, "go/deadlock")
	w := &dockerWriter{}
	for _, l := range gol[:len(gol)-1] {
		w.line("stderr", l)
	}
	tailtest.AppendFile(t, path, w.take())
	cfg := mlCfg(h.root)
	cfg.Multiline.FlushTimeout = time.Hour
	in := h.input(cfg)
	must(t, pump(t, in))
	if n := len(h.q.All()); n != 2 {
		t.Fatalf("%d events before the rotation", n)
	}
	must(t, os.Rename(path, path+".1"))
	tailtest.AppendFile(t, path, jl("next\n", "stdout"))
	must(t, pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), append(wantGo[:len(wantGo)-1], "next"))
}

// BenchmarkReadParseAddMultiline is BenchmarkReadParseAdd/plain with
// every built-in multiline rule on and no line matching: what the
// joiners add per line (the bound: 0.2 µs).
func BenchmarkReadParseAddMultiline(b *testing.B) {
	h := newHarness(b)
	path := h.container(idA, "/web", map[string]string{"app": "shop"})
	line := string(benchLine(b, payload200)) + "\n"
	const n = 20000
	tailtest.AppendFile(b, path, strings.Repeat(line, n))
	cfg := testCfg(h.root)
	cfg.Multiline = &config.Multiline{Rules: []string{"java", "go", "python", "ruby", "javascript"}}
	set := metrics.NewSet()
	in, err := New("dk", cfg, h.dataDir, tailtest.NewRouter(b, discardQueue{}), nil, set)
	if err != nil {
		b.Fatal(err)
	}
	defer in.t.Close()
	in.t.Scan()
	read := set.GetOrCreateCounter(`sluice_input_lines_total{input="dk"}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	start := time.Now()
	done := uint64(0)
	for done < uint64(b.N) {
		before := read.Get()
		if err := in.t.Drain(ctx); err != nil {
			b.Fatal(err)
		}
		done += read.Get() - before
		in.t.Rewind()
	}
	b.StopTimer()
	b.ReportMetric(float64(done)/time.Since(start).Seconds(), "lines/s")
	_ = os.Remove(path)
}

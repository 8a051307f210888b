package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The tests' input: a CRI-like line format, "<RFC3339Nano> <stream> <P|F>
// <content>", and a layout like Docker's, with <root>/<id>/<id>.log,
// rotated to .log.1, .log.2 … (testLayout{depth: 2} puts sources one level
// deeper, as CRI does).

var errBadLine = errors.New("not a test-format line")

type testFormat struct{}

func (testFormat) Parse(b []byte, l *Line) error {
	ts, rest, ok1 := bytes.Cut(b, []byte(" "))
	stream, rest, ok2 := bytes.Cut(rest, []byte(" "))
	tag, content, ok3 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || !ok3 || (string(tag) != "P" && string(tag) != "F") {
		return errBadLine
	}
	tm, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return errBadLine
	}
	*l = Line{Content: content, Stream: stream, Time: tm.UnixNano(), HasTime: true, Partial: string(tag) == "P"}
	return nil
}

func (testFormat) Long(max int) LongLine { return &testLong{max: max} }

// testLong keeps the header and the first max bytes of the content.
type testLong struct {
	max int
	buf []byte
	n   int64
}

const testHeaderMax = 64

func (l *testLong) Write(p []byte) {
	if room := l.max + testHeaderMax - len(l.buf); room > 0 {
		l.buf = append(l.buf, p[:min(room, len(p))]...)
	}
	l.n += int64(len(p))
}

func (l *testLong) End() (Line, error) {
	var ln Line
	if err := (testFormat{}).Parse(l.buf, &ln); err != nil {
		raw := l.buf[:min(len(l.buf), l.max)]
		return Line{Content: raw, Truncated: l.n > int64(len(raw))}, err
	}
	dropped := l.n > int64(len(l.buf))
	if len(ln.Content) > l.max {
		ln.Content, dropped = ln.Content[:l.max], true
	}
	ln.Truncated = dropped
	return ln, nil
}

type testLayout struct{ depth int }

func (l testLayout) Depth() int { return max(l.depth, 1) }

func (testLayout) Logs(dst []Log, names []string) []Log {
	for _, name := range names {
		if len(name) > 4 && strings.HasSuffix(name, ".log") {
			dst = append(dst, Log{Name: name})
		} else if i := strings.LastIndex(name, ".log."); i > 0 {
			if r, err := strconv.Atoi(name[i+5:]); err == nil && r > 0 && strconv.Itoa(r) == name[i+5:] {
				dst = append(dst, Log{Name: name, Rank: r})
			}
		}
	}
	return dst
}

func (testLayout) Source(key, dir string) Source { return &testSource{key: key, dir: dir, name: key} }

// testSource names its events after the file "name" in its directory.
type testSource struct {
	key, dir, name string
	rec            []byte
	ev             pipeline.Event
}

func (s *testSource) Refresh() error {
	if s.name != s.key {
		return nil // read once
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "name"))
	if err == nil {
		s.name = strings.TrimPrefix(string(b), "/")
	}
	return nil
}

func (s *testSource) Event(l *Line) *pipeline.Event {
	rec := msgp.AppendMapHeader(s.rec[:0], 3)
	rec = msgp.AppendString(rec, "log")
	rec = msgp.AppendStringFromBytes(rec, l.Content)
	rec = msgp.AppendString(rec, "stream")
	rec = msgp.AppendStringFromBytes(rec, l.Stream)
	rec = msgp.AppendString(rec, "source")
	rec = msgp.AppendString(rec, s.key)
	s.rec = rec
	s.ev = pipeline.Event{Tag: []byte("t." + s.name), Time: l.Time, Record: rec}
	return &s.ev
}

const t0 = "2024-01-02T03:04:05.1Z"

// tl encodes one line in the test format. As in json-file, a log without
// a trailing "\n" is a partial line.
func tl(log, stream string) string {
	if c, ok := strings.CutSuffix(log, "\n"); ok {
		return t0 + " " + stream + " F " + c + "\n"
	}
	return t0 + " " + stream + " P " + log + "\n"
}

// lines returns n complete stdout lines "<prefix><i>".
func lines(prefix string, from, n int) (string, []string) {
	var sb strings.Builder
	var want []string
	for i := from; i < from+n; i++ {
		s := fmt.Sprintf("%s%d", prefix, i)
		sb.WriteString(tl(s+"\n", "stdout"))
		want = append(want, s)
	}
	return sb.String(), want
}

const (
	idA = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
	idC = "cccccccccccc3333333333333333333333333333333333333333333333333333"
)

// event is one decoded event as a test sees it.
type event struct {
	Tag    string
	Time   int64
	Record map[string]any
}

func (e event) log() string { s, _ := e.Record["log"].(string); return s }

// fakeQueue records appended chunks; Append and Sync can be made to fail.
type fakeQueue struct {
	mu       sync.Mutex
	events   []event
	failApp  error
	failSync error
	syncs    int
	appends  int
	gate     chan struct{} // if set, Append waits for it
}

func (q *fakeQueue) Append(ctx context.Context, tag []byte, count int, entries []byte) error {
	q.mu.Lock()
	gate := q.gate
	q.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failApp != nil {
		return q.failApp
	}
	var evs []event
	err := wire.ForEachEntry(entries, func(ns int64, rec []byte) error {
		v, _, err := msgp.ReadIntfBytes(rec)
		if err != nil {
			return err
		}
		m, _ := v.(map[string]any)
		evs = append(evs, event{Tag: string(tag), Time: ns, Record: m})
		return nil
	})
	if err != nil || len(evs) != count {
		panic(fmt.Sprintf("fake queue: bad chunk (%v, %d of %d)", err, len(evs), count))
	}
	q.appends++
	q.events = append(q.events, evs...)
	return nil
}

func (q *fakeQueue) Sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.syncs++
	return q.failSync
}

func (q *fakeQueue) Mark() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return uint64(q.appends)
}

func (q *fakeQueue) SyncTo(uint64) error { return q.Sync() }

func (q *fakeQueue) setFail(app, sync error) {
	q.mu.Lock()
	q.failApp, q.failSync = app, sync
	q.mu.Unlock()
}

func (q *fakeQueue) all() []event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]event(nil), q.events...)
}

func (q *fakeQueue) logs() []string {
	var out []string
	for _, e := range q.all() {
		out = append(out, e.log())
	}
	return out
}

func newRouter(t testing.TB, q pipeline.Queue) *pipeline.Router {
	t.Helper()
	r, err := pipeline.NewRouter(
		[]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q, ChunkBytes: 64 << 10}},
		metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type harness struct {
	t       testing.TB
	root    string
	dataDir string
	q       *fakeQueue
	set     *metrics.Set
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, root: t.TempDir(), dataDir: t.TempDir(), q: &fakeQueue{}, set: metrics.NewSet()}
}

// testCfg is a fast-polling config for tests.
func (h *harness) cfg() Config {
	return Config{
		ID: "tl", Root: h.root, DataDir: h.dataDir,
		MaxLineBytes:        1 << 20,
		PollInterval:        20 * time.Millisecond,
		CheckpointInterval:  20 * time.Millisecond,
		PartialFlushTimeout: 200 * time.Millisecond,
		Format:              testFormat{},
		Layout:              testLayout{},
		Log:                 testLogger(h.t),
		Metrics:             h.set,
	}
}

// testLogger logs to the test when SLUICE_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (h *harness) tail(cfg Config) *Tail {
	h.t.Helper()
	cfg.Metrics = h.set
	in, err := New(cfg, newRouter(h.t, h.q))
	if err != nil {
		h.t.Fatal(err)
	}
	return in
}

// start runs in and returns a function that stops it and returns Run's
// error.
func start(t testing.TB, in *Tail) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func (h *harness) counter(name string) uint64 {
	return h.set.GetOrCreateCounter(name + `{input="tl"}`).Get()
}

// container creates a source directory <root>/<id> named name and returns
// its live log path.
func (h *harness) container(id, name string) string {
	h.t.Helper()
	dir := filepath.Join(h.root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "name"), []byte(name), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return filepath.Join(dir, id+".log")
}

func appendFile(t testing.TB, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) waitEvents(n int) []event {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("%d events", n), func() bool { return len(h.q.all()) >= n })
	return h.q.all()
}

// savedState reads the offsets file.
func (h *harness) savedState() []savedFile {
	h.t.Helper()
	st, _, err := loadState(filepath.Join(h.dataDir, "inputs", "tl", stateName))
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Files
}

// offsetOf returns the saved offset of the entry whose path is path.
func (h *harness) offsetOf(path string) (int64, bool) {
	for _, s := range h.savedState() {
		if s.Path == path {
			return s.Offset, true
		}
	}
	return 0, false
}

func equalStrings(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d\ngot:  %q\nwant: %q", len(got), len(want), clip(got), clip(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("item %d: got %q, want %q", i, clipS(got[i]), clipS(want[i]))
		}
	}
}

func clip(s []string) []string {
	if len(s) > 20 {
		s = append(s[:10:10], append([]string{"…"}, s[len(s)-10:]...)...)
	}
	return s
}

func clipS(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// pump drives a not-running Tail by hand (white-box): scan, then turns
// until nothing moves, repeated so rotations settle. It returns the flush
// error, if any.
func pump(t testing.TB, in *Tail) error {
	t.Helper()
	t.Cleanup(in.Close)
	ctx := context.Background()
	for range 4 {
		in.Scan()
		if err := in.Drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

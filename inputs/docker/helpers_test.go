package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	attempts int
	failWhen func(attempt int) bool // if set, Append attempts it returns true for fail
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
	q.attempts++
	if q.failWhen != nil && q.failWhen(q.attempts) {
		return errors.New("no space left on device")
	}
	var evs []event
	err := wire.ForEachEntry(entries, func(ns int64, rec []byte) error {
		v, rest, err := msgp.ReadIntfBytes(rec)
		if err != nil {
			return err
		}
		if len(rest) != 0 {
			return errors.New("trailing bytes after record")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("record is %T", v)
		}
		evs = append(evs, event{Tag: string(tag), Time: ns, Record: m})
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("fake queue: undecodable chunk: %v", err))
	}
	if len(evs) != count {
		panic(fmt.Sprintf("fake queue: count %d, decoded %d", count, len(evs)))
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

// testCfg is a fast-polling config for tests.
func testCfg(root string) config.DockerInput {
	return config.DockerInput{
		Root:                root,
		PollInterval:        20 * time.Millisecond,
		CheckpointInterval:  20 * time.Millisecond,
		PartialFlushTimeout: 200 * time.Millisecond,
	}
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

func (h *harness) input(cfg config.DockerInput) *Input {
	h.t.Helper()
	in, err := New("dk", cfg, h.dataDir, newRouter(h.t, h.q), testLogger(h.t), h.set)
	if err != nil {
		h.t.Fatal(err)
	}
	return in
}

// start runs in and returns a function that stops it and returns Run's
// error.
func start(t testing.TB, in *Input) (stop func() error) {
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
	return h.set.GetOrCreateCounter(name + `{input="dk"}`).Get()
}

// container creates a container directory with config.v2.json and returns
// the live log path.
func (h *harness) container(id, name string, labels map[string]string) string {
	h.t.Helper()
	dir := filepath.Join(h.root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if name != "" {
		writeConfig(h.t, dir, name, labels)
	}
	return filepath.Join(dir, id+"-json.log")
}

func writeConfig(t testing.TB, dir, name string, labels map[string]string) {
	t.Helper()
	cfg := map[string]any{"ID": filepath.Base(dir), "Name": name, "Config": map[string]any{"Labels": labels, "Image": "x"}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".cfg.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, configFile)); err != nil {
		t.Fatal(err)
	}
}

const t0 = "2024-01-02T03:04:05.1Z"

// jl encodes one json-file line as Docker does (encoding/json differs in
// details that do not matter to the parser).
func jl(log, stream string) string {
	b, err := json.Marshal(map[string]string{"log": log, "stream": stream, "time": t0})
	if err != nil {
		panic(err)
	}
	return string(b) + "\n"
}

// lines returns n complete stdout lines "<prefix><i>".
func lines(prefix string, from, n int) (string, []string) {
	var sb strings.Builder
	var want []string
	for i := from; i < from+n; i++ {
		s := fmt.Sprintf("%s%d", prefix, i)
		sb.WriteString(jl(s+"\n", "stdout"))
		want = append(want, s)
	}
	return sb.String(), want
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

// savedEntry is the part of an offsets file entry the tests look at.
type savedEntry struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
}

// savedState reads the offsets file.
func (h *harness) savedState() []savedEntry {
	h.t.Helper()
	data, err := os.ReadFile(filepath.Join(h.dataDir, "inputs", "dk", "offsets.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var st struct{ Files []savedEntry }
	if err := json.Unmarshal(data, &st); err != nil {
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

// pump drives a not-running Input by hand: scan, then turns until nothing
// moves, repeated so rotations settle. It returns the flush error, if any.
func pump(t testing.TB, in *Input) error {
	t.Helper()
	t.Cleanup(in.t.Close)
	ctx := context.Background()
	for range 4 {
		in.t.Scan()
		if err := in.t.Drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

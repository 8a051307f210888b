package tail

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
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

// lines returns n complete stdout lines "<prefix><i>" in the test format.
func lines(prefix string, from, n int) (string, []string) {
	return tailtest.Lines(tl, prefix, from, n)
}

const (
	idA = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
	idC = "cccccccccccc3333333333333333333333333333333333333333333333333333"
)

type harness struct {
	t       testing.TB
	root    string
	dataDir string
	q       *tailtest.Queue
	set     *metrics.Set
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, root: t.TempDir(), dataDir: t.TempDir(), q: &tailtest.Queue{}, set: metrics.NewSet()}
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
		Log:                 tailtest.Logger(h.t),
		Metrics:             h.set,
	}
}

func (h *harness) tail(cfg Config) *Tail {
	h.t.Helper()
	cfg.Metrics = h.set
	in, err := New(cfg, tailtest.NewRouter(h.t, h.q))
	if err != nil {
		h.t.Fatal(err)
	}
	return in
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

func (h *harness) waitEvents(n int) []tailtest.Event {
	h.t.Helper()
	tailtest.WaitFor(h.t, fmt.Sprintf("%d events", n), func() bool { return len(h.q.All()) >= n })
	return h.q.All()
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

// writeLines appends lines(prefix, from, n) to path and returns them.
func writeLines(t testing.TB, path, prefix string, from, n int) (string, []string) {
	t.Helper()
	data, want := lines(prefix, from, n)
	tailtest.AppendFile(t, path, data)
	return data, want
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

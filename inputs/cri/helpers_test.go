package cri

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCfg is a fast-polling config for tests.
func testCfg(root string) config.CRIInput {
	return config.CRIInput{
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
	q       *tailtest.Queue
	set     *metrics.Set
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, root: t.TempDir(), dataDir: t.TempDir(), q: &tailtest.Queue{}, set: metrics.NewSet()}
}

func (h *harness) input(cfg config.CRIInput) *Input {
	h.t.Helper()
	in, err := New("cri", cfg, h.dataDir, tailtest.NewRouter(h.t, h.q), tailtest.Logger(h.t), h.set)
	if err != nil {
		h.t.Fatal(err)
	}
	return in
}

// restarted is h after an agent restart: same root and data dir, a new
// queue.
func (h *harness) restarted() *harness {
	h2 := *h
	h2.q = &tailtest.Queue{}
	return &h2
}

func (h *harness) counter(name string) uint64 {
	return h.set.GetOrCreateCounter(name + `{input="cri"}`).Get()
}

// container creates <root>/<ns>_<pod>_<uid>/<name>/ and returns the path
// of its 0.log.
func (h *harness) container(ns, pod, uid, name string) string {
	h.t.Helper()
	dir := filepath.Join(h.root, ns+"_"+pod+"_"+uid, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	return filepath.Join(dir, "0.log")
}

const t0 = "2024-01-02T03:04:05.123456789Z"

// cl encodes one CRI line: a log ending in "\n" is full (F), any other a
// partial piece (P), as tailtest.Lines expects.
func cl(log, stream string) string {
	if c, ok := strings.CutSuffix(log, "\n"); ok {
		return t0 + " " + stream + " F " + c + "\n"
	}
	return t0 + " " + stream + " P " + log + "\n"
}

// lines returns n complete stdout lines "<prefix><i>" in CRI format.
func lines(prefix string, from, n int) (string, []string) {
	return tailtest.Lines(cl, prefix, from, n)
}

func (h *harness) waitEvents(n int) []tailtest.Event {
	h.t.Helper()
	tailtest.WaitFor(h.t, fmt.Sprintf("%d events", n), func() bool { return len(h.q.All()) >= n })
	return h.q.All()
}

// savedEntry is the part of an offsets file entry the tests look at.
type savedEntry struct {
	Key    string `json:"container_id"`
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
}

func (h *harness) savedState() []savedEntry {
	h.t.Helper()
	data, err := os.ReadFile(filepath.Join(h.dataDir, "inputs", "cri", "offsets.json"))
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

func (h *harness) offsetOf(path string) (int64, bool) {
	for _, s := range h.savedState() {
		if s.Path == path {
			return s.Offset, true
		}
	}
	return 0, false
}

// pump drives a not-running Input by hand (see tailtest.Pump).
func pump(t testing.TB, in *Input) error { return tailtest.Pump(t, in.t) }

func mustTime(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixNano()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

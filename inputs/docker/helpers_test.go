package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
	q       *tailtest.Queue
	set     *metrics.Set
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, root: t.TempDir(), dataDir: t.TempDir(), q: &tailtest.Queue{}, set: metrics.NewSet()}
}

func (h *harness) input(cfg config.DockerInput) *Input {
	h.t.Helper()
	in, err := New("dk", cfg, h.dataDir, tailtest.NewRouter(h.t, h.q), tailtest.Logger(h.t), h.set)
	if err != nil {
		h.t.Fatal(err)
	}
	return in
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

// lines returns n complete stdout lines "<prefix><i>" in json-file format.
func lines(prefix string, from, n int) (string, []string) {
	return tailtest.Lines(jl, prefix, from, n)
}

func (h *harness) waitEvents(n int) []tailtest.Event {
	h.t.Helper()
	tailtest.WaitFor(h.t, fmt.Sprintf("%d events", n), func() bool { return len(h.q.All()) >= n })
	return h.q.All()
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

// pump drives a not-running Input by hand (see tailtest.Pump).
func pump(t testing.TB, in *Input) error { return tailtest.Pump(t, in.t) }

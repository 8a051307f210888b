package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

const (
	idA = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
)

func TestRecordLayoutAndTag(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", map[string]string{"app": "shop", "tier": "front"})
	tailtest.AppendFile(t, path,
		`{"log":"hello \u003cworld\u003e\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`+"\n"+
			`{"stream":"stderr","time":"2024-01-02T03:04:06Z","log":"oops\n"}`+"\n")
	cfg := testCfg(h.root)
	cfg.Tag = "k.{name}.{stream}.{label:app}.{short_id}"
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []tailtest.Event{
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
	tailtest.AppendFile(t, path, jl(`{"level":"info","n":3,"log":"inner","stream":"x"}`+"\n", "stdout")+jl("not json\n", "stdout"))
	cfg := testCfg(h.root)
	cfg.ParseJSON = true
	no := false
	cfg.IncludeLabels = &no
	cfg.Tag = "{name}.{field:level}"
	stop := tailtest.Start(t, h.input(cfg))
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
	tailtest.AppendFile(t, path, jl("one\n", "stdout"))
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
	tailtest.AppendFile(t, path, jl("two\n", "stdout"))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	evs := h.q.All()
	if len(evs) != 2 || evs[0].Tag != "docker.old" || evs[1].Tag != "docker.new" ||
		evs[1].Record["container_name"] != "new" || !reflect.DeepEqual(evs[1].Record["labels"], map[string]any{"v": "2"}) {
		t.Fatalf("got %+v", evs)
	}
}

// TestContainerConfigReloadedWhileRunning: Docker replaces config.v2.json
// by rename; with full scans an hour apart, the rename event alone makes
// the next line carry the new name and labels (inotify queues the rename
// before the write, and the reader scans before it reads).
func TestContainerConfigReloadedWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/old", nil)
	tailtest.AppendFile(t, path, jl("one\n", "stdout"))
	cfg := testCfg(h.root)
	cfg.PollInterval = time.Hour
	stop := tailtest.Start(t, h.input(cfg))
	h.waitEvents(1)
	// Another size than "/old", so that a coarse mtime cannot hide it.
	writeConfig(t, filepath.Join(h.root, idA), "/renamed", map[string]string{"v": "2"})
	tailtest.AppendFile(t, path, jl("two\n", "stdout"))
	evs := h.waitEvents(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if evs[0].Tag != "docker.old" || evs[1].Tag != "docker.renamed" || !reflect.DeepEqual(evs[1].Record["labels"], map[string]any{"v": "2"}) {
		t.Fatalf("got %+v", evs)
	}
}

func TestMalformedLinesEmittedRaw(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	bad := []string{`garbage`, `{"log":"x\q","stream":"stdout"}`, `{"log":"unterminated`}
	tailtest.AppendFile(t, path, jl("ok1\n", "stdout")+bad[0]+"\n"+bad[1]+"\n\n"+jl("ok2\n", "stdout")+bad[2]+"\n"+jl("ok3\n", "stdout"))
	in := h.input(testCfg(h.root))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	tailtest.EqualStrings(t, h.q.Logs(), []string{"ok1", bad[0], bad[1], "ok2", bad[2], "ok3"})
	if evs := h.q.All(); evs[1].Record["stream"] != "" || evs[1].Time == 0 {
		t.Fatalf("malformed record %+v", evs[1])
	}
	if n := h.counter("sluice_input_parse_errors_total"); n != 3 {
		t.Fatalf("parse errors %d", n)
	}
}

// TestTruncatePhysicalLine: one 5 MiB physical line (longer than the read
// buffer) is parsed as a stream; "stream" and "time" after "log" are still
// found; the committed offset stays at the line's start until it ends.
// (That the line is never held whole is tested in tail and by
// TestLongLineTruncates.)
func TestTruncatePhysicalLine(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	cfg := testCfg(h.root)
	cfg.MaxLineBytes = 1 << 20
	in := h.input(cfg)
	const total = 5 << 20
	body := strings.Repeat("0123456789\\u00e9", total/16) // escaped: é is 2 bytes
	tailtest.AppendFile(t, path, jl("before\n", "stdout")+`{"log":"`+body[:len(body)/2])
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	if err := in.t.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if off, _ := h.offsetOf(path); off != int64(len(jl("before\n", "stdout"))) {
		t.Fatalf("commit %d passed the start of the unfinished line", off)
	}
	tailtest.AppendFile(t, path, body[len(body)/2:]+`\n","stream":"stderr","time":"2024-05-06T07:08:09Z"}`+"\n"+jl("after\n", "stdout"))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	evs := h.q.All()
	if len(evs) != 3 {
		t.Fatalf("%d events", len(evs))
	}
	long := evs[1]
	if len(long.Log()) > 1<<20 || len(long.Log()) < 1<<20-1 || !strings.HasPrefix(long.Log(), "0123456789é0123") ||
		long.Record["stream"] != "stderr" || long.Time != mustTime(t, "2024-05-06T07:08:09Z") || evs[2].Log() != "after" {
		t.Fatalf("long line: %d bytes, stream %v, time %d", len(long.Log()), long.Record["stream"], long.Time)
	}
	if n := h.counter("sluice_input_truncated_lines_total"); n != 1 {
		t.Fatalf("truncated %d", n)
	}
	if err := in.t.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); func() int64 { off, _ := h.offsetOf(path); return off }() != st.Size() {
		t.Fatalf("commit not at the end (size %d)", st.Size())
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
	tailtest.AppendFile(t, path, strings.Repeat("x", 300<<10)+"\n"+jl("ok\n", "stdout"))
	if err := pump(t, in); err != nil {
		t.Fatal(err)
	}
	logs := h.q.Logs()
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
	tailtest.AppendFile(t, pa, data)
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(50)
	pb := h.container(idB, "/b", nil)
	data, wantB := lines("b", 0, 50)
	tailtest.AppendFile(t, pb, data)
	data, wantA2 := lines("a", 50, 10)
	tailtest.AppendFile(t, pa, data)
	h.waitEvents(110)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byTag := h.q.LogsBy(func(e tailtest.Event) string { return e.Tag })
	tailtest.EqualStrings(t, byTag["docker.a"], append(want, wantA2...))
	tailtest.EqualStrings(t, byTag["docker.b"], wantB)
	if g := h.set.GetOrCreateGauge(`sluice_input_files_tracked{input="dk"}`, nil).Get(); g != 0 {
		t.Fatalf("files tracked after stop: %v", g)
	}
}

// TestRotateWhileStopped: stop, rotate twice (live→.1→.2), append to every
// file, restart: nothing missing, nothing repeated, oldest file first.
func TestRotateWhileStopped(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	a, wantA := lines("a", 0, 30)
	tailtest.AppendFile(t, path, a)
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(30)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, wantB := lines("b", 0, 30)
	tailtest.AppendFile(t, path, b) // written after the last checkpoint
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	c, wantC := lines("c", 0, 30)
	tailtest.AppendFile(t, path+".1", c)
	d, wantD := lines("d", 0, 30)
	tailtest.AppendFile(t, path, d)

	h2 := *h
	h2.q = &tailtest.Queue{}
	stop = tailtest.Start(t, h2.input(testCfg(h.root)))
	h2.waitEvents(90)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	tailtest.EqualStrings(t, h2.q.Logs(), append(append(wantB, wantC...), wantD...))
	_ = wantA
}

func TestNewErrors(t *testing.T) {
	h := newHarness(t)
	r := tailtest.NewRouter(t, h.q)
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

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/pipeline"
)

// clone returns a copy of the running config (re-parsed from its YAML,
// with a comment line on top so every Line differs).
func (ta *testAgent) clone(t *testing.T) *config.Config {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ta.op.Lock()
		running := ta.running
		ta.op.Unlock()
		if running || ta.ran.Load() && time.Now().After(deadline) {
			break
		}
	}
	c, err := config.Parse([]byte("# reloaded\n"+ta.cur().cfg.Redacted()), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (ta *testAgent) proc(r ref) *proc {
	ta.sup.mu.Lock()
	defer ta.sup.mu.Unlock()
	return ta.sup.procs[r]
}

func (ta *testAgent) procs() map[ref]*proc {
	ta.sup.mu.Lock()
	defer ta.sup.mu.Unlock()
	m := map[ref]*proc{}
	for r, p := range ta.sup.procs {
		m[r] = p
	}
	return m
}

var (
	refInA  = ref{"input", "in-a"}
	refInB  = ref{"input", "in-b"}
	refOutA = ref{"output", "out-a"}
	refOutB = ref{"output", "out-b"}
)

const (
	reloadsOK     = `sluice_config_reloads_total{result="success"}`
	reloadsFailed = `sluice_config_reloads_total{result="failure"}`
)

// TestReloadUnchanged: the same config (every line number different) is a
// reload that changes nothing: every component keeps its goroutine
// (the same proc) and its counters.
func TestReloadUnchanged(t *testing.T) {
	ta := startTestAgent(t, "")
	ta.write(t, "in-a", 50)
	ta.write(t, "in-b", 50)
	ta.waitLines(t, "out-a", "in-a")
	ta.waitLines(t, "out-b", "in-b")
	ta.checkSeries(t, "before", map[string]float64{outAEvents: 50, outBEvents: 50, inALines: 50})
	before := ta.procs()
	router := ta.router.Load()
	if err := ta.Reload(ta.clone(t)); err != nil {
		t.Fatal(err)
	}
	if after := ta.procs(); len(after) != len(before) {
		t.Fatalf("procs %v, want %v", after, before)
	} else {
		for r, p := range before {
			if after[r] != p {
				t.Errorf("%s restarted by a reload that changed nothing", r)
			}
		}
	}
	if ta.router.Load() != router {
		t.Error("Router replaced though routing did not change")
	}
	ta.checkSeries(t, "after", map[string]float64{outAEvents: 50, outBEvents: 50, inALines: 50, inBLines: 50, reloadsOK: 1, reloadsFailed: 0})
	st := ta.Status().Agent.LastReload
	if st == nil || st.Result != "success" || len(st.Changes) != 0 {
		t.Fatalf("/status last_reload = %+v", st)
	}
	ta.write(t, "in-a", 50)
	ta.waitLines(t, "out-a", "in-a")
	ta.checkSeries(t, "counting on", map[string]float64{outAEvents: 100, inALines: 100})
}

// TestReloadChangedOutput: an output whose delivery settings change
// restarts over the same queue: what was queued while it ran (and while
// it was stopped) is delivered once, in order; the other components keep
// their goroutines and counters.
func TestReloadChangedOutput(t *testing.T) {
	ta := startTestAgent(t, "")
	ta.write(t, "in-a", 100)
	ta.write(t, "in-b", 100)
	ta.waitLines(t, "out-a", "in-a")
	ta.waitLines(t, "out-b", "in-b")
	// Settled, not only written: a stop between the file's write and its
	// settle would make the restarted output write the chunk again.
	ta.checkSeries(t, "delivered", map[string]float64{outAEvents: 100, outBEvents: 100})
	// Queue lines for out-a that the old instance never sees.
	if err := ta.StopOutput("out-a"); err != nil {
		t.Fatal(err)
	}
	ta.write(t, "in-a", 100)
	deadline := time.Now().Add(10 * time.Second)
	for ta.series()[bufA] != 200 {
		if time.Now().After(deadline) {
			t.Fatal("lines did not reach out-a's queue")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ta.StartOutput("out-a"); err != nil {
		t.Fatal(err)
	}
	before := ta.procs()
	cfg := ta.clone(t)
	cfg.Outputs[0].Delivery.FlushInterval = 20 * time.Millisecond
	ta.write(t, "in-a", 100) // in flight during the reload
	if err := ta.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	ta.write(t, "in-a", 100)
	ta.write(t, "in-b", 100)
	ta.waitLines(t, "out-a", "in-a")
	ta.waitLines(t, "out-b", "in-b")
	after := ta.procs()
	if after[refOutA] == before[refOutA] {
		t.Error("out-a not restarted")
	}
	for _, r := range []ref{refInA, refInB, refOutB, {"buffer", "out-a"}, {"buffer", "out-b"}} {
		if after[r] != before[r] {
			t.Errorf("%s restarted", r)
		}
	}
	ta.checkSeries(t, "after", map[string]float64{inALines: 400, inBLines: 200, outBEvents: 200, bufA: 400, reloadsOK: 1})
	if got := ta.cur().outputs[0].out.Delivery.FlushInterval; got != 20*time.Millisecond {
		t.Fatalf("running out-a has flush_interval %v", got)
	}
	if st := ta.Status().Agent.LastReload; st == nil || strings.Join(st.Changes, ",") != "output out-a changed" {
		t.Fatalf("last_reload %+v", st)
	}
}

// TestReloadRoutesAndRemovedOutput: a reload removes out-b and routes
// b.** to out-a: in-b's lines read after it go to out-a; out-b's queue
// (holding what it had not sent) stays on disk, closed; a later reload
// adding out-b back delivers it.
func TestReloadRoutesAndRemovedOutput(t *testing.T) {
	ta := startTestAgent(t, "")
	ta.write(t, "in-b", 30)
	ta.waitLines(t, "out-b", "in-b")
	if err := ta.StopOutput("out-b"); err != nil {
		t.Fatal(err)
	}
	ta.write(t, "in-b", 20) // queued for out-b, never sent by it
	deadline := time.Now().Add(10 * time.Second)
	for ta.pending("out-b") == 0 || ta.series()[`sluice_buffer_appended_events_total{output="out-b"}`] != 50 {
		if time.Now().After(deadline) {
			t.Fatal("lines did not reach out-b's queue")
		}
		time.Sleep(10 * time.Millisecond)
	}
	keep := ta.clone(t)
	cfg := ta.clone(t)
	cfg.Outputs = cfg.Outputs[:1]
	cfg.Routes = []config.Route{{Match: "**", Outputs: []string{"out-a"}}}
	if err := ta.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if ta.proc(refOutB) != nil {
		t.Fatal("removed output still running")
	}
	// Lines of in-b read from now on go to out-a.
	ta.written["in-a"] = 0
	ta.write(t, "in-a", 10)
	ta.waitLines(t, "out-a", "in-a")
	ta.written["in-b"] = 50
	ta.write(t, "in-b", 10)
	deadline = time.Now().Add(10 * time.Second)
	for {
		var nb int
		for _, l := range ta.lines(t, "out-a") {
			if strings.HasPrefix(l, "in-b ") {
				nb++
			}
		}
		if nb == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("out-a has %d lines of in-b, want the 10 written after the reload", nb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// out-b's queue: closed once no input holds events for it, still on
	// disk with its 20 unsent lines.
	deadline = time.Now().Add(10 * time.Second)
	for {
		ta.op.Lock()
		n := len(ta.reload.retiring)
		ta.op.Unlock()
		if n == 0 && ta.proc(ref{"buffer", "out-b"}) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("removed output's queue not closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	segs, _ := filepath.Glob(filepath.Join(ta.dir, "data", "buffer", "out-b", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("removed output's queue not on disk")
	}
	st := ta.Status()
	if len(st.Outputs) != 1 {
		t.Fatalf("/status lists %d outputs, want 1", len(st.Outputs))
	}
	if len(st.RetainedQueues) != 1 || st.RetainedQueues[0].Output != "out-b" || st.RetainedQueues[0].Queue != "buffer/out-b" ||
		st.RetainedQueues[0].Files != len(segs) || st.RetainedQueues[0].Bytes == 0 {
		t.Fatalf("/status retained_queues %+v, want out-b's queue (%d segments)", st.RetainedQueues, len(segs))
	}
	// Back: the queue is opened from disk and its 20 lines are sent, once.
	if err := ta.Reload(keep); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		got := ta.lines(t, "out-b")
		if len(got) == 50 && got[49] == "in-b 0049" {
			break
		}
		if len(got) > 50 || time.Now().After(deadline) {
			t.Fatalf("out-b has %d lines after it came back, want 50", len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rq := ta.Status().RetainedQueues; len(rq) != 0 {
		t.Fatalf("retained_queues %+v after out-b came back", rq)
	}
	ta.checkSeries(t, "reloads", map[string]float64{reloadsOK: 2, reloadsFailed: 0})
}

// TestReloadRemovedAndBackBeforeClosed: an output removed and added back
// before its queue was closed gets the same queue object again.
func TestReloadRemovedAndBackBeforeClosed(t *testing.T) {
	ta := startTestAgent(t, "")
	keep := ta.clone(t)
	cfg := ta.clone(t)
	cfg.Outputs = cfg.Outputs[:1]
	cfg.Routes = cfg.Routes[:1]
	q := ta.cur().queues[1]
	// A Writer with a batch on the current Router holds the queue open.
	w := ta.router.Load().NewWriter()
	w.Add(ta.event("b.x"))
	if err := ta.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if err := ta.Reload(keep); err != nil {
		t.Fatal(err)
	}
	if ta.cur().queues[1] != q {
		t.Fatal("out-b back with another queue")
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	ta.write(t, "in-b", 5)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := ta.lines(t, "out-b")
		if len(got) == 6 && got[0] == "held" && got[5] == "in-b 0004" {
			break
		}
		if len(got) > 6 || time.Now().After(deadline) {
			t.Fatalf("out-b has %v, want the held event then in-b 0000..0004", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event is an event whose record is {"log": "held"}.
func (ta *testAgent) event(tag string) *pipeline.Event {
	rec := msgp.AppendMapHeader(nil, 1)
	rec = msgp.AppendString(rec, "log")
	rec = msgp.AppendString(rec, "held")
	return &pipeline.Event{Tag: []byte(tag), Time: 1, Record: rec}
}

// TestReloadChangedInput: an input whose tag changes restarts from its
// committed offsets (nothing read twice) and routes by the new tag.
func TestReloadChangedInput(t *testing.T) {
	ta := startTestAgent(t, "")
	ta.write(t, "in-a", 20)
	ta.waitLines(t, "out-a", "in-a")
	before := ta.procs()
	cfg := ta.clone(t)
	cfg.Inputs[0].Docker.Tag = "b.{short_id}"
	if err := ta.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	after := ta.procs()
	if after[refInA] == before[refInA] || after[refInB] != before[refInB] || after[refOutA] != before[refOutA] {
		t.Fatal("want only in-a restarted")
	}
	ta.written["in-a"] = 20
	ta.write(t, "in-a", 10)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := ta.lines(t, "out-b")
		if len(got) == 10 && got[0] == "in-a 0020" && got[9] == "in-a 0029" {
			break
		}
		if len(got) > 10 || time.Now().After(deadline) {
			t.Fatalf("out-b has %v, want in-a 0020..0029", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(ta.lines(t, "out-a")); n != 20 {
		t.Fatalf("out-a has %d lines, want the 20 from before", n)
	}
}

// TestReloadRefused: an invalid config, one that changes what needs a
// restart, and a file that does not parse are refused before anything
// changes, logged and counted; the agent runs on with its config.
func TestReloadRefused(t *testing.T) {
	ta := startTestAgent(t, "")
	before := ta.procs()
	running := ta.cur()

	bad := ta.clone(t)
	bad.Routes = append(bad.Routes, config.Route{Match: "x", Outputs: []string{"nope"}})
	if err := ta.Reload(bad); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown output: %v", err)
	}
	dd := ta.clone(t)
	dd.DataDir = filepath.Join(ta.dir, "other")
	if err := ta.Reload(dd); !errors.Is(err, ErrNeedsRestart) || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("data_dir: %v", err)
	}
	mb := ta.clone(t)
	mb.Outputs[1].Buffer.MaxBytes *= 2
	mb.Routes = mb.Routes[:1] // would apply, but the whole reload is refused
	if err := ta.Reload(mb); !errors.Is(err, ErrNeedsRestart) || !strings.Contains(err.Error(), "output out-b: buffer.max_bytes changed") {
		t.Fatalf("max_bytes: %v", err)
	}
	path := filepath.Join(ta.dir, "agent.yml")
	os.WriteFile(path, []byte("data_dir: /x\ninputs: [\n"), 0o644)
	err := ta.ReloadFile(path)
	var ce config.Errors
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), path+":") {
		t.Fatalf("YAML error: %v, want file:line errors", err)
	}
	if ta.cur() != running {
		t.Fatal("layout replaced by a refused reload")
	}
	for r, p := range before {
		if ta.proc(r) != p {
			t.Errorf("%s restarted by a refused reload", r)
		}
	}
	ta.checkSeries(t, "counted", map[string]float64{reloadsOK: 0, reloadsFailed: 4, `sluice_config_last_reload_successful`: 0})
	if st := ta.Status().Agent.LastReload; st == nil || st.Result != "failure" || st.Error == "" {
		t.Fatalf("last_reload %+v", st)
	}
	// And it still works, and a good reload is taken.
	ta.write(t, "in-a", 5)
	ta.waitLines(t, "out-a", "in-a")
	if err := ta.Reload(ta.clone(t)); err != nil {
		t.Fatal(err)
	}
	ta.checkSeries(t, "then ok", map[string]float64{reloadsOK: 1, `sluice_config_last_reload_successful`: 1})
}

// TestReloadNotRunning: before Run and after it, Reload refuses.
func TestReloadNotRunning(t *testing.T) {
	ta := startTestAgent(t, "")
	c := ta.clone(t)
	ta.cancel()
	if err := <-ta.done; err != nil {
		t.Fatal(err)
	}
	ta.done <- nil
	if err := ta.Reload(c); !errors.Is(err, errNotRunning) {
		t.Fatalf("Reload after Run: %v", err)
	}
}

func TestEqualIgnoringLines(t *testing.T) {
	type inner struct {
		Line int `yaml:"-"`
		V    []string
		M    map[string]int
	}
	type outer struct {
		Line int `yaml:"-"`
		P    *inner
		Rest []inner
	}
	a := outer{Line: 1, P: &inner{Line: 2, V: []string{"x"}}, Rest: []inner{{Line: 3}}}
	b := outer{Line: 9, P: &inner{Line: 8, V: []string{"x"}, M: map[string]int{}}, Rest: []inner{{Line: 7}}}
	if !equal(a, b) {
		t.Fatal("lines compared")
	}
	b.P.V[0] = "y"
	if equal(a, b) {
		t.Fatal("difference missed")
	}
}

func equal(a, b any) bool {
	return equalIgnoringLines(reflect.ValueOf(a), reflect.ValueOf(b))
}

package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/pipeline"
)

// testAgent is an agent with two docker inputs, in-a and in-b, each
// tailing one container of its own root, routed by tag to two file
// outputs, out-a and out-b.
type testAgent struct {
	*Agent
	dir     string
	logs    map[string]string // input id -> json-file log path
	files   map[string]string // output id -> output path
	done    chan error
	cancel  context.CancelFunc
	written map[string]int // input id -> lines written so far
}

func startTestAgent(t *testing.T, extra string) *testAgent {
	t.Helper()
	dir := t.TempDir()
	ta := &testAgent{dir: dir, logs: map[string]string{}, files: map[string]string{}, written: map[string]int{}}
	yml := "data_dir: " + dir + "/data\nshutdown_grace: 5s\ninputs:\n"
	for _, x := range []string{"a", "b"} {
		root := filepath.Join(dir, "root-"+x)
		cid := strings.Repeat(x, 64)
		if err := os.MkdirAll(filepath.Join(root, cid), 0o755); err != nil {
			t.Fatal(err)
		}
		ta.logs["in-"+x] = filepath.Join(root, cid, cid+"-json.log")
		yml += fmt.Sprintf("  - {id: in-%s, type: docker, root: %s, tag: \"%s.{short_id}\", poll_interval: 20ms, checkpoint_interval: 50ms}\n", x, root, x)
	}
	yml += "outputs:\n"
	for _, x := range []string{"a", "b"} {
		ta.files["out-"+x] = filepath.Join(dir, "out", x+".jsonl")
		yml += fmt.Sprintf("  - {id: out-%s, type: file, path: %s, buffer: {fsync_interval: 50ms}}\n", x, ta.files["out-"+x])
	}
	yml += "routes:\n  - {match: \"a.**\", outputs: [out-a]}\n  - {match: \"b.**\", outputs: [out-b]}\n" + extra
	cfg, err := config.Parse([]byte(yml), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ta.Agent = a
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel, ta.done = cancel, make(chan error, 1)
	go func() { ta.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-ta.done
	})
	return ta
}

// write appends n lines to the log of input in: "in-x 0000", ...
func (ta *testAgent) write(t *testing.T, in string, n int) {
	t.Helper()
	f, err := os.OpenFile(ta.logs[in], os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	for range n {
		fmt.Fprintf(&b, `{"log":"%s %04d\n","stream":"stdout","time":"2024-01-02T03:04:05.000000006Z"}`+"\n", in, ta.written[in])
		ta.written[in]++
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// lines returns the "log" field of every line output out wrote.
func (ta *testAgent) lines(t *testing.T, out string) []string {
	t.Helper()
	f, err := os.Open(ta.files[out])
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logs []string
	br := bufio.NewReader(f)
	for {
		// Only whole lines count: the output may be writing the last one
		// while this reads (a line without its "\n" is still being written).
		l, err := br.ReadBytes('\n')
		if err == io.EOF {
			return logs
		}
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Record struct{ Log string } }
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("%s: %q: %v", out, l, err)
		}
		logs = append(logs, strings.TrimSuffix(v.Record.Log, "\n"))
	}
}

// waitLines waits until out holds exactly the lines in wrote (in order,
// once each), failing on more.
func (ta *testAgent) waitLines(t *testing.T, out, in string) {
	t.Helper()
	var want []string
	for i := range ta.written[in] {
		want = append(want, fmt.Sprintf("%s %04d", in, i))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := ta.lines(t, out)
		if reflect.DeepEqual(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("%s has %d lines, want the %d lines of %s once each, in order", out, len(got), len(want), in)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// series returns the value of every series in the agent's metrics.
func (ta *testAgent) series() map[string]float64 {
	var b bytes.Buffer
	ta.WriteMetrics(&b)
	m := map[string]float64{}
	for _, l := range strings.Split(b.String(), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		var v float64
		fmt.Sscan(l[i+1:], &v)
		m[l[:i]] = v
	}
	return m
}

func (ta *testAgent) pending(out string) int64 {
	for _, q := range ta.cur().queues {
		if q.id == out {
			return q.q.Stats().Pending
		}
	}
	return -1
}

const (
	outAEvents = `sluice_output_sent_events_total{output="out-a"}`
	outBEvents = `sluice_output_sent_events_total{output="out-b"}`
	inALines   = `sluice_input_lines_total{input="in-a"}`
	inBLines   = `sluice_input_lines_total{input="in-b"}`
	bufA       = `sluice_buffer_appended_events_total{output="out-a"}`
)

// checkSeries fails unless, within a few seconds (counters move just
// after the data they count), present are all there with the given values
// (-1: any value) and absent are all missing.
func (ta *testAgent) checkSeries(t *testing.T, step string, present map[string]float64, absent ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var problems []string
		m := ta.series()
		for s, want := range present {
			if got, ok := m[s]; !ok || (want >= 0 && got != want) {
				problems = append(problems, fmt.Sprintf("%s = %v (present %v), want %v", s, got, ok, want))
			}
		}
		for _, s := range absent {
			if _, ok := m[s]; ok {
				problems = append(problems, s+" still served")
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s", step, strings.Join(problems, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartOneComponent stops and restarts one output, then one input,
// by id, while the others keep running: the stopped component's series
// leave /metrics and come back counting from zero, its data waits and is
// then delivered exactly once, and the other input and output go on
// undisturbed (same series, never reset, every line once).
func TestRestartOneComponent(t *testing.T) {
	ta := startTestAgent(t, "")
	ta.write(t, "in-a", 100)
	ta.write(t, "in-b", 100)
	ta.waitLines(t, "out-a", "in-a")
	ta.waitLines(t, "out-b", "in-b")
	ta.checkSeries(t, "running", map[string]float64{outAEvents: 100, outBEvents: 100, inALines: 100, inBLines: 100})

	// Output out-a stops; its queue stays open and fills.
	if err := ta.StopOutput("out-a"); err != nil {
		t.Fatal(err)
	}
	if err := ta.StopOutput("out-a"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("second stop: %v", err)
	}
	ta.checkSeries(t, "out-a stopped", map[string]float64{outBEvents: 100, inALines: 100, bufA: 100}, outAEvents)
	ta.write(t, "in-a", 100)
	ta.write(t, "in-b", 100)
	ta.waitLines(t, "out-b", "in-b")
	deadline := time.Now().Add(10 * time.Second)
	for ta.series()[bufA] != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("in-a's lines did not reach out-a's queue while out-a was stopped: %v", ta.series()[bufA])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(ta.lines(t, "out-a")); n != 100 || ta.pending("out-a") == 0 {
		t.Fatalf("stopped out-a wrote %d lines (want 100), %d chunks pending", n, ta.pending("out-a"))
	}
	ta.checkSeries(t, "out-a stopped, fed", map[string]float64{outBEvents: 200, inALines: 200, inBLines: 200}, outAEvents)

	if err := ta.StartOutput("out-a"); err != nil {
		t.Fatal(err)
	}
	if err := ta.StartOutput("out-a"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second start: %v", err)
	}
	ta.waitLines(t, "out-a", "in-a")
	ta.checkSeries(t, "out-a restarted", map[string]float64{outAEvents: 100, outBEvents: 200, inALines: 200, inBLines: 200})

	// Input in-a stops: it commits its offsets; lines written meanwhile
	// wait in its file.
	if err := ta.StopInput("in-a"); err != nil {
		t.Fatal(err)
	}
	ta.checkSeries(t, "in-a stopped", map[string]float64{outAEvents: 100, outBEvents: 200, inBLines: 200}, inALines)
	ta.write(t, "in-a", 100)
	ta.write(t, "in-b", 100)
	ta.waitLines(t, "out-b", "in-b")
	time.Sleep(200 * time.Millisecond) // ten poll intervals of the stopped input
	if n := len(ta.lines(t, "out-a")); n != 200 {
		t.Fatalf("out-a got %d lines while in-a was stopped, want 200", n)
	}
	ta.checkSeries(t, "in-a stopped, b fed", map[string]float64{outBEvents: 300, inBLines: 300}, inALines)

	if err := ta.StartInput("in-a"); err != nil {
		t.Fatal(err)
	}
	ta.waitLines(t, "out-a", "in-a")
	// The new in-a read only the 100 new lines: it resumed from its offsets.
	ta.checkSeries(t, "in-a restarted", map[string]float64{inALines: 100, outAEvents: 200, outBEvents: 300, inBLines: 300})

	ta.cancel()
	if err := <-ta.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ta.done <- nil // for the cleanup
	if err := ta.StartInput("in-a"); err != errNotRunning {
		t.Fatalf("StartInput after Run: %v", err)
	}
}

// TestRouterSwapAppliesToRestartedInput: an input started after the
// Router is replaced routes through the new one.
func TestRouterSwapAppliesToRestartedInput(t *testing.T) {
	ta := startTestAgent(t, "")
	ta.write(t, "in-a", 10)
	ta.waitLines(t, "out-a", "in-a")

	var oq []pipeline.OutputQueue
	for _, q := range ta.cur().queues {
		oq = append(oq, pipeline.OutputQueue{ID: q.id, Queue: q.q})
	}
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out-b"}}}, "", oq, ta.set, nil)
	if err != nil {
		t.Fatal(err)
	}
	ta.router.Store(r)
	if err := ta.StopInput("in-a"); err != nil {
		t.Fatal(err)
	}
	if err := ta.StartInput("in-a"); err != nil {
		t.Fatal(err)
	}
	ta.written["in-a"] = 0 // out-b sees only the lines written from now on
	ta.write(t, "in-a", 10)
	ta.waitLines(t, "out-b", "in-a")
	if n := len(ta.lines(t, "out-a")); n != 10 {
		t.Fatalf("out-a has %d lines after the swap, want the 10 from before", n)
	}
}

// TestComponentFailureStopsAgent: a component that fails by itself (an
// input whose port is taken) makes Run shut everything down and return its
// error. (Outputs do not fail by themselves: they retry and keep their data
// queued.)
func TestComponentFailureStopsAgent(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	yml := "data_dir: " + dir + "\ninputs:\n  - {id: bad, type: forward, listen: \"" + ln.Addr().String() + "\"}\noutputs:\n  - {id: out, type: file, path: " + dir + "/out.jsonl}\n"
	cfg, err := config.Parse([]byte(yml), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the output failed")
	}
	if err == nil || !strings.Contains(err.Error(), "input bad") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run = %v, want the output's error", err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestStartStopErrors(t *testing.T) {
	ta := startTestAgent(t, "")
	for _, err := range []error{ta.StopInput("nope"), ta.StartOutput("nope")} {
		if err == nil || !strings.Contains(err.Error(), `unknown`) {
			t.Errorf("unknown id: %v", err)
		}
	}
	cfg, err := config.Parse([]byte("data_dir: "+t.TempDir()+"\ninputs: [{id: i, type: docker, root: /nonexistent}]\noutputs: [{id: o, type: stdout}]\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeQueues()
	if err := a.StopOutput("o"); err != errNotRunning {
		t.Errorf("StopOutput before Run: %v", err)
	}
}

// TestEveryTypeHasAConstructor keeps config's types and the constructor
// table in step, settings type included.
func TestEveryTypeHasAConstructor(t *testing.T) {
	seen := map[string]bool{}
	for _, ty := range config.Types() {
		table := inputConstructors
		if ty.Kind == "output" {
			table = outputConstructors
		}
		c, err := constructorFor(table, ty.Name, ty.New())
		if err != nil {
			t.Errorf("%s %s: %v", ty.Kind, ty.Name, err)
			continue
		}
		if c.build == nil {
			t.Errorf("%s %s: nil build", ty.Kind, ty.Name)
		}
		seen[ty.Kind+" "+ty.Name] = true
	}
	for name := range inputConstructors {
		if !seen["input "+name] {
			t.Errorf("constructor for input type %s, which config does not declare", name)
		}
	}
	for name := range outputConstructors {
		if !seen["output "+name] {
			t.Errorf("constructor for output type %s, which config does not declare", name)
		}
	}
	if _, err := constructorFor(outputConstructors, "file", &config.StdoutOutput{}); err == nil {
		t.Error("settings of the wrong type accepted")
	}
}

// TestShutdownSkipsStoppedOutput: an output that is not running cannot
// drain its queue, so shutdown does not wait the grace period (5s here)
// for it (issue 12.4); its lines stay queued.
func TestShutdownSkipsStoppedOutput(t *testing.T) {
	ta := startTestAgent(t, "")
	for err := ta.StopOutput("out-a"); err != nil; err = ta.StopOutput("out-a") {
		if !strings.Contains(err.Error(), "not running") {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // Run is still starting
	}
	ta.write(t, "in-a", 20)
	deadline := time.Now().Add(5 * time.Second)
	for ta.pending("out-a") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("lines never queued for out-a")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	ta.cancel()
	if err := <-ta.done; err != nil {
		t.Fatal(err)
	}
	ta.done <- nil // for the cleanup
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("shutdown took %s with a stopped output (grace 5s)", d)
	}
}

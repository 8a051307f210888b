// Package e2e runs the real agent binary (built once in TestMain) against
// Forward receivers on 127.0.0.1 and checks every sequence number of every
// generated Docker json-file line. See README.md for the scenarios.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/ibmpeer"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// agentBin is the agent built by TestMain.
var agentBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips: agentBin is empty
	}
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t0 := time.Now()
	var flags []string
	if os.Getenv("SLUICE_E2E_RACE") != "" {
		flags = append(flags, "-race") // a race makes the agent exit 66: term() fails
	}
	agentBin, err = agentproc.Build(dir, flags...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %v\n", agentBin, time.Since(t0).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logTypes are the three routes; each has its own container (source),
// output and receiver. audit's receiver decodes with IBM's protocol package.
var logTypes = []string{"app", "access", "audit"}

// env is one scenario: a fake Docker root, one container and one receiver
// per log type, and the agent process.
type env struct {
	t       *testing.T
	dir     string
	cfg     agentproc.Config
	cfgPath string
	logPath string
	recv    map[string]*receiver.Server
	cont    map[string]*loggen.Container
	proc    *agentproc.Proc
	starts  int
}

type envOptions struct {
	payload int
	// container options per log type (Name, Src, LogType are filled in).
	containers map[string]loggen.Options
	// output tweaks per log type, applied after the defaults.
	output func(o *agentproc.Output)
	// downAtStart lists receivers not started before the agent.
	downAtStart   []string
	shutdownGrace time.Duration
	checkpoint    time.Duration
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if agentBin == "" {
		t.Skip("-short: the e2e tests build and run the agent")
	}
	dir := t.TempDir()
	e := &env{
		t:       t,
		dir:     dir,
		cfgPath: filepath.Join(dir, "agent.yml"),
		logPath: filepath.Join(dir, "agent.log"),
		recv:    map[string]*receiver.Server{},
		cont:    map[string]*loggen.Container{},
	}
	root := filepath.Join(dir, "containers")
	e.cfg = agentproc.Config{
		DataDir:            filepath.Join(dir, "data"),
		DockerRoot:         root,
		MetricsAddr:        agentproc.FreeAddr(t),
		ShutdownGrace:      o.shutdownGrace,
		CheckpointInterval: o.checkpoint,
	}
	for _, lt := range logTypes {
		var s *receiver.Server
		if lt == "audit" {
			s = ibmpeer.New("127.0.0.1:0", nil)
		} else {
			s = receiver.New("127.0.0.1:0", receiver.Wire{}, nil)
		}
		// Bind once to fix the port, even for receivers that start down.
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		if contains(o.downAtStart, lt) {
			s.Stop()
		}
		t.Cleanup(s.Stop)
		e.recv[lt] = s
		out := agentproc.Output{ID: lt, Address: s.Addr(), AckTimeout: 10 * time.Second}
		if o.output != nil {
			o.output(&out)
		}
		e.cfg.Outputs = append(e.cfg.Outputs, out)

		co := o.containers[lt]
		co.Name = "c-" + lt
		co.LogType = lt
		co.Payload = o.payload
		c, err := loggen.New(root, co)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		e.cont[lt] = c
	}
	if err := e.cfg.Write(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if e.proc != nil && !e.proc.Exited() {
			e.proc.Kill()
		}
		if t.Failed() {
			e.dumpLog(60)
		}
	})
	return e
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// start starts the agent (again).
func (e *env) start() {
	e.t.Helper()
	p, err := agentproc.Start(agentBin, e.cfgPath, e.logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = p
	e.starts++
}

// term stops the agent with SIGTERM and checks it exits 0 within limit.
func (e *env) term(limit time.Duration) time.Duration {
	e.t.Helper()
	code, took, err := e.proc.Term(limit)
	if err != nil {
		e.t.Fatal(err)
	}
	if code != 0 {
		e.t.Fatalf("agent exited %d after SIGTERM", code)
	}
	return took
}

// kill stops the agent with SIGKILL.
func (e *env) kill() {
	e.proc.Kill()
}

// total is the number of lines written by every container.
func (e *env) total() int64 {
	var n int64
	for _, c := range e.cont {
		n += c.Seq()
	}
	return n
}

// waitAll waits until each receiver holds every seq its container wrote.
// It gives up early if the agent process exits.
func (e *env) waitAll(timeout time.Duration, types ...string) bool {
	e.t.Helper()
	if len(types) == 0 {
		types = logTypes
	}
	deadline := time.Now().Add(timeout)
	for _, lt := range types {
		want := e.cont[lt].Seq()
		for !e.recv[lt].WaitCount(want, 200*time.Millisecond) {
			if e.proc != nil && e.proc.Exited() {
				e.t.Errorf("agent exited (%v) while %s waited for %d lines", e.proc.Usage(), lt, want)
				return false
			}
			if time.Now().After(deadline) {
				return false
			}
		}
	}
	return true
}

// verify fails the test for any missing line and logs the figures.
func (e *env) verify(types ...string) {
	e.t.Helper()
	if len(types) == 0 {
		types = logTypes
	}
	for _, lt := range types {
		c, r := e.cont[lt], e.recv[lt]
		n := int(c.Seq())
		st := r.Stats()
		if miss := r.MissingCount(c.Src(), n); miss > 0 {
			e.t.Errorf("%s: %d of %d lines missing, first %v (receiver %s)", lt, miss, n, r.Missing(c.Src(), n), st)
		}
		if st.Distinct != int64(n) || st.Unkeyed != 0 {
			e.t.Errorf("%s: receiver holds %d distinct keys (%d unkeyed), want exactly %d; sources %v", lt, st.Distinct, st.Unkeyed, n, r.Sources())
		}
		if errs := r.Errors(); len(errs) > 0 {
			e.t.Errorf("%s: receiver errors: %v", lt, errs)
		}
		e.t.Logf("%s: %d lines, all delivered; %d duplicates; %d requests, %d bytes on the wire", lt, n, st.Duplicates, st.Requests, st.Bytes)
	}
}

// metrics scrapes the running agent.
func (e *env) metrics() string {
	e.t.Helper()
	text, err := agentproc.WaitMetrics(e.cfg.MetricsAddr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	return text
}

func (e *env) metric(text, series string) float64 {
	v, _ := agentproc.Metric(text, series)
	return v
}

// dumpLog prints the last n lines of the agent log.
func (e *env) dumpLog(n int) {
	b, _ := os.ReadFile(e.logPath)
	lines := splitLines(string(b))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		e.t.Log("agent: " + l)
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// envInt reads an integer environment override.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// summary logs the delivery figures of every receiver.
func (e *env) summary() {
	for _, lt := range logTypes {
		e.t.Logf("%s receiver: %s", lt, e.recv[lt].Stats())
	}
}

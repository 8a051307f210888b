package dockertest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// logTypes are loggen's default types; each is routed to its own output
// and receiver.
var logTypes = []string{"app", "access", "audit"}

// env is the agent under test with one Forward receiver per log type.
type env struct {
	t        *testing.T
	dir      string
	cfgPath  string
	logPath  string
	tcpAddr  string // forward input TCP address ("" without it)
	unixPath string // forward input socket
	metrics  string // metrics address
	recv     map[string]*receiver.Server
	codec    map[string]*checkCodec
	proc     *agentproc.Proc
}

type envOptions struct {
	forward bool // a forward input on TCP and a unix socket
	docker  bool // a docker input over /var/lib/docker/containers
	// outputs, if set, is the config's outputs and routes sections (YAML)
	// in place of a Forward receiver per log type (none is started).
	outputs string
}

// newEnv writes the agent's config and starts the receivers (not the agent).
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		t:       t,
		dir:     dir,
		cfgPath: filepath.Join(dir, "agent.yml"),
		logPath: filepath.Join(dir, "agent.log"),
		metrics: agentproc.FreeAddr(t),
		recv:    map[string]*receiver.Server{},
		codec:   map[string]*checkCodec{},
	}
	for _, lt := range logTypes {
		if o.outputs != "" {
			break
		}
		c := &checkCodec{stderrEvery: 3}
		s := receiver.New("127.0.0.1:0", c, nil)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		e.recv[lt], e.codec[lt] = s, c
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("data_dir: %q", filepath.Join(dir, "data"))
	p("log_level: info")
	p("metrics_addr: %q", e.metrics)
	p("shutdown_grace: 10s")
	p("inputs:")
	if o.forward {
		e.tcpAddr = agentproc.FreeAddr(t)
		e.unixPath = filepath.Join(dir, "fluent.sock")
		p("  - id: driver")
		p("    type: forward")
		p("    listen: %q", e.tcpAddr)
		p("    unix: %q", e.unixPath)
		p("    parse_json: true")
		// Docker's tag (log-opt tag=docker.{{.Name}}) behind the log type.
		p("    tag: %q", "{field:log_type}.{tag}")
	}
	if o.docker {
		p("  - id: containers")
		p("    type: docker")
		p("    root: /var/lib/docker/containers")
		p("    parse_json: true")
		p("    tag: %q", "{field:log_type}.docker.{name}")
		p("    poll_interval: 200ms")
		p("    checkpoint_interval: 500ms")
	}
	if o.outputs != "" {
		b.WriteString(o.outputs)
	} else {
		p("outputs:")
		for _, lt := range logTypes {
			p("  - id: %s", lt)
			p("    type: forward")
			p("    servers:")
			p("      - address: %q", e.recv[lt].Addr())
			p("    connect_timeout: 1s")
			p("    heartbeat_interval: 200ms")
			p("    retry_initial: 100ms")
			p("    retry_max: 1s")
		}
		p("routes:")
		for _, lt := range logTypes {
			p("  - match: %q", lt+".docker.*")
			p("    outputs: [%s]", lt)
		}
	}
	if err := os.WriteFile(e.cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if e.proc != nil && !e.proc.Exited() {
			e.proc.Kill()
		}
		if t.Failed() {
			e.dumpLog(40)
		}
	})
	return e
}

// start starts the agent and waits until its listeners accept.
func (e *env) start() time.Duration {
	e.t.Helper()
	p, err := agentproc.Start(agentBin, e.cfgPath, e.logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = p
	took, err := e.waitReady(10 * time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	return took
}

// waitReady polls the agent's listeners (forward TCP and socket, else the
// metrics endpoint) and returns how long after the process start they
// accepted.
func (e *env) waitReady(timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		if e.proc.Exited() {
			return 0, fmt.Errorf("agent exited at start:\n%s", tail(e.proc.Log(), 20))
		}
		ok := true
		if e.tcpAddr != "" {
			ok = canDial("tcp", e.tcpAddr) && canDial("unix", e.unixPath)
		} else {
			ok = canDial("tcp", e.metrics)
		}
		if ok {
			return time.Since(e.proc.StartTime()), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("agent not ready after %v:\n%s", timeout, tail(e.proc.Log(), 20))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func canDial(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ackArgs returns the loggen flags of a container with
// fluentd-request-ack=true: stdout only (-stderr-every 0), and tells the
// receivers so.
//
// Docker's driver calls Log from one goroutine per stream, and
// fluent-logger-golang locks the connection separately for the write and
// for the ack read (a read lock for both in the version of Docker 20.10),
// so with two streams one goroutine can read the other's ack: "message
// ack (X) doesn't match expected one (Y). Closing connection...", the
// event is resent. On Debian's Docker 20.10.24 this race then crashed
// dockerd (nil pointer in fwd.(*Reader).more under AckResp.DecodeMsg),
// killing every container. One stream per acked container avoids it.
func (e *env) ackArgs(s spec) []string {
	for _, c := range e.codec {
		c.stderrOverride.Store(s.containerName(), int64(0))
	}
	return []string{"-stderr-every", "0"}
}

// metric scrapes one series of the agent's /metrics (0 if absent).
func (e *env) metric(series string) float64 {
	text, err := agentproc.Scrape(e.metrics)
	if err != nil {
		return -1
	}
	v, _ := agentproc.Metric(text, series)
	return v
}

func (e *env) dumpLog(n int) {
	b, _ := os.ReadFile(e.logPath)
	e.t.Logf("agent log (last %d lines):\n%s", n, tail(string(b), n))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// expect is how many sequences each source must deliver: sources are
// "<container name>-<type>" with n sequences each.
type expect map[string]int

// add expects n sequences of every log type from container c.
func (x expect) add(c spec, n int) {
	for _, lt := range logTypes {
		x[c.containerName()+"-"+lt] = n
	}
}

// forType returns the part of x routed to log type lt.
func (x expect) forType(lt string) expect {
	out := expect{}
	for src, n := range x {
		if strings.HasSuffix(src, "-"+lt) {
			out[src] = n
		}
	}
	return out
}

func (x expect) total() int64 {
	var n int64
	for _, v := range x {
		n += int64(v)
	}
	return n
}

// waitDelivered waits until every receiver holds every expected sequence
// of its type, or timeout; it reports whether that happened.
func (e *env) waitDelivered(x expect, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for src, n := range x {
			if e.recv[srcType(src)].Distinct(src) < n {
				done = false
				break
			}
		}
		if done {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// srcType is the log type of a source "<container>-<type>".
func srcType(src string) string {
	return src[strings.LastIndexByte(src, '-')+1:]
}

// checkDelivered fails the test unless every expected sequence reached the
// receiver of its log type, no receiver got another type's source of this
// run, and every record passed checkCodec's checks. Sources for which
// lossy returns true may miss lines (the caller checks them). It logs
// per-type figures and returns the total duplicates.
func (e *env) checkDelivered(x expect, lossy func(src string) bool) int64 {
	e.t.Helper()
	var dups int64
	for _, lt := range logTypes {
		r, c := e.recv[lt], e.codec[lt]
		want := x.forType(lt)
		for src, n := range want {
			if lossy != nil && lossy(src) {
				continue
			}
			if miss := r.MissingCount(src, n); miss > 0 {
				e.t.Errorf("%s: %s: %d of %d sequences missing, first %v", lt, src, miss, n, r.Missing(src, n))
			}
		}
		for src := range r.Sources() {
			if !strings.HasSuffix(src, "-"+lt) {
				e.t.Errorf("%s receiver got source %s: wrong route", lt, src)
			} else if _, ok := want[src]; !ok && strings.HasPrefix(src, "sd"+runID+"-") {
				e.t.Errorf("%s receiver got unexpected source %s", lt, src)
			}
		}
		if p := c.problems(); p != "" {
			e.t.Errorf("%s receiver: %s", lt, p)
		}
		st := r.Stats()
		dups += st.Duplicates
		e.t.Logf("%s receiver: %d sources, %s, long lines verified %d", lt, len(want), st, c.longOK.Load())
	}
	return dups
}

// readProgress reads loggen's progress file (-1 if unreadable).
func readProgress(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return v
}

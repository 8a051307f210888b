package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/cri/crigen"
	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// criNamespaces are the two routes of the CRI scenario: each namespace's
// pods go to their own forward output and receiver (tag
// kube.{namespace}.{pod}.{container}, route kube.<ns>.**).
var criNamespaces = []string{"prod", "dev"}

// criEnv is the CRI scenario: a generated /var/log/pods tree, one receiver
// per namespace and the agent process with a cri input.
type criEnv struct {
	t       *testing.T
	root    string
	cfgPath string
	logPath string
	metrics string
	recv    map[string]*receiver.Server
	pods    []*criPod
	proc    *agentproc.Proc
}

// criPod is one generated container with the rate it logs at.
type criPod struct {
	c     *crigen.Container
	rate  float64 // lines per second while generating
	every int     // its automatic rotation (crigen RotateEvery)
}

func newCRIEnv(t *testing.T) *criEnv {
	t.Helper()
	if agentBin == "" {
		t.Skip("-short: the e2e tests build and run the agent")
	}
	dir := t.TempDir()
	e := &criEnv{
		t:       t,
		root:    filepath.Join(dir, "var", "log", "pods"),
		cfgPath: filepath.Join(dir, "agent.yml"),
		logPath: filepath.Join(dir, "agent.log"),
		metrics: agentproc.FreeAddr(t),
		recv:    map[string]*receiver.Server{},
	}
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("data_dir: %q", filepath.Join(dir, "data"))
	p("log_level: info")
	p("metrics_addr: %q", e.metrics)
	p("shutdown_grace: 10s")
	p("inputs:")
	p("  - id: pods")
	p("    type: cri")
	p("    root: %q", e.root)
	p("    tag: \"kube.{namespace}.{pod}.{container}\"")
	p("    poll_interval: 200ms")
	p("    checkpoint_interval: 500ms")
	p("    exclude_namespaces: [kube-system]")
	p("outputs:")
	for _, ns := range criNamespaces {
		s := receiver.New("127.0.0.1:0", receiver.Wire{}, nil)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		e.recv[ns] = s
		p("  - id: %s", ns)
		p("    type: forward")
		p("    servers:")
		p("      - address: %q", s.Addr())
		p("    max_in_flight: 4")
		p("    ack_timeout: 10s")
		p("    connect_timeout: 1s")
		p("    heartbeat_interval: 200ms")
		p("    retry_initial: 100ms")
		p("    retry_max: 1s")
		p("    buffer: {chunk_bytes: 256KiB, fsync_interval: 1s}")
	}
	p("routes:")
	for _, ns := range criNamespaces {
		p("  - match: \"kube.%s.**\"", ns)
		p("    outputs: [%s]", ns)
	}
	if err := os.WriteFile(e.cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if e.proc != nil && !e.proc.Exited() {
			e.proc.Kill()
		}
		if t.Failed() {
			out, _ := os.ReadFile(e.logPath)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			for _, l := range lines[max(0, len(lines)-60):] {
				t.Log("agent: " + l)
			}
		}
	})
	return e
}

// stopped runs f with p's automatic rotation off.
func (e *criEnv) stopped(p *criPod, f func() error) error {
	every := p.every
	p.c.SetRotateEvery(0)
	defer p.c.SetRotateEvery(every)
	return f()
}

// pod adds a container logging at rate lines/s.
func (e *criEnv) pod(o crigen.Options, rate float64) *criPod {
	e.t.Helper()
	c, err := crigen.New(e.root, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	p := &criPod{c: c, rate: rate, every: o.RotateEvery}
	e.pods = append(e.pods, p)
	return p
}

func (e *criEnv) start() {
	e.t.Helper()
	p, err := agentproc.Start(agentBin, e.cfgPath, e.logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = p
}

func (e *criEnv) term() {
	e.t.Helper()
	code, _, err := e.proc.Term(30 * time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	if code != 0 {
		e.t.Fatalf("agent exited %d after SIGTERM", code)
	}
}

// generate runs every pod (but those in skip) at its rate for d.
func (e *criEnv) generate(ctx context.Context, d time.Duration, skip ...*criPod) {
	e.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(e.pods))
	for _, p := range e.pods {
		if contains(skipNames(skip), p.c.Src()) || strings.HasPrefix(p.c.Namespace(), "kube-") {
			continue
		}
		wg.Go(func() {
			if err := p.c.Run(ctx, int(p.rate*d.Seconds()), p.rate); err != nil && ctx.Err() == nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Error(err)
	}
}

func skipNames(ps []*criPod) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.c.Src())
	}
	return s
}

// want is, per receiver, the lines it must hold: namespace → src → lines.
func (e *criEnv) want() map[string]map[string]int64 {
	w := map[string]map[string]int64{}
	for _, ns := range criNamespaces {
		w[ns] = map[string]int64{}
	}
	for _, p := range e.pods {
		if m, ok := w[p.c.Namespace()]; ok {
			m[p.c.Src()] = p.c.Seq()
		}
	}
	return w
}

// waitAll waits until every receiver holds every line of its namespace.
func (e *criEnv) waitAll(timeout time.Duration) bool {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for ns, srcs := range e.want() {
		var n int64
		for _, k := range srcs {
			n += k
		}
		for !e.recv[ns].WaitCount(n, 200*time.Millisecond) {
			if e.proc.Exited() {
				e.t.Errorf("agent exited (%v) while %s waited for %d lines", e.proc.Usage(), ns, n)
				return false
			}
			if time.Now().After(deadline) {
				return false
			}
		}
	}
	return true
}

// verify checks every line of every source at its namespace's receiver,
// and nothing anywhere else.
func (e *criEnv) verify() {
	e.t.Helper()
	for ns, srcs := range e.want() {
		r := e.recv[ns]
		var total int64
		for src, n := range srcs {
			total += n
			if miss := r.MissingCount(src, int(n)); miss > 0 {
				e.t.Errorf("%s: %s: %d of %d lines missing, first %v", ns, src, miss, n, r.Missing(src, int(n)))
			}
		}
		st := r.Stats()
		if st.Distinct != total || st.Unkeyed != 0 {
			e.t.Errorf("%s: receiver holds %d distinct keys (%d unkeyed), want exactly %d; sources %v", ns, st.Distinct, st.Unkeyed, total, r.Sources())
		}
		for src := range r.Sources() {
			if _, ok := srcs[src]; !ok {
				e.t.Errorf("%s: lines of %s were routed here", ns, src)
			}
		}
		if errs := r.Errors(); len(errs) > 0 {
			e.t.Errorf("%s: receiver errors: %v", ns, errs)
		}
	}
}

func (e *criEnv) dups() map[string]int64 {
	d := map[string]int64{}
	for ns, r := range e.recv {
		d[ns] = r.Duplicates()
	}
	return d
}

// TestE2E_CRI: the real agent with a cri input on a /var/log/pods tree
// that behaves as the kubelet and containerd do: several pods and
// containers in two namespaces (and kube-system, excluded), lines of 40 KB
// split by the runtime into 16 KiB P pieces and a final F, stdout and
// stderr interleaved, kubelet rotation (rename to 0.log.<timestamp>, gzip
// of the older rotation, a few lines written to the renamed file before
// the reopen) while running, a SIGKILL and restart, then (after SIGTERM)
// a rotation, a container restart and a new pod while the agent is
// stopped. Every line must arrive at its namespace's receiver; duplicates
// may only come from the kill.
func TestE2E_CRI(t *testing.T) {
	e := newCRIEnv(t)
	rot := func(o crigen.Options, every int) crigen.Options {
		o.RotateEvery, o.MaxFiles, o.LateLines = every, 5, 3
		return o
	}
	web := e.pod(rot(crigen.Options{Namespace: "prod", Pod: "web-7d9f8b6c5-x2x4z", Name: "nginx", Stream: "both", Payload: 300}, 1500), 600)
	e.pod(crigen.Options{Namespace: "prod", Pod: "web-7d9f8b6c5-x2x4z", Name: "dumper", Payload: 40 << 10}, 25)
	api := e.pod(rot(crigen.Options{Namespace: "prod", Pod: "api-0", Name: "api", Payload: 40 << 10, Stream: "both", Zone: time.FixedZone("JST", 9*3600)}, 60), 25)
	job := e.pod(rot(crigen.Options{Namespace: "dev", Pod: "job-28391-abcde", Name: "worker", Payload: 200}, 1000), 500)
	e.pod(crigen.Options{Namespace: "kube-system", Pod: "coredns-1", Name: "coredns"}, 0)
	if err := e.pods[len(e.pods)-1].c.Write(100); err != nil { // never read
		t.Fatal(err)
	}
	// Before the first start: lines, no rotation (the kubelet would gzip
	// all but the newest rotation before the agent could read them).
	for _, p := range e.pods[:4] {
		if err := e.stopped(p, func() error { return p.c.Write(200) }); err != nil {
			t.Fatal(err)
		}
	}

	// Phase 1: running, with rotations and a new pod; a SIGKILL midway.
	e.start()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.generate(ctx, 8*time.Second)
	}()
	time.Sleep(2 * time.Second)
	late := e.pod(crigen.Options{Namespace: "dev", Pod: "late-1", Name: "app", Payload: 20 << 10, Stream: "both"}, 0)
	if err := late.c.Write(100); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	e.proc.Kill()
	t.Logf("SIGKILL at +4s: prod %d, dev %d lines delivered", e.recv["prod"].Count(), e.recv["dev"].Count())
	time.Sleep(300 * time.Millisecond)
	e.start()
	<-done
	if !e.waitAll(2 * time.Minute) {
		e.verify()
		t.Fatal("phase 1: not every line delivered")
	}
	afterKill := e.dups()
	t.Logf("phase 1: rotations while running web %d, api %d, job %d; duplicates after the kill %v",
		web.c.Rotations(), api.c.Rotations(), job.c.Rotations(), afterKill)
	e.term()

	// Phase 2: while stopped, lines, one kubelet rotation, a container
	// restart and a new pod.
	// (Exactly one rotation each: a second one would gzip the first.)
	for _, p := range e.pods[:4] {
		err := e.stopped(p, func() error {
			if err := p.c.Write(150); err != nil {
				return err
			}
			if p == web || p == api || p == job {
				if err := p.c.Rotate(); err != nil {
					return err
				}
			}
			if p == job {
				if err := p.c.Write(100); err != nil {
					return err
				}
				if err := p.c.Restart(); err != nil { // 1.log
					return err
				}
			}
			return p.c.Write(120)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	fresh := e.pod(crigen.Options{Namespace: "prod", Pod: "new-0", Name: "app"}, 100)
	if err := fresh.c.Write(120); err != nil {
		t.Fatal(err)
	}
	e.start()
	// The agent reads what was written while it was stopped before the
	// pods log on: their first lines rotate api and web again at once, and
	// that rotation gzips the one made while stopped, which the kubelet
	// does only every 10 s (a file compressed before it was read is the
	// documented loss; the test is not about it).
	if !e.waitAll(2 * time.Minute) {
		e.verify()
		t.Fatal("phase 2: the lines written while stopped were not delivered")
	}
	e.generate(ctx, 3*time.Second)
	if !e.waitAll(2 * time.Minute) {
		e.verify()
		t.Fatal("phase 2: not every line delivered")
	}
	text, err := agentproc.WaitMetrics(e.metrics, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // late duplicates, if any
	e.term()
	e.verify()

	final := e.dups()
	for _, ns := range criNamespaces {
		if final[ns] != afterKill[ns] {
			t.Errorf("%s: %d duplicates after the SIGTERM restart (only the kill may cause them)", ns, final[ns]-afterKill[ns])
		}
	}
	// Duplicates from one kill: at most what the output had in flight
	// (4 chunks of 256 KiB), one fsync interval and one checkpoint
	// interval of lines, and one 256 KiB read turn per file.
	for _, ns := range criNamespaces {
		var rate, perChunk float64
		for _, p := range e.pods {
			if p.c.Namespace() == ns {
				rate += p.rate
				perChunk = max(perChunk, float64(256<<10)/float64(p.c.PayloadBytes(0))+1)
			}
		}
		bound := int64(4*perChunk + rate*1.5 + float64(len(e.pods))*float64(256<<10)/200)
		if afterKill[ns] > bound {
			t.Errorf("%s: %d duplicates from one kill exceed the bound %d", ns, afterKill[ns], bound)
		}
	}
	for _, m := range []string{"sluice_input_files_lost_bytes_total", "sluice_input_parse_errors_total", "sluice_events_unrouted_total"} {
		if v := agentproc.MetricSum(text, m); v != 0 {
			t.Errorf("%s = %v", m, v)
		}
	}
	var total int64
	for _, srcs := range e.want() {
		for _, n := range srcs {
			total += n
		}
	}
	t.Logf("%d lines in %d containers (2 namespaces routed, kube-system excluded), all delivered; joins %v, truncated %v, rotations seen since restart %v; duplicates %v (all from the kill)",
		total, len(e.pods)-1, agentproc.MetricSum(text, "sluice_input_partial_joins_total"),
		agentproc.MetricSum(text, "sluice_input_truncated_lines_total"), agentproc.MetricSum(text, "sluice_input_rotations_total"), final)
}

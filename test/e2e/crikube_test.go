package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/inputs/cri/crigen"
	"github.com/sluice-agent/sluice/internal/kube/kubetest"
	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// The CRI + Kubernetes metadata scenario (TestE2E_CRIKube).
const (
	ckNode      = "node-e2e"
	ckTypeLabel = "logging.sluice.dev/type"
	ckToken     = "e2e-service-account-token"
	ckWait      = 5 * time.Second // the input's metadata_wait
	ckNometa    = "nometa"        // the receiver of lines whose pod is not known
)

// ckOutputs are the receivers: one per value of the pod label
// logging.sluice.dev/type, and the route of tag kube.unknown.** (the label
// renders "unknown" while the pod is not known to the agent).
var ckOutputs = []string{"audit", "app", ckNometa}

// Per-line delivery flags.
const (
	ckPath uint8 = 1 << iota // the kubernetes map has the path's fields (and host) only
	ckFull                   // the kubernetes map has the API's metadata
	ckNS                     // kubernetes_namespace (the namespace's labels) is there
)

// ckKind is what a span of a pod's lines must carry.
type ckKind int

const (
	spanFull     ckKind = iota // the API's metadata and the namespace's labels
	spanPath                   // path metadata only, no namespace labels (nothing known)
	spanSwitch                 // path metadata, then (from some line on) the API's; namespace labels or not
	spanSwitchNS               // path metadata, then the API's; namespace labels on every line
)

func (k ckKind) String() string {
	return [...]string{"full", "path-only", "path-then-full", "path-then-full (namespace known)"}[k]
}

// ckSpan: lines [from, to) of a pod must be kind.
type ckSpan struct {
	from, to int64
	kind     ckKind
	phase    string
}

// ckPod is one generated container and the pod the stand-in serves for
// it.
type ckPod struct {
	c     *crigen.Container
	rate  float64
	every int // crigen RotateEvery
	typ   string
	// full and path are the record's "kubernetes" map with the API's
	// metadata and with the path's only; nsMeta its kubernetes_namespace.
	full, path, nsMeta map[string]any

	mu sync.Mutex // the generator; held around every use of c that writes

	// Under ckEnv.mu:
	read     bool // lines of it are expected (false: never read, or not yet)
	spans    []ckSpan
	last     int64 // end of the last span
	count    []uint8
	flags    []uint8
	distinct int64
	firstAt  time.Time
}

func (p *ckPod) do(f func(c *crigen.Container) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return f(p.c)
}

func (p *ckPod) seq() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.Seq()
}

// stopped runs f with the automatic rotation off (the agent is stopped:
// a second rotation would gzip the first one before it was read).
func (p *ckPod) stopped(f func(c *crigen.Container) error) error {
	return p.do(func(c *crigen.Container) error {
		c.SetRotateEvery(0)
		defer c.SetRotateEvery(p.every)
		return f(c)
	})
}

type ckEnv struct {
	t       *testing.T
	root    string
	cfgPath string
	logPath string
	metrics string
	api     *kubetest.Server
	recv    map[string]*receiver.Server
	proc    *agentproc.Proc

	mu    sync.Mutex
	pods  []*ckPod
	bySrc map[string]*ckPod
	bad   []string
	nbad  int
}

func (e *ckEnv) failf(format string, a ...any) { // with mu held
	e.nbad++
	if len(e.bad) < 20 {
		e.bad = append(e.bad, fmt.Sprintf(format, a...))
	}
}

func newCKEnv(t *testing.T) *ckEnv {
	t.Helper()
	if agentBin == "" {
		t.Skip("-short: the e2e tests build and run the agent")
	}
	dir := t.TempDir()
	e := &ckEnv{
		t:       t,
		root:    filepath.Join(dir, "var", "log", "pods"),
		cfgPath: filepath.Join(dir, "agent.yml"),
		logPath: filepath.Join(dir, "agent.log"),
		metrics: agentproc.FreeAddr(t),
		recv:    map[string]*receiver.Server{},
		bySrc:   map[string]*ckPod{},
	}
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	api, err := kubetest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	api.SetToken(ckToken)
	// No bookmarks: sluice_kube_watch_events_total{resource="pods"} then
	// counts pod events only, which tells the test when the agent's cache
	// has a pod (the client's bookmark handling has its own tests).
	api.SetBookmarkInterval(0)
	e.api = api
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(ckToken+"\n"), 0o600); err != nil {
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
	p("    tag: \"kube.{label:%s}.{namespace}.{pod}.{container}\"", ckTypeLabel)
	p("    poll_interval: 200ms")
	p("    checkpoint_interval: 500ms")
	p("    exclude_namespaces: [kube-system]")
	p("    kubernetes:")
	p("      api_server: %q", api.URL())
	p("      node_name: %s", ckNode)
	p("      token_file: %q", tokenFile)
	p("      metadata_wait: %s", ckWait)
	p("outputs:")
	for _, name := range ckOutputs {
		s := receiver.New("127.0.0.1:0", receiver.Wire{OnEvent: func(b *receiver.Batch, ns int64, rec []byte) {
			e.observe(name, b, ns, rec)
		}}, nil)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		e.recv[name] = s
		p("  - id: %s", name)
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
	for _, name := range ckOutputs {
		v := name
		if name == ckNometa {
			v = "unknown"
		}
		p("  - match: \"kube.%s.**\"", v)
		p("    outputs: [%s]", name)
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

// ckUID is a UUID-shaped uid for a pod.
func ckUID(ns, pod string) string {
	h := fmt.Sprintf("%x", sha256.Sum256([]byte("uid/"+ns+"/"+pod)))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ckNamespaces are the namespaces the stand-in serves, with their labels.
var ckNamespaces = map[string]map[string]string{
	"prod":        {"env": "production", "team": "shop"},
	"dev":         {"env": "development"},
	"kube-system": {},
}

// ckSpec is a pod of the scenario.
type ckSpec struct {
	o           crigen.Options
	rate        float64
	typ         string // the logging.sluice.dev/type label ("" : none)
	labels      map[string]string
	annotations map[string]string
	owner       *kubetest.Owner
	wantOwner   map[string]any // the record's kubernetes.owner (nil: none)
	image       string
	// others are the pod's other containers (name: image).
	others map[string]string
	// noAPI: the stand-in does not get the pod here (the test adds it, or
	// another container of the pod did).
	noAPI bool
}

func ckImageID(image, uid string) string { return "registry.example/" + image + "@sha256:" + uid[:8] }

// kubePod is what the stand-in serves for s.
func (s *ckSpec) kubePod() kubetest.Pod {
	labels := map[string]string{}
	for k, v := range s.labels {
		labels[k] = v
	}
	if s.typ != "" {
		labels[ckTypeLabel] = s.typ
	}
	sum := sha256.Sum256([]byte(s.o.Namespace + "/" + s.o.Pod))
	ip := fmt.Sprintf("10.244.%d.%d", sum[0], sum[1])
	ctrs := []kubetest.Container{{Name: s.o.Name, Image: s.image, ImageID: ckImageID(s.image, s.o.UID)}}
	for _, name := range slices.Sorted(maps.Keys(s.others)) {
		ctrs = append(ctrs, kubetest.Container{Name: name, Image: s.others[name], ImageID: ckImageID(s.others[name], s.o.UID)})
	}
	ctrs = append(ctrs, kubetest.Container{Name: "sidecar", Image: "busybox:1.36"}) // no logs here
	return kubetest.Pod{
		Namespace: s.o.Namespace, Name: s.o.Pod, UID: s.o.UID, Node: ckNode, IP: ip,
		Labels: labels, Annotations: s.annotations, Owner: s.owner, Containers: ctrs,
	}
}

// pod creates the pod's log directory (after the stand-in has it, as the
// kubelet does, unless s.noAPI) and its expectations.
func (e *ckEnv) pod(s ckSpec) *ckPod {
	e.t.Helper()
	s.o.UID = ckUID(s.o.Namespace, s.o.Pod)
	kp := s.kubePod()
	if !s.noAPI {
		e.api.AddPod(kp)
	}
	c, err := crigen.New(e.root, s.o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	path := map[string]any{
		"namespace_name": c.Namespace(), "pod_name": c.Pod(), "pod_id": c.UID(),
		"container_name": c.Name(), "host": ckNode,
	}
	full := map[string]any{}
	for k, v := range path {
		full[k] = v
	}
	full["pod_ip"] = kp.IP
	full["container_image"] = kp.Containers[0].Image
	full["container_hash"] = kp.Containers[0].ImageID
	full["labels"] = anyMap(kp.Labels)
	if len(kp.Annotations) > 0 {
		full["annotations"] = anyMap(kp.Annotations)
	}
	if s.wantOwner != nil {
		full["owner"] = s.wantOwner
	}
	nsLabels := map[string]string{"kubernetes.io/metadata.name": c.Namespace()}
	for k, v := range ckNamespaces[c.Namespace()] {
		nsLabels[k] = v
	}
	p := &ckPod{
		c: c, rate: s.rate, every: s.o.RotateEvery, typ: s.typ, full: full, path: path,
		nsMeta: map[string]any{"labels": anyMap(nsLabels)},
		read:   !strings.HasPrefix(c.Namespace(), "kube-") && s.annotations["sluice.dev/exclude"] != "true",
	}
	e.mu.Lock()
	e.pods = append(e.pods, p)
	e.bySrc[c.Src()] = p
	e.mu.Unlock()
	return p
}

func anyMap(m map[string]string) map[string]any {
	a := make(map[string]any, len(m))
	for k, v := range m {
		a[k] = v
	}
	return a
}

// ckRecord is the part of a delivered record the test checks.
type ckRecord struct {
	log, stream []byte
	kube, kns   any
	other       []string
}

func ckDecode(rec []byte) (r ckRecord, err error) {
	n, b, err := msgp.ReadMapHeaderBytes(rec)
	for i := uint32(0); i < n && err == nil; i++ {
		var k []byte
		if k, b, err = msgp.ReadMapKeyZC(b); err != nil {
			break
		}
		switch string(k) {
		case "log":
			r.log, b, err = msgp.ReadStringZC(b)
		case "stream":
			r.stream, b, err = msgp.ReadStringZC(b)
		case "kubernetes":
			r.kube, b, err = msgp.ReadIntfBytes(b)
		case "kubernetes_namespace":
			r.kns, b, err = msgp.ReadIntfBytes(b)
		default:
			r.other = append(r.other, string(k))
			b, err = msgp.Skip(b)
		}
	}
	return r, err
}

// observe checks one record received by output out: its line, its
// metadata (the API's or the path's), that the route matches it, and
// counts it.
func (e *ckEnv) observe(out string, b *receiver.Batch, ns int64, rec []byte) {
	src, seq, ok := receiver.RecordKey(rec)
	if !ok {
		b.AddUnkeyed()
		return
	}
	b.Add(src, seq, ns)
	r, err := ckDecode(rec)
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.bySrc[string(src)]
	switch {
	case err != nil:
		e.failf("%s: %s seq %d: record: %v", out, src, seq, err)
		return
	case p == nil:
		e.failf("%s: a line of unknown source %q", out, src)
		return
	case !p.read:
		e.failf("%s: %s seq %d was read (the pod is excluded)", out, src, seq)
	}
	var f uint8
	switch {
	case reflect.DeepEqual(r.kube, p.full):
		f = ckFull
	case reflect.DeepEqual(r.kube, p.path):
		f = ckPath
	default: // counted with no flag: a wrong line in every span
		e.failf("%s: %s seq %d: kubernetes %v\n  want %v\n  or (path only) %v", out, src, seq, r.kube, p.full, p.path)
	}
	if r.kns != nil {
		f |= ckNS
		if !reflect.DeepEqual(r.kns, p.nsMeta) {
			e.failf("%s: %s seq %d: kubernetes_namespace %v, want %v", out, src, seq, r.kns, p.nsMeta)
		}
	}
	want := ckNometa
	if f&ckFull != 0 {
		want = p.typ
	}
	if f&(ckFull|ckPath) != 0 && out != want {
		e.failf("%s seq %d (flags %b) was routed to %s, want %s", src, seq, f, out, want)
	}
	if string(r.log) != p.c.Payload(seq) {
		e.failf("%s: %s seq %d: log of %d bytes differs from the %d written", out, src, seq, len(r.log), p.c.PayloadBytes(seq))
	}
	if string(r.stream) != p.c.StreamOf(seq) {
		e.failf("%s: %s seq %d: stream %q, want %q", out, src, seq, r.stream, p.c.StreamOf(seq))
	}
	if len(r.other) > 0 {
		e.failf("%s: %s seq %d: unexpected record keys %v", out, src, seq, r.other)
	}
	if seq < 0 || seq > 1<<22 {
		e.failf("%s: %s: seq %d out of range", out, src, seq)
		return
	}
	for int64(len(p.count)) <= seq {
		p.count = append(p.count, 0)
		p.flags = append(p.flags, 0)
	}
	if p.count[seq] < 255 {
		p.count[seq]++
	}
	if p.count[seq] == 1 {
		p.flags[seq] = f
		p.distinct++
		if p.firstAt.IsZero() {
			p.firstAt = time.Now()
		}
	} else if (p.flags[seq]^f)&(ckFull|ckPath) != 0 {
		e.failf("%s seq %d: delivered again with other metadata (flags %b then %b)", src, seq, p.flags[seq], f)
	}
}

func (e *ckEnv) snapshot() []*ckPod {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*ckPod(nil), e.pods...)
}

func (e *ckEnv) start() {
	e.t.Helper()
	p, err := agentproc.Start(agentBin, e.cfgPath, e.logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = p
}

func (e *ckEnv) term() {
	e.t.Helper()
	code, _, err := e.proc.Term(30 * time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	if code != 0 {
		e.t.Fatalf("agent exited %d after SIGTERM", code)
	}
}

// generate runs pods at their rates until ctx is done; the returned
// function waits for them.
func (e *ckEnv) generate(ctx context.Context, pods ...*ckPod) (wait func()) {
	var wg sync.WaitGroup
	for _, p := range pods {
		if !p.read || p.rate == 0 {
			continue
		}
		wg.Go(func() {
			start, written := time.Now(), 0
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				due := int(time.Since(start).Seconds() * p.rate)
				if err := p.do(func(c *crigen.Container) error { return c.Write(due - written) }); err != nil {
					e.t.Error(err)
					return
				}
				written = due
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	return wg.Wait
}

// waitAll waits until every line of every pod that is read was delivered.
func (e *ckEnv) waitAll(phase string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var short []string
		for _, p := range e.snapshot() {
			n := p.seq()
			e.mu.Lock()
			got, read := p.distinct, p.read
			e.mu.Unlock()
			if read && got < n {
				short = append(short, fmt.Sprintf("%s %d/%d", p.c.Src(), got, n))
			}
		}
		if len(short) == 0 {
			return
		}
		e.mu.Lock()
		bad := e.nbad
		e.mu.Unlock()
		if bad > 0 {
			e.verify()
			e.t.Fatalf("%s: wrong lines received", phase)
		}
		if e.proc.Exited() {
			e.verify()
			e.t.Fatalf("%s: agent exited (%v) while waiting for %v", phase, e.proc.Usage(), short)
		}
		if time.Now().After(deadline) {
			e.verify()
			e.t.Fatalf("%s: not every line delivered within %v: %v", phase, timeout, short)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mark closes a span of every pod that is read: its lines up to now must
// be kind (or the kind given for it in except).
func (e *ckEnv) mark(phase string, kind ckKind, except map[*ckPod]ckKind) {
	for _, p := range e.snapshot() {
		n := p.seq()
		e.mu.Lock()
		if p.read && n > p.last {
			k := kind
			if x, ok := except[p]; ok {
				k = x
			}
			p.spans = append(p.spans, ckSpan{from: p.last, to: n, kind: k, phase: phase})
			p.last = n
		}
		e.mu.Unlock()
	}
}

// dups is the number of lines delivered more than once.
func (e *ckEnv) dups() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var d int64
	for _, p := range e.pods {
		for _, c := range p.count {
			if c > 1 {
				d += int64(c - 1)
			}
		}
	}
	return d
}

// pathLines counts the lines delivered with path metadata only, per
// phase of their span.
func (e *ckEnv) pathLines() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[string]int{}
	for _, p := range e.pods {
		for _, s := range p.spans {
			for q := s.from; q < s.to && q < int64(len(p.flags)); q++ {
				if p.flags[q]&ckPath != 0 {
					m[s.phase]++
				}
			}
		}
	}
	return m
}

// metricsNow scrapes the agent and checks the counters that must stay 0.
func (e *ckEnv) metricsNow(phase string) string {
	e.t.Helper()
	text, err := agentproc.WaitMetrics(e.metrics, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range []string{"sluice_input_files_lost_bytes_total", "sluice_input_parse_errors_total", "sluice_events_unrouted_total"} {
		if v := agentproc.MetricSum(text, m); v != 0 {
			e.t.Errorf("%s: %s = %v", phase, m, v)
		}
	}
	return text
}

// kubeMetric is a sluice_kube_* counter of resource (pods or namespaces).
func (e *ckEnv) kubeMetric(name, resource string) float64 {
	text, err := agentproc.Scrape(e.metrics)
	if err != nil {
		return -1
	}
	return agentproc.MetricSum(text, name, `resource="`+resource+`"`)
}

// waitKube waits until cond holds for the agent's kube metrics.
func (e *ckEnv) waitKube(what string, timeout time.Duration, cond func() bool) time.Duration {
	e.t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > timeout || e.proc.Exited() {
			e.t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0)
}

// verify checks every span of every pod and the receivers.
func (e *ckEnv) verify() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, msg := range e.bad {
		e.t.Error(msg)
	}
	if e.nbad > len(e.bad) {
		e.t.Errorf("... and %d more record errors", e.nbad-len(e.bad))
	}
	for _, p := range e.pods {
		src := p.c.Src()
		if !p.read {
			if p.distinct != 0 {
				e.t.Errorf("%s: %d lines delivered, want none (excluded)", src, p.distinct)
			}
			continue
		}
		var missing []int64
		for _, s := range p.spans {
			lastPath, firstFull := int64(-1), int64(-1)
			var wrong []int64
			for q := s.from; q < s.to; q++ {
				if q >= int64(len(p.count)) || p.count[q] == 0 {
					if len(missing) < 10 {
						missing = append(missing, q)
					}
					continue
				}
				f := p.flags[q]
				ok := true
				switch s.kind {
				case spanFull:
					ok = f == ckFull|ckNS
				case spanPath:
					ok = f == ckPath
				case spanSwitchNS:
					ok = f&ckNS != 0
				}
				if !ok && len(wrong) < 5 {
					wrong = append(wrong, q)
				}
				if f&ckPath != 0 {
					lastPath = q
				} else if firstFull < 0 {
					firstFull = q
				}
			}
			if len(wrong) > 0 {
				e.t.Errorf("%s: %s lines [%d,%d) must be %s: lines %v are not (flags %b)", src, s.phase, s.from, s.to, s.kind, wrong, p.flags[wrong[0]])
			}
			if (s.kind == spanSwitch || s.kind == spanSwitchNS) && firstFull >= 0 && lastPath > firstFull {
				e.t.Errorf("%s: %s lines [%d,%d): line %d has path metadata only after line %d had the API's", src, s.phase, s.from, s.to, lastPath, firstFull)
			}
		}
		if len(missing) > 0 {
			e.t.Errorf("%s: lines missing, first %v", src, missing)
		}
		if n := p.c.Seq(); p.last != n || p.distinct != n {
			e.t.Errorf("%s: %d lines written, %d in spans, %d delivered", src, n, p.last, p.distinct)
		}
	}
	for name, r := range e.recv {
		if errs := r.Errors(); len(errs) > 0 {
			e.t.Errorf("%s: receiver errors: %v", name, errs)
		}
		if st := r.Stats(); st.Unkeyed != 0 {
			e.t.Errorf("%s: %d lines without a key", name, st.Unkeyed)
		}
	}
}

// TestE2E_CRIKube: the real agent with a cri input whose kubernetes
// section points at the API stand-in (internal/kube/kubetest: list and
// watch of pods and namespaces as the API server serves them, a bearer
// token), on a /var/log/pods tree that behaves as the kubelet and
// containerd do (P/F fragments of 40 KB lines, kubelet rotation while
// running and while stopped, a container restart, pods appearing). Lines
// are routed by the pod label logging.sluice.dev/type through the tag
// (kube.{label:logging.sluice.dev/type}...: routes match tags, and a
// route's field condition reads top-level record fields only, not
// kubernetes.labels); lines of a pod the agent does not know render
// "unknown" and go to a third receiver. Every line must arrive exactly
// once (duplicates only from the SIGKILL), whole, at the receiver of its
// label with the pod's metadata (labels, annotations, owner, node, image,
// namespace labels), or, where the documentation says the pod cannot be
// known, at the third receiver with the path's metadata:
//
//  1. API up: start, new pod (added to the API before its log directory,
//     as the kubelet does), SIGKILL and restart: every line has the API's
//     metadata.
//  2. API stopped while the agent runs: known pods keep their metadata;
//     a pod created meanwhile waits metadata_wait for its metadata (per
//     pod; the others are read meanwhile), then is read with the path's
//     metadata, and enriched once the watch resumes.
//  3. API stopped, agent restarted: it waits metadata_wait, then reads
//     with the path's metadata (no namespace labels either; a pod
//     excluded by annotation is read too, as documented), and enriches
//     once the API returns.
//  4. API up, agent stopped: lines, a rotation, a container restart and
//     a new pod while stopped; all enriched from the first line.
func TestE2E_CRIKube(t *testing.T) {
	e := newCKEnv(t)
	for ns, labels := range ckNamespaces {
		e.api.AddNamespace(kubetest.Namespace{Name: ns, Labels: labels})
	}
	rot := func(o crigen.Options, every int) crigen.Options {
		o.RotateEvery, o.MaxFiles, o.LateLines = every, 5, 3
		return o
	}
	deploy := func(name, hash string) (*kubetest.Owner, map[string]any) {
		return &kubetest.Owner{Kind: "ReplicaSet", Name: name + "-" + hash}, map[string]any{"kind": "Deployment", "name": name}
	}
	webOwner, webWant := deploy("web", "7d9f8b6c5")
	webLabels := map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5"}
	web := e.pod(ckSpec{o: rot(crigen.Options{Namespace: "prod", Pod: "web-7d9f8b6c5-x2x4z", Name: "nginx", Stream: "both", Payload: 300}, 1500),
		rate: 600, typ: "app", labels: webLabels, annotations: map[string]string{"prometheus.io/scrape": "true"},
		owner: webOwner, wantOwner: webWant, image: "nginx:1.27", others: map[string]string{"dumper": "dumper:2"}})
	e.pod(ckSpec{o: crigen.Options{Namespace: "prod", Pod: "web-7d9f8b6c5-x2x4z", Name: "dumper", Payload: 40 << 10},
		rate: 25, typ: "app", labels: webLabels, annotations: map[string]string{"prometheus.io/scrape": "true"},
		owner: webOwner, wantOwner: webWant, image: "dumper:2", others: map[string]string{"nginx": "nginx:1.27"}, noAPI: true})
	api := e.pod(ckSpec{o: rot(crigen.Options{Namespace: "prod", Pod: "api-0", Name: "api", Payload: 40 << 10, Stream: "both", Zone: time.FixedZone("JST", 9*3600)}, 60),
		rate: 25, typ: "audit", labels: map[string]string{"app": "api", "apps.kubernetes.io/pod-index": "0"},
		owner: &kubetest.Owner{Kind: "StatefulSet", Name: "api"}, wantOwner: map[string]any{"kind": "StatefulSet", "name": "api"}, image: "api:3.1"})
	job := e.pod(ckSpec{o: rot(crigen.Options{Namespace: "dev", Pod: "job-28391-abcde", Name: "worker", Payload: 200}, 1000),
		rate: 500, typ: "app", labels: map[string]string{"job-name": "job-28391"},
		owner: &kubetest.Owner{APIVersion: "batch/v1", Kind: "Job", Name: "job-28391"}, wantOwner: map[string]any{"kind": "Job", "name": "job-28391"}, image: "worker:1"})
	e.pod(ckSpec{o: crigen.Options{Namespace: "dev", Pod: "auditd-x7k2p", Name: "auditd", Payload: 1000, Stream: "stderr"},
		rate: 100, typ: "audit", labels: map[string]string{"app": "auditd"},
		owner: &kubetest.Owner{Kind: "DaemonSet", Name: "auditd"}, wantOwner: map[string]any{"kind": "DaemonSet", "name": "auditd"}, image: "auditd:0.9"})
	skip := e.pod(ckSpec{o: crigen.Options{Namespace: "prod", Pod: "noisy-0", Name: "app"},
		typ: "app", annotations: map[string]string{"sluice.dev/exclude": "true"}, image: "noisy:1"})
	coredns := e.pod(ckSpec{o: crigen.Options{Namespace: "kube-system", Pod: "coredns-1", Name: "coredns"},
		typ: "app", image: "coredns:1.11"})
	for _, p := range []*ckPod{skip, coredns} {
		if err := p.do(func(c *crigen.Container) error { return c.Write(100) }); err != nil {
			t.Fatal(err)
		}
	}
	// Before the first start: lines, no rotation.
	for _, p := range e.snapshot() {
		if p.rate > 0 {
			if err := p.stopped(func(c *crigen.Container) error { return c.Write(200) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	podEvents := func() float64 { return e.kubeMetric("sluice_kube_watch_events_total", "pods") }
	podLists := func() float64 { return e.kubeMetric("sluice_kube_lists_total", "pods") }

	// Phase 1: API up; a new pod; a SIGKILL midway.
	e.start()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	wait := e.generate(ctx, e.snapshot()...)
	time.Sleep(2 * time.Second)
	ev0 := podEvents()
	if ev0 < 0 {
		t.Fatal("phase 1: the agent's metrics do not answer")
	}
	lateSpec := ckSpec{o: crigen.Options{Namespace: "dev", Pod: "late-1", Name: "app", Payload: 20 << 10, Stream: "both"},
		rate: 20, typ: "audit", labels: map[string]string{"app": "late"}, image: "late:1", noAPI: true}
	e.api.AddPod(lateSpec.kubePod0())
	e.waitKube("phase 1: the watch delivers the new pod", 30*time.Second, func() bool { return podEvents() > ev0 })
	time.Sleep(100 * time.Millisecond) // the event is counted before it is applied
	late := e.pod(lateSpec)
	waitLate := e.generate(ctx, late)
	time.Sleep(2 * time.Second)
	e.proc.Kill()
	t.Logf("phase 1: SIGKILL at +4s")
	time.Sleep(300 * time.Millisecond)
	e.start()
	wait()
	waitLate()
	cancel()
	e.waitAll("phase 1", 2*time.Minute)
	e.mark("1 API up, SIGKILL", spanFull, nil)
	afterKill := e.dups()
	t.Logf("phase 1: rotations web %d, api %d, job %d; duplicates after the kill %d", web.c.Rotations(), api.c.Rotations(), job.c.Rotations(), afterKill)

	// Phase 2: the API goes away while the agent runs, and a pod is
	// created meanwhile.
	ctx, cancel = context.WithCancel(context.Background())
	wait = e.generate(ctx, e.snapshot()...)
	time.Sleep(time.Second)
	e.api.Stop()
	downAt := time.Now()
	downSpec := ckSpec{o: crigen.Options{Namespace: "prod", Pod: "audit-gw-5f6d7c8b9-q8w7e", Name: "gw", Payload: 20 << 10},
		rate: 30, typ: "audit", labels: map[string]string{"app": "audit-gw"},
		owner: &kubetest.Owner{Kind: "ReplicaSet", Name: "audit-gw-5f6d7c8b9"}, wantOwner: map[string]any{"kind": "Deployment", "name": "audit-gw"},
		image: "audit-gw:5", noAPI: true}
	e.api.AddPod(downSpec.kubePod0()) // stored; no watch is open
	time.Sleep(500 * time.Millisecond)
	down := e.pod(downSpec)
	createdAt := time.Now()
	waitDown := e.generate(ctx, down)
	for {
		e.mu.Lock()
		n, first := down.distinct, down.firstAt
		e.mu.Unlock()
		if n >= 20 && time.Since(downAt) >= 4*time.Second {
			if lat := first.Sub(createdAt); lat < ckWait-time.Second || lat > ckWait+15*time.Second {
				t.Errorf("phase 2: the first line of the pod created while the API was down arrived after %v, want about metadata_wait (%v): the per-pod wait", lat, ckWait)
			} else {
				t.Logf("phase 2: first line of the pod created while the API is down delivered %v after its creation (its per-pod wait; metadata_wait %v)", lat.Round(time.Millisecond), ckWait)
			}
			break
		}
		if time.Since(downAt) > time.Minute {
			e.verify()
			t.Fatalf("phase 2: %d lines of the new pod delivered while the API is down", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ev0, li0 := podEvents(), podLists()
	if err := e.api.Start(); err != nil {
		t.Fatal(err)
	}
	outage2 := time.Since(downAt)
	back := e.waitKube("phase 2: the watch resumes", 45*time.Second, func() bool { return podEvents() > ev0 || podLists() > li0 })
	time.Sleep(100 * time.Millisecond)
	e.mark("2 API down, agent running", spanFull, map[*ckPod]ckKind{down: spanSwitchNS})
	time.Sleep(2 * time.Second)
	cancel()
	wait()
	waitDown()
	e.waitAll("phase 2", 2*time.Minute)
	e.mark("2 after the API returned", spanFull, nil)
	text := e.metricsNow("phase 2")
	t.Logf("phase 2: API down %v, the agent's watch back %v after the API (kube errors %v)", outage2.Round(time.Millisecond), back.Round(time.Millisecond),
		agentproc.MetricSum(text, "sluice_kube_errors_total", `resource="pods"`))
	if v := agentproc.MetricSum(text, "sluice_kube_errors_total", `resource="pods"`); v == 0 {
		t.Errorf("phase 2: sluice_kube_errors_total{resource=\"pods\"} = 0 after an outage")
	}
	e.mu.Lock()
	if skip.distinct != 0 {
		t.Errorf("the pod annotated sluice.dev/exclude: %d lines delivered while its annotation was known", skip.distinct)
	}
	e.mu.Unlock()

	// Phase 3: the API goes away again and the agent restarts meanwhile.
	e.api.Stop()
	downAt = time.Now()
	e.term()
	for _, p := range e.snapshot() {
		if p.read && p.rate > 0 {
			if err := p.stopped(func(c *crigen.Container) error { return c.Write(100) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	warned := len(agentproc.LogLines(e.logPath, "WARN", "pod metadata not listed yet"))
	e.mu.Lock()
	skip.read = true // documented: a pod not known at a scan is read
	e.mu.Unlock()
	e.start()
	e.waitAll("phase 3 (restart while the API is down)", 2*time.Minute)
	if n := len(agentproc.LogLines(e.logPath, "WARN", "pod metadata not listed yet")); n != warned+1 {
		t.Errorf("phase 3: %d warnings that the pod metadata was not listed within metadata_wait, want 1", n-warned)
	}
	e.mark("3 API down, agent restarted", spanPath, nil)
	ctx, cancel = context.WithCancel(context.Background())
	wait = e.generate(ctx, e.snapshot()...)
	time.Sleep(time.Second)
	if err := e.api.Start(); err != nil {
		t.Fatal(err)
	}
	outage3 := time.Since(downAt)
	back = e.waitKube("phase 3: the first lists", 45*time.Second, func() bool {
		return podLists() >= 1 && e.kubeMetric("sluice_kube_lists_total", "namespaces") >= 1
	})
	time.Sleep(100 * time.Millisecond)
	e.mark("3 the API returns", spanSwitch, nil)
	time.Sleep(2 * time.Second)
	cancel()
	wait()
	e.waitAll("phase 3", 2*time.Minute)
	e.mark("3 after the API returned", spanFull, nil)
	e.metricsNow("phase 3")
	t.Logf("phase 3: API down %v, listed %v after it returned", outage3.Round(time.Millisecond), back.Round(time.Millisecond))
	e.term()

	// Phase 4: API up, agent stopped: lines, one kubelet rotation, a
	// container restart and a new pod while stopped.
	for _, p := range e.snapshot() {
		if !p.read || p.rate == 0 {
			continue
		}
		err := p.stopped(func(c *crigen.Container) error {
			if err := c.Write(150); err != nil {
				return err
			}
			if p.every > 0 {
				if err := c.Rotate(); err != nil {
					return err
				}
			}
			if p == job {
				if err := c.Write(100); err != nil {
					return err
				}
				if err := c.Restart(); err != nil { // 1.log
					return err
				}
			}
			return c.Write(120)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	fresh := e.pod(ckSpec{o: crigen.Options{Namespace: "prod", Pod: "new-0", Name: "app"}, rate: 100, typ: "app",
		labels: map[string]string{"app": "new"}, owner: &kubetest.Owner{Kind: "StatefulSet", Name: "new"},
		wantOwner: map[string]any{"kind": "StatefulSet", "name": "new"}, image: "new:1"})
	if err := fresh.do(func(c *crigen.Container) error { return c.Write(120) }); err != nil {
		t.Fatal(err)
	}
	e.start()
	// What was written while stopped is read before the pods log on: their
	// first lines rotate api and web again at once, which gzips the
	// rotation made while stopped (see TestE2E_CRI phase 2).
	e.waitAll("phase 4 (lines written while stopped)", 2*time.Minute)
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	e.generate(ctx, e.snapshot()...)()
	cancel()
	e.waitAll("phase 4", 2*time.Minute)
	e.mark("4 API up, stopped and restarted", spanFull, nil)
	text = e.metricsNow("phase 4")
	time.Sleep(300 * time.Millisecond) // late duplicates, if any
	e.term()
	e.verify()

	// Duplicates: only from the kill, at most what the output had in
	// flight, one fsync and one checkpoint interval of lines, and one
	// 256 KiB read turn per file (as TestE2E_CRI).
	final := e.dups()
	if final != afterKill {
		t.Errorf("%d duplicates after the kill's restart (only the kill may cause them)", final-afterKill)
	}
	var rate, perChunk float64
	for _, p := range e.snapshot() {
		rate += p.rate
		perChunk = max(perChunk, float64(256<<10)/float64(p.c.PayloadBytes(0))+1)
	}
	if bound := int64(3*4*perChunk + rate*1.5 + float64(len(e.pods))*float64(256<<10)/200); afterKill > bound {
		t.Errorf("%d duplicates from one kill exceed the bound %d", afterKill, bound)
	}
	// The agent asked the API for lists and watches only, of its node's
	// pods and of the namespaces: no request per pod, file or record.
	var lists, watches int
	for _, r := range e.api.Requests() {
		u, err := url.ParseRequestURI(strings.TrimPrefix(r, "GET "))
		if err != nil || !strings.HasPrefix(r, "GET ") {
			t.Errorf("API request %q", r)
			continue
		}
		q := u.Query()
		switch {
		case u.Path == "/api/v1/pods" && q.Get("fieldSelector") == "spec.nodeName="+ckNode:
		case u.Path == "/api/v1/namespaces" && q.Get("fieldSelector") == "":
		default:
			t.Errorf("API request %q: want a list or watch of node %s's pods or of the namespaces", r, ckNode)
		}
		if q.Get("watch") == "1" {
			watches++
		} else {
			lists++
		}
	}

	var total, delivered int64
	perOut := map[string]int64{}
	for _, name := range ckOutputs {
		perOut[name] = e.recv[name].Stats().Events // every event, duplicates included (Count is distinct keys)
		delivered += perOut[name]
	}
	ctrs, pods := 0, map[string]bool{}
	for _, p := range e.snapshot() {
		if p.read {
			total += p.c.Seq()
			ctrs++
			pods[p.c.Namespace()+"/"+p.c.Pod()] = true
		}
	}
	t.Logf("%d lines from %d containers of %d pods in 2 namespaces (kube-system excluded by namespace; the pod excluded by annotation read only in phase 3, as documented), all delivered once (+%d duplicates, all from the kill), per receiver %v; lines with path metadata only, by span: %v; API requests: %d lists, %d watches; joins %v, truncated %v, rotations seen since the last start %v",
		total, ctrs, len(pods), final, perOut, e.pathLines(), lists, watches,
		agentproc.MetricSum(text, "sluice_input_partial_joins_total"), agentproc.MetricSum(text, "sluice_input_truncated_lines_total"),
		agentproc.MetricSum(text, "sluice_input_rotations_total"))
	if delivered != total+final {
		t.Errorf("receivers hold %d lines, want %d + %d duplicates", delivered, total, final)
	}
}

// kubePod0 is kubePod with the uid the pod will get (for pods added to the
// API before e.pod creates their directory).
func (s ckSpec) kubePod0() kubetest.Pod {
	s.o.UID = ckUID(s.o.Namespace, s.o.Pod)
	return s.kubePod()
}

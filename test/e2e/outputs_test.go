package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/testkit/versity"
	"github.com/sluice-agent/sluice/internal/testkit/vlogs"
)

// TestE2E_ThreeOutputs: the real binary routes three log types to three
// kinds of destination at once: app to a Forward receiver, access to
// Elasticsearch's _bulk API (a real VictoriaLogs), audit to S3 (a real
// versitygw). 300,000 lines over about 30 s; the Elasticsearch server is
// unreachable for the middle third, and 3 s after it is back the agent is
// killed with SIGKILL and started again. The other two outputs keep their
// rate while Elasticsearch is down, Elasticsearch catches up after, and
// every line of every type reaches its destination (duplicates allowed:
// what was in flight at the kill).
func TestE2E_ThreeOutputs(t *testing.T) {
	if agentBin == "" {
		t.Skip("-short: the e2e tests build and run the agent")
	}
	perType := envInt("SLUICE_E2E_OUTPUTS_LINES", 100_000)
	const phase = 10 * time.Second
	rate := float64(perType) / (3 * phase).Seconds()

	vl := vlogs.Start(t)
	gw := versity.Start(t)
	gw.CreateBucket(t, "logs")
	recv := receiver.New("127.0.0.1:0", receiver.Wire{}, nil)
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Stop)
	esProxy := newTCPProxy(t, strings.TrimPrefix(vl.URL(), "http://"))

	dir := t.TempDir()
	root := filepath.Join(dir, "containers")
	cont := map[string]*loggen.Container{}
	for _, lt := range logTypes {
		c, err := loggen.New(root, loggen.Options{Name: "c-" + lt, LogType: lt, Payload: 200})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cont[lt] = c
	}
	var hdrs strings.Builder
	for k, v := range vl.Header() {
		fmt.Fprintf(&hdrs, "\n      - {name: %s, value: %q}", k, v[0])
	}
	metricsAddr := agentproc.FreeAddr(t)
	cfg := fmt.Sprintf(`data_dir: %s
metrics_addr: %s
shutdown_grace: 10s
inputs:
  - id: containers
    type: docker
    root: %s
    parse_json: true
    tag: "docker.{field:log_type}"
outputs:
  - id: app
    type: forward
    servers: [{address: %q}]
  - id: access
    type: elasticsearch
    hosts: ["http://%s/insert/elasticsearch"]
    headers:%s
    delivery: {retry_initial: 100ms, retry_max: 1s}
  - id: audit
    type: s3
    bucket: logs
    region: %s
    endpoint: %s
    force_path_style: true
    access_key_id: %s
    secret_access_key: %s
    delivery: {flush_interval: 2s}
routes:
  - {match: docker.app, outputs: [app]}
  - {match: docker.access, outputs: [access]}
  - {match: docker.audit, outputs: [audit]}
`, filepath.Join(dir, "data"), metricsAddr, root, recv.Addr(), esProxy.addr, hdrs.String(),
		gw.Region(), gw.Endpoint(), gw.AccessKey(), gw.SecretKey())
	cfgPath := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, err := agentproc.Start(agentBin, cfgPath, filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !proc.Exited() {
			proc.Kill()
		}
		if t.Failed() {
			for _, l := range lastLines(proc.Log(), 40) {
				t.Log("agent: " + l)
			}
		}
	})
	if _, err := agentproc.WaitMetrics(metricsAddr, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	sent := func() map[string]float64 {
		text, err := agentproc.Scrape(metricsAddr)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for _, lt := range logTypes {
			m[lt] = agentproc.MetricSum(text, "sluice_output_sent_events_total", fmt.Sprintf("output=%q", lt))
		}
		return m
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, lt := range logTypes {
		c := cont[lt]
		wg.Go(func() {
			if err := c.Run(ctx, perType, rate); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
		})
	}
	t0 := time.Now()
	time.Sleep(phase)
	atDown, downAt := sent(), time.Now()
	esProxy.stop()
	time.Sleep(phase)
	atUp, upAt := sent(), time.Now()
	esProxy.start(t)
	time.Sleep(3 * time.Second)
	proc.Kill()
	t.Logf("agent killed with SIGKILL at +%v; restarting", time.Since(t0).Round(time.Millisecond))
	if proc, err = agentproc.Start(agentBin, cfgPath, filepath.Join(dir, "agent.log")); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	genEnd := time.Now()
	t.Logf("generated %d lines per type in %v", perType, genEnd.Sub(t0).Round(time.Millisecond))

	// The healthy outputs kept their rate while Elasticsearch was down.
	for _, lt := range []string{"app", "audit"} {
		before := atDown[lt] / downAt.Sub(t0).Seconds()
		during := (atUp[lt] - atDown[lt]) / upAt.Sub(downAt).Seconds()
		t.Logf("%s: %.0f events/s before the outage, %.0f during", lt, before, during)
		if during < 0.75*rate {
			t.Errorf("%s slowed down while elasticsearch was down: %.0f/s, generated %.0f/s", lt, during, rate)
		}
	}
	if d := atUp["access"] - atDown["access"]; d > float64(perType)/20 {
		t.Errorf("elasticsearch took %.0f events while unreachable", d)
	}

	// Everything arrives.
	deadline := time.Now().Add(2 * time.Minute)
	for !recv.WaitCount(int64(perType), 200*time.Millisecond) && time.Now().Before(deadline) {
	}
	if miss := recv.MissingCount("c-app", perType); miss > 0 {
		t.Errorf("forward: %d of %d lines missing", miss, perType)
	}
	esSeqs := waitSeqs(t, deadline, func() map[int]int { return vlogsSeqs(t, vl, "c-access") }, perType)
	caught := time.Now()
	s3Seqs := waitSeqs(t, deadline, func() map[int]int { return s3SeqsOf(t, gw, "logs", "c-audit") }, perType)
	for name, seqs := range map[string]map[int]int{"elasticsearch": esSeqs, "s3": s3Seqs} {
		miss, dup := 0, 0
		for i := range perType {
			switch n := seqs[i]; {
			case n == 0:
				miss++
			case n > 1:
				dup += n - 1
			}
		}
		t.Logf("%s: %d lines, %d missing, %d duplicates", name, perType, miss, dup)
		if miss > 0 {
			t.Errorf("%s: %d of %d lines missing", name, miss, perType)
		}
	}
	t.Logf("elasticsearch caught up %v after it came back (%v after the generator ended)",
		caught.Sub(upAt).Round(time.Millisecond), caught.Sub(genEnd).Round(time.Millisecond))
	cpu, _ := proc.CPU()
	_, peak, _ := proc.RSS()
	t.Logf("agent after the restart: %v CPU, peak RSS %d MiB", cpu.Round(time.Millisecond), peak>>20)
	if code, _, err := proc.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("agent exit %d: %v", code, err)
	}
}

func waitSeqs(t *testing.T, deadline time.Time, read func() map[int]int, n int) map[int]int {
	for {
		m := read()
		if len(m) >= n || time.Now().After(deadline) {
			return m
		}
		time.Sleep(time.Second)
	}
}

// vlogsSeqs reads every document of src back from VictoriaLogs.
func vlogsSeqs(t *testing.T, vl *vlogs.Server, src string) map[int]int {
	out := map[int]int{}
	for _, doc := range vl.Query(t, fmt.Sprintf("src:%q", src)) {
		if s, ok := doc["seq"].(string); ok {
			if n, err := strconv.Atoi(s); err == nil {
				out[n]++
			}
		}
	}
	return out
}

// s3SeqsOf decodes every object of bucket (gzip JSON lines) and counts the
// seq of each line of src.
func s3SeqsOf(t *testing.T, gw *versity.Server, bucket, src string) map[int]int {
	out := map[int]int{}
	for _, o := range gw.Objects(t, bucket) {
		var r io.Reader = bytes.NewReader(o.Body)
		if strings.HasSuffix(o.Key, ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatalf("object %s: %v", o.Key, err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var v struct {
				Src string `json:"src"`
				Seq int    `json:"seq"`
			}
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("object %s: line %q: %v", o.Key, sc.Bytes(), err)
			}
			if v.Src == src {
				out[v.Seq]++
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("object %s: %v", o.Key, err)
		}
	}
	return out
}

func lastLines(s string, n int) []string {
	l := splitLines(s)
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return l
}

// tcpProxy forwards a fixed local address to target; stop makes the
// address refuse connections (and cuts open ones), start serves it again.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{target: target, conns: map[net.Conn]bool{}}
	p.start(t)
	p.addr = p.ln.Addr().String()
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start(t *testing.T) {
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *tcpProxy) serve(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// TestE2E_FanOut is the test-sized fan-out of sluice-bench -mode fanout:
// ONE json-file container writes 200,000 lines (20,000 lines/s for 10 s)
// whose raw payload holds type=app, type=access or type=audit in turn; the
// docker input (parse_json off, one tag) hands them to routes whose when:
// tests the raw log (contains, a regex, a literal regex), one forward
// output and receiver each. The access receiver is down for the middle
// third. Nothing may be missing, and the app and audit outputs keep their
// throughput and latency during the outage.
func TestE2E_FanOut(t *testing.T) {
	if agentBin == "" {
		t.Skip("-short: the e2e tests build and run the agent")
	}
	lines := envInt("SLUICE_E2E_FANOUT_LINES", 200_000)
	const dur = 10 * time.Second
	rate := float64(lines) / dur.Seconds()

	dir := t.TempDir()
	root := filepath.Join(dir, "containers")
	c, err := loggen.New(root, loggen.Options{Name: "fanout"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // lines are written below, in the fan-out's format
	recv := map[string]*receiver.Server{}
	var addrs []string
	for _, lt := range logTypes {
		s := receiver.New("127.0.0.1:0", receiver.Wire{}, nil)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		recv[lt] = s
		addrs = append(addrs, s.Addr())
	}
	metricsAddr := agentproc.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfg, []byte(fanoutConfig(filepath.Join(dir, "data"), root, metricsAddr, addrs)), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := agentproc.Start(agentBin, cfg, filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
		if t.Failed() {
			t.Log(p.Log())
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counts := make(chan [3]int64, 1)
	t0 := time.Now()
	go func() {
		n, err := writeFanout(ctx, c.Path(), lines, rate)
		if err != nil {
			t.Error(err)
		}
		counts <- n
	}()
	time.Sleep(dur / 3)
	down := time.Now()
	recv["access"].Stop()
	time.Sleep(dur / 3)
	up := time.Now()
	if err := recv["access"].Start(); err != nil {
		t.Fatal(err)
	}
	accessAtUp := recv["access"].Count()
	n := <-counts
	genEnd := time.Now()
	t.Logf("access receiver down +%v..+%v, holding %d lines when back", down.Sub(t0).Round(time.Millisecond), up.Sub(t0).Round(time.Millisecond), accessAtUp)

	for i, lt := range logTypes {
		deadline := time.Now().Add(2 * time.Minute)
		for !recv[lt].WaitCount(n[i], 200*time.Millisecond) {
			if p.Exited() || time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d lines (agent exited: %v)", lt, recv[lt].Count(), n[i], p.Exited())
			}
		}
	}
	caughtUp := time.Now()
	text, err := agentproc.WaitMetrics(metricsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := p.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("agent exit %d, %v", code, err)
	}
	for i, lt := range logTypes {
		r := recv[lt]
		st := r.Stats()
		if miss := r.MissingCount("fanout-"+lt, int(n[i])); miss > 0 {
			t.Errorf("%s: %d of %d lines missing, first %v", lt, miss, n[i], r.Missing("fanout-"+lt, int(n[i])))
		}
		if st.Distinct != n[i] || st.Unkeyed != 0 {
			t.Errorf("%s: receiver holds %d distinct keys (%d unkeyed), want %d: sources %v", lt, st.Distinct, st.Unkeyed, n[i], r.Sources())
		}
		t.Logf("%s: %d lines, all delivered, %d duplicates", lt, n[i], st.Duplicates)
	}
	if unrouted := agentproc.MetricSum(text, "sluice_events_unrouted_total"); unrouted != 0 {
		t.Errorf("%v events unrouted", unrouted)
	}
	if accessAtUp >= n[1] {
		t.Errorf("access received everything while down?")
	}
	t.Logf("access caught up %v after its receiver returned (%v after the writer stopped)", caughtUp.Sub(up).Round(time.Millisecond), caughtUp.Sub(genEnd).Round(time.Millisecond))
	for _, lt := range []string{"app", "audit"} {
		r := recv[lt]
		before := r.Window(t0.Add(time.Second), down)
		during := r.Window(down.Add(time.Second), up)
		t.Logf("%s before: %v", lt, before)
		t.Logf("%s during the access outage: %v", lt, during)
		checkNotSlower(t, lt, before, during)
	}
}

func fanoutConfig(dataDir, root, metricsAddr string, addrs []string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("data_dir: %q", dataDir)
	p("metrics_addr: %q", metricsAddr)
	p("inputs:")
	p("  - {id: containers, type: docker, root: %q, tag: \"docker.{name}\", poll_interval: 200ms, checkpoint_interval: 500ms}", root)
	p("outputs:")
	for i, lt := range logTypes {
		p("  - id: %s", lt)
		p("    type: forward")
		p("    servers: [{address: %q}]", addrs[i])
		p("    connect_timeout: 1s")
		p("    heartbeat_interval: 200ms")
		p("    retry_initial: 100ms")
		p("    retry_max: 1s")
	}
	p("routes:")
	p("  - {match: \"docker.**\", when: {field: log, contains: \"type=app \"}, outputs: [app]}")
	p("  - {match: \"docker.**\", when: {field: log, regex: 'type=access\\b'}, outputs: [access]}")
	p("  - {match: \"docker.**\", when: {field: log, regex: 'type=audit'}, outputs: [audit]}")
	return b.String()
}

// writeFanout appends n json-file lines to path at rate lines/s (in 10 ms
// steps), line k of type k mod 3 with its own dense seq per type, and
// returns the lines written per type.
func writeFanout(ctx context.Context, path string, n int, rate float64) ([3]int64, error) {
	var cnt [3]int64
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return cnt, err
	}
	defer f.Close()
	start := time.Now()
	var buf []byte
	written := 0
	for written < n {
		due := min(int(time.Since(start).Seconds()*rate), n)
		ts := time.Now().UTC().AppendFormat(nil, time.RFC3339Nano)
		buf = buf[:0]
		for ; written < due; written++ {
			t := written % 3
			buf = append(buf, `{"log":"{\"src\":\"fanout-`...)
			buf = append(buf, logTypes[t]...)
			buf = append(buf, `\",\"seq\":`...)
			buf = strconv.AppendInt(buf, cnt[t], 10)
			buf = append(buf, `,\"msg\":\"level=info type=`...)
			buf = append(buf, logTypes[t]...)
			buf = append(buf, ` path=/api/v1/items status=200 pad=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz\"}\n","stream":"stdout","time":"`...)
			buf = append(buf, ts...)
			buf = append(buf, "\"}\n"...)
			cnt[t]++
		}
		if _, err := f.Write(buf); err != nil {
			return cnt, err
		}
		select {
		case <-ctx.Done():
			return cnt, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return cnt, nil
}

// TestE2E_Throttle: a container writing 50,000 lines/s next to one writing
// 100 lines/s for 6 s, a throttle processor at 1,000/s per container: the
// quiet container loses nothing and keeps a low latency, the noisy one is
// cut to its budget, and the drops are counted per container.
func TestE2E_Throttle(t *testing.T) {
	if agentBin == "" {
		t.Skip("-short: the e2e tests build and run the agent")
	}
	const dur = 6 * time.Second
	dir := t.TempDir()
	root := filepath.Join(dir, "containers")
	conts := map[string]*loggen.Container{}
	recv := map[string]*receiver.Server{}
	rates := map[string]float64{"noisy": 50_000, "quiet": 100}
	var outs strings.Builder
	for _, name := range []string{"noisy", "quiet"} {
		c, err := loggen.New(root, loggen.Options{Name: name, LogType: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conts[name] = c
		s := receiver.New("127.0.0.1:0", receiver.Wire{}, nil)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		recv[name] = s
		fmt.Fprintf(&outs, "  - {id: %s, type: forward, servers: [{address: %q}], heartbeat_interval: 200ms}\n", name, s.Addr())
	}
	metricsAddr := agentproc.FreeAddr(t)
	yml := fmt.Sprintf(`data_dir: %q
metrics_addr: %q
inputs:
  - {id: containers, type: docker, root: %q, tag: "docker.{name}", poll_interval: 200ms}
outputs:
%sroutes:
  - {match: "docker.noisy", outputs: [noisy]}
  - {match: "docker.quiet", outputs: [quiet]}
processors:
  - {id: tame, type: throttle, per: container, rate: 1000, burst: 1000}
`, filepath.Join(dir, "data"), metricsAddr, root, outs.String())
	cfg := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := agentproc.Start(agentBin, cfg, filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
		if t.Failed() {
			t.Log(p.Log())
		}
	})
	t0 := time.Now()
	done := make(chan error, 2)
	for name, c := range conts {
		go func() { done <- c.Run(context.Background(), int(rates[name]*dur.Seconds()), rates[name]) }()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	quiet := conts["quiet"].Seq()
	if !recv["quiet"].WaitCount(quiet, 30*time.Second) {
		t.Fatalf("quiet: %d of %d lines", recv["quiet"].Count(), quiet)
	}
	time.Sleep(time.Second) // the noisy output's last chunks
	text, err := agentproc.WaitMetrics(metricsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := p.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("agent exit %d, %v", code, err)
	}
	if miss := recv["quiet"].MissingCount(conts["quiet"].Src(), int(quiet)); miss > 0 {
		t.Errorf("quiet: %d of %d lines missing", miss, quiet)
	}
	w := recv["quiet"].Window(t0.Add(time.Second), t0.Add(dur))
	t.Logf("quiet: %d lines, all delivered; %v", quiet, w)
	if w.MeanLatency > 500*time.Millisecond || w.MaxLatency > 2*time.Second {
		t.Errorf("quiet latency: mean %v, max %v", w.MeanLatency, w.MaxLatency)
	}
	written, kept := conts["noisy"].Seq(), recv["noisy"].Stats().Distinct
	dropped := agentproc.MetricSum(text, "sluice_processor_throttled_total", `processor="tame"`, `key="noisy"`)
	t.Logf("noisy: %d written, %d delivered, %v dropped (counted)", written, kept, dropped)
	// 1,000/s over the run (the agent reads a little after the writer
	// stops) plus the burst.
	if limit := int64(1000*(dur.Seconds()+2) + 1000); kept > limit || kept < 1000*int64(dur.Seconds()-1) {
		t.Errorf("noisy: %d delivered, want between %d and %d", kept, 1000*int64(dur.Seconds()-1), limit)
	}
	if int64(dropped)+kept != written {
		t.Errorf("noisy: %v dropped + %d delivered != %d written", dropped, kept, written)
	}
	if strings.Contains(text, `key="quiet"`) {
		t.Errorf("quiet has a drop series")
	}
}

// Package soak runs the real agent for a long time at a fixed load (issue
// 12, "Proof": 30 minutes at 20,000 events/s through both inputs to two
// outputs, one output down for 10 of those minutes, one SIGKILL restart; 0
// missing, RSS and goroutine counts flat after warm-up).
//
// TestSoak is that run when SLUICE_SOAK=1, and a one-minute smoke version
// of it otherwise (CI runs the smoke). Both:
//
//   - build the agent (agentproc.Build) and run it on a config with two
//     inputs, a docker input over a generated json-file tree (loggen; four
//     containers, rename rotation) and a forward input on TCP and on a
//     unix socket, fed by fluent-logger-golang (the client of Docker's
//     fluentd driver; sync mode, an ack per event), half the rate each;
//   - route every event to two forward outputs ("**" → [a, b]), each to
//     its own receiver (internal/testkit/receiver, a bitset of the
//     sequence numbers per source), so every receiver checks every
//     sequence number of every source;
//   - stop receiver b for the middle third of the run (10 of 30 minutes;
//     20 of 60 s) and SIGKILL the agent at half time (during the outage),
//     restarting it on the same data_dir a second later;
//   - sample, every 10 s, the agent's VmRSS (/proc/<pid>/status), its
//     go_goroutines (/metrics, VictoriaMetrics' process metrics), its open
//     files (/proc/<pid>/fd), its CPU and both receivers' counts into soak.csv
//     in the test's temp dir (also printed, and copied to $SLUICE_SOAK_CSV
//     if set);
//   - stop generating at the end, wait until both receivers hold every
//     sequence number, SIGTERM the agent (exit 0), and assert: nothing
//     missing, nothing unkeyed, duplicates within the bound below.
//
// The full run also asserts that the agent is flat after a 2-minute
// warm-up: the last third's maximum RSS within 25% of the first window's
// (from the end of the warm-up to the outage) and its maximum goroutine
// count at most 50 above it (the bounds are justified where they are
// checked, in checkFlat).
//
// Environment:
//
//	SLUICE_SOAK=1            the full soak (default: the 60 s smoke)
//	SLUICE_SOAK_DURATION=30m the full soak's length (default 30m)
//	SLUICE_SOAK_RATE=20000   events/s, both inputs together (default 20000)
//	SLUICE_SOAK_CSV=path     copy the samples there
//
// Run the full soak with a large -timeout:
//
//	SLUICE_SOAK=1 nice -n 10 go test -count=1 -v -timeout 60m -run TestSoak ./test/soak/
//
// Known limitations: loggen deletes the oldest rotated file as dockerd
// does, so the docker input must never lag by more than the kept files
// (4 × 200,000 lines a container: 320 s at 10,000 lines/s over four
// containers); the receivers' trackers keep latency buckets for one hour.
package soak

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// The load and the agent's settings that the duplicate bound depends on.
const (
	containers    = 4   // docker input sources
	loggers       = 64  // forward input sources (fluent-logger-golang, one connection each)
	payload       = 100 // bytes of each docker line's JSON payload
	fwdPad        = 60  // bytes of each forward event's "log"
	rotateEvery   = 200_000
	maxFiles      = 5
	maxInFlight   = 4
	chunkBytes    = 256 << 10
	checkpoint    = 500 * time.Millisecond
	fsyncInterval = time.Second
	readTurn      = 256 << 10 // the docker input reads at most this much of a file per turn
	sampleEvery   = 10 * time.Second
	warmUp        = 2 * time.Minute
)

type plan struct {
	full      bool
	duration  time.Duration
	rate      float64 // events/s, both inputs
	downAt    time.Duration
	downFor   time.Duration
	killAt    time.Duration
	drainWait time.Duration
}

func soakPlan(t *testing.T) plan {
	p := plan{full: os.Getenv("SLUICE_SOAK") == "1", duration: time.Minute, rate: 20000}
	if p.full {
		p.duration = 30 * time.Minute
		if v := os.Getenv("SLUICE_SOAK_DURATION"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Minute {
				t.Fatalf("SLUICE_SOAK_DURATION=%q: want a duration of at least 1m", v)
			}
			p.duration = d
		}
	}
	if v := os.Getenv("SLUICE_SOAK_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 100 {
			t.Fatalf("SLUICE_SOAK_RATE=%q: want at least 100 events/s", v)
		}
		p.rate = r
	}
	// The middle third down (10 of 30 minutes, 20 of 60 s), the SIGKILL
	// at half time, during the outage.
	p.downAt, p.downFor, p.killAt = p.duration/3, p.duration/3, p.duration/2
	// Receiver b's backlog is a third of the run at the full rate.
	p.drainWait = 2*time.Minute + p.duration/3
	return p
}

// sample is one row of soak.csv.
type sample struct {
	at         time.Duration // since the start
	pid        int
	rss        int64
	hwm        int64
	goroutines float64
	fds        float64
	cpu        time.Duration // this process's, cumulative
	sent       int64         // events generated so far (forward: acked)
	recvA      int64         // distinct at a
	recvB      int64         // distinct at b
	bDown      bool
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the agent for a minute (30 with SLUICE_SOAK=1)")
	}
	p := soakPlan(t)
	dir := t.TempDir()
	t0 := time.Now()
	bin, err := agentproc.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built the agent in %v; %s soak: %v at %.0f events/s, receiver b down %v..%v, SIGKILL at %v",
		time.Since(t0).Round(time.Millisecond), map[bool]string{true: "full", false: "smoke"}[p.full],
		p.duration, p.rate, p.downAt, p.downAt+p.downFor, p.killAt)

	// Receivers: a and b, bound once so that b keeps its port across the outage.
	recv := map[string]*receiver.Server{}
	for _, id := range []string{"a", "b"} {
		s := receiver.New("127.0.0.1:0", receiver.Wire{}, nil)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		recv[id] = s
	}

	root := filepath.Join(dir, "containers")
	sock := filepath.Join(dir, "fluent.sock")
	fwdAddr, metricsAddr := agentproc.FreeAddr(t), agentproc.FreeAddr(t)
	cfgPath, logPath := filepath.Join(dir, "agent.yml"), filepath.Join(dir, "agent.log")
	cfg := renderConfig(filepath.Join(dir, "data"), root, fwdAddr, sock, metricsAddr, recv["a"].Addr(), recv["b"].Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	var conts []*loggen.Container
	for i := range containers {
		c, err := loggen.New(root, loggen.Options{
			Name: fmt.Sprintf("d%d", i), LogType: "app", Payload: payload,
			Rotate: loggen.Rename, RotateEvery: rotateEvery, MaxFiles: maxFiles,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conts = append(conts, c)
	}

	var procMu sync.Mutex
	var proc *agentproc.Proc
	starts := 0
	start := func() {
		t.Helper()
		pr, err := agentproc.Start(bin, cfgPath, logPath)
		if err != nil {
			t.Fatal(err)
		}
		procMu.Lock()
		proc = pr
		starts++
		procMu.Unlock()
		if _, err := agentproc.WaitMetrics(metricsAddr, 20*time.Second); err != nil {
			t.Fatalf("agent start %d: %v\n%s", starts, err, tail(pr.Log(), 30))
		}
	}
	current := func() *agentproc.Proc {
		procMu.Lock()
		defer procMu.Unlock()
		return proc
	}
	t.Cleanup(func() {
		if pr := current(); pr != nil && !pr.Exited() {
			pr.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log (last lines):\n%s", tail(string(b), 40))
		}
	})
	start()

	// Generators: half the rate to the docker tree, half to the forward
	// input, until the end of the run.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	genStart := time.Now()
	end := genStart.Add(p.duration)
	var gen sync.WaitGroup
	var genErr atomic.Value
	fwdSent := make([]atomic.Int64, loggers)
	dockerRate := p.rate / 2 / containers
	for _, c := range conts {
		gen.Go(func() {
			gctx, gcancel := context.WithDeadline(ctx, end)
			defer gcancel()
			if err := c.Run(gctx, int(dockerRate*p.duration.Seconds())+1, dockerRate); err != nil && gctx.Err() == nil {
				genErr.Store(fmt.Errorf("loggen %s: %w", c.Src(), err))
			}
		})
	}
	fwdRate := p.rate / 2 / loggers
	for i := range loggers {
		gen.Go(func() {
			if err := runLogger(ctx, i, fwdAddr, sock, fwdRate, end, &fwdSent[i]); err != nil {
				genErr.Store(err)
			}
		})
	}
	sent := func() int64 {
		var n int64
		for i := range fwdSent {
			n += fwdSent[i].Load()
		}
		// loggen's Seq is not safe to read while it runs: estimate.
		el := min(time.Since(genStart), p.duration)
		return n + int64(dockerRate*containers*el.Seconds())
	}

	// Sampler.
	var samplesMu sync.Mutex
	var samples []sample
	var bDown atomic.Bool
	sampleOnce := func() {
		pr := current()
		if pr == nil || pr.Exited() {
			return
		}
		s := sample{at: time.Since(genStart), pid: pr.Pid(), sent: sent(), recvA: recv["a"].Count(), recvB: recv["b"].Count(), bDown: bDown.Load()}
		s.rss, s.hwm, _ = pr.RSS()
		s.cpu, _ = pr.CPU()
		if text, err := agentproc.Scrape(metricsAddr); err == nil {
			s.goroutines, _ = agentproc.Metric(text, "go_goroutines")
		} else {
			s.goroutines = -1
		}
		// VictoriaMetrics leaves process_open_fds out of its process
		// metrics on Linux (costly with many fds): count them.
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.pid)); err == nil {
			s.fds = float64(len(fds))
		}
		samplesMu.Lock()
		samples = append(samples, s)
		samplesMu.Unlock()
		if p.full {
			t.Logf("+%v pid %d rss %.1f MiB goroutines %.0f fds %.0f sent %d a %d b %d%s", s.at.Round(time.Second), s.pid,
				float64(s.rss)/(1<<20), s.goroutines, s.fds, s.sent, s.recvA, s.recvB, map[bool]string{true: " (b down)"}[s.bDown])
		}
	}
	samplerDone := make(chan struct{})
	stopSampler := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-tick.C:
				sampleOnce()
			}
		}
	}()

	// The script: b down at downAt for downFor, SIGKILL at killAt.
	type step struct {
		at time.Duration
		do func()
	}
	var killedAt time.Duration
	var killDelivered [2]int64
	steps := []step{
		{p.downAt, func() {
			recv["b"].Stop()
			bDown.Store(true)
			t.Logf("+%v receiver b stopped (a %d, b %d)", time.Since(genStart).Round(time.Second), recv["a"].Count(), recv["b"].Count())
		}},
		{p.killAt, func() {
			pr := current()
			killDelivered = [2]int64{recv["a"].Count(), recv["b"].Count()}
			pr.Kill()
			killedAt = time.Since(genStart)
			t.Logf("+%v SIGKILL pid %d (its peak RSS %.1f MiB); a %d, b %d delivered", killedAt.Round(time.Second), pr.Pid(),
				float64(pr.Usage().MaxRSS)/(1<<20), killDelivered[0], killDelivered[1])
			time.Sleep(time.Second)
			start()
			t.Logf("+%v agent restarted, pid %d", time.Since(genStart).Round(time.Second), current().Pid())
		}},
		{p.downAt + p.downFor, func() {
			if err := recv["b"].Start(); err != nil {
				t.Error(err)
			}
			bDown.Store(false)
			t.Logf("+%v receiver b started again (a %d, b %d)", time.Since(genStart).Round(time.Second), recv["a"].Count(), recv["b"].Count())
		}},
	}
	slices.SortFunc(steps, func(x, y step) int { return int(x.at - y.at) })
	for _, s := range steps {
		time.Sleep(time.Until(genStart.Add(s.at)))
		s.do()
		if current().Exited() {
			t.Fatalf("agent exited at +%v", time.Since(genStart))
		}
	}
	gen.Wait()
	if err, _ := genErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	genTook := time.Since(genStart)

	// Every source's count is now final.
	want := map[string]int{}
	var total int64
	for _, c := range conts {
		want[c.Src()] = int(c.Seq())
		total += c.Seq()
	}
	var fwdTotal int64
	for i := range fwdSent {
		n := fwdSent[i].Load()
		want[loggerSrc(i)] = int(n)
		fwdTotal += n
	}
	total += fwdTotal
	t.Logf("generated %d events in %v (%.0f/s): docker %d, forward %d (fluent-logger, acked)",
		total, genTook.Round(time.Millisecond), float64(total)/genTook.Seconds(), total-fwdTotal, fwdTotal)

	// Wait for both receivers to hold everything.
	deadline := time.Now().Add(p.drainWait)
	for {
		if recv["a"].Count() >= total && recv["b"].Count() >= total {
			break
		}
		if time.Now().After(deadline) || current().Exited() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("drained %v after the generators stopped: a %d, b %d of %d", time.Since(genStart.Add(genTook)).Round(time.Millisecond),
		recv["a"].Count(), recv["b"].Count(), total)
	close(stopSampler)
	<-samplerDone
	sampleOnce()

	pr := current()
	code, took, err := pr.Term(30 * time.Second)
	if err != nil {
		t.Error(err)
	} else if code != 0 {
		t.Errorf("agent exited %d after SIGTERM", code)
	}
	u := pr.Usage()
	t.Logf("SIGTERM: exit %d in %v; second process: CPU %v, peak RSS %.1f MiB", code, took.Round(time.Millisecond), u.CPU().Round(time.Millisecond), float64(u.MaxRSS)/(1<<20))

	writeCSV(t, filepath.Join(dir, "soak.csv"), samples)
	summarize(t, p, samples)

	// Every sequence number of every source at both receivers.
	// The duplicate bound, per output, for the one SIGKILL (plus, for b,
	// what its stop can make the agent resend):
	//   - chunks in flight (sent, ack not yet recorded): max_in_flight
	//     chunks of at most chunk_bytes/payload+1 events each;
	//   - chunks acked whose ack position was not yet persisted: what was
	//     delivered in one fsync_interval (at most the rate);
	//   - docker lines read after the last committed offset: one
	//     checkpoint_interval of lines plus one read turn per file;
	//   - forward events stored, fsynced and their ack lost in the kill:
	//     one per logger (sync mode: one event outstanding each).
	perChunk := chunkBytes/payload + 1
	bound := maxInFlight*perChunk + int(p.rate*fsyncInterval.Seconds()) +
		int(p.rate/2*checkpoint.Seconds()) + containers*readTurn/payload + loggers
	boundB := bound + maxInFlight*perChunk // b's stop: its chunks in flight resent
	for _, id := range []string{"a", "b"} {
		r := recv[id]
		st := r.Stats()
		missing := 0
		for src, n := range want {
			if m := r.MissingCount(src, n); m > 0 {
				missing += m
				t.Errorf("receiver %s: %d of %d events of %s missing, first %v", id, m, n, src, r.Missing(src, n))
			}
		}
		lim := map[string]int{"a": bound, "b": boundB}[id]
		t.Logf("receiver %s: %d events, %d distinct, %d missing, %d duplicates (bound %d), %d unkeyed, %d requests",
			id, st.Events, st.Distinct, missing, st.Duplicates, lim, st.Unkeyed, st.Requests)
		if st.Unkeyed != 0 {
			t.Errorf("receiver %s: %d events without src/seq", id, st.Unkeyed)
		}
		if st.Duplicates > int64(lim) {
			t.Errorf("receiver %s: %d duplicates, bound %d", id, st.Duplicates, lim)
		}
		if st.Distinct != total {
			t.Errorf("receiver %s: %d distinct events, generated %d", id, st.Distinct, total)
		}
		if errs := r.Errors(); len(errs) > 0 {
			t.Logf("receiver %s: connection errors (the outage and the kill cause some): %v", id, errs[:min(len(errs), 3)])
		}
	}
	if n := len(agentproc.LogLines(logPath, "ERROR", "")); n > 0 {
		t.Logf("agent logged %d ERROR lines, e.g. %s", n, agentproc.LogLines(logPath, "ERROR", "")[0])
	}
	if p.full {
		checkFlat(t, p, samples)
	}
}

func loggerSrc(i int) string { return fmt.Sprintf("f%d", i) }

// runLogger sends events {src, seq, log} with fluent-logger-golang at rate
// per second until end, each acked (RequestAck) before the next; a Post
// that fails (the agent was killed) is retried until it is acked, so sent
// counts acked events and seq stays dense. Loggers alternate between TCP
// and the unix socket.
func runLogger(ctx context.Context, i int, addr, sock string, rate float64, end time.Time, sent *atomic.Int64) error {
	host, port, _ := strings.Cut(addr, ":")
	pn, _ := strconv.Atoi(port)
	cfg := fluent.Config{
		FluentNetwork: "tcp", FluentHost: host, FluentPort: pn,
		RequestAck: true, SubSecondPrecision: true,
		Timeout: 3 * time.Second, WriteTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		RetryWait: 100, MaxRetry: 5, MaxRetryWait: 2000,
	}
	if i%2 == 1 {
		cfg.FluentNetwork, cfg.FluentSocketPath = "unix", sock
	}
	lg, err := fluent.New(cfg)
	if err != nil {
		return fmt.Errorf("logger %d: %w", i, err)
	}
	defer lg.Close()
	src, pad := loggerSrc(i), strings.Repeat("f", fwdPad)
	start := time.Now()
	tag := "fwd." + src
	var seq int64
	for {
		now := time.Now()
		if !now.Before(end) || ctx.Err() != nil {
			return nil
		}
		due := int64(now.Sub(start).Seconds() * rate)
		for ; seq < due && time.Now().Before(end); seq++ {
			rec := map[string]any{"src": src, "seq": seq, "log": pad}
			for attempt := 0; ; attempt++ {
				err := lg.Post(tag, rec)
				if err == nil {
					break
				}
				if ctx.Err() != nil || time.Since(end) > 2*time.Minute {
					return fmt.Errorf("logger %d: seq %d not acked: %w", i, seq, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			sent.Store(seq + 1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func renderConfig(data, root, fwdAddr, sock, metricsAddr, a, b string) string {
	var s strings.Builder
	fmt.Fprintf(&s, `data_dir: %q
log_level: info
metrics_addr: %q
shutdown_grace: 10s
inputs:
  - id: containers
    type: docker
    root: %q
    parse_json: true
    tag: "docker.{name}"
    poll_interval: 200ms
    checkpoint_interval: %q
  - id: fwd
    type: forward
    listen: %q
    unix: %q
outputs:
`, data, metricsAddr, root, checkpoint.String(), fwdAddr, sock)
	for _, o := range []struct{ id, addr string }{{"a", a}, {"b", b}} {
		fmt.Fprintf(&s, `  - id: %s
    type: forward
    servers:
      - address: %q
    max_in_flight: %d
    ack_timeout: 10s
    connect_timeout: 1s
    heartbeat_interval: 200ms
    retry_initial: 100ms
    retry_max: 1s
    buffer:
      max_bytes: 16GiB
      chunk_bytes: %dKiB
      overflow: block
      fsync: interval
      fsync_interval: %q
`, o.id, o.addr, maxInFlight, chunkBytes>>10, fsyncInterval.String())
	}
	s.WriteString(`routes:
  - match: "**"
    outputs: [a, b]
`)
	return s.String()
}

func writeCSV(t *testing.T, path string, samples []sample) {
	var b strings.Builder
	b.WriteString("t_s,pid,rss_bytes,hwm_bytes,goroutines,open_fds,cpu_s,sent,recv_a,recv_b,b_down\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.0f,%d,%d,%d,%.0f,%.0f,%.2f,%d,%d,%d,%v\n", s.at.Seconds(), s.pid, s.rss, s.hwm, s.goroutines, s.fds,
			s.cpu.Seconds(), s.sent, s.recvA, s.recvB, s.bDown)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
	if p := os.Getenv("SLUICE_SOAK_CSV"); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%s:\n%s", path, b.String())
}

// window is the min and max of RSS and goroutines over samples in [from, to).
type window struct {
	n              int
	rssMin, rssMax int64
	gorMin, gorMax float64
	fdsMax         float64
}

func span(samples []sample, from, to time.Duration) window {
	w := window{rssMin: 1 << 62, gorMin: 1e18}
	for _, s := range samples {
		if s.at < from || s.at >= to || s.goroutines < 0 || s.rss == 0 { // not up at that moment (the kill)
			continue
		}
		w.n++
		w.rssMin, w.rssMax = min(w.rssMin, s.rss), max(w.rssMax, s.rss)
		w.gorMin, w.gorMax = min(w.gorMin, s.goroutines), max(w.gorMax, s.goroutines)
		w.fdsMax = max(w.fdsMax, s.fds)
	}
	return w
}

func (w window) String() string {
	if w.n == 0 {
		return "no samples"
	}
	return fmt.Sprintf("%d samples: RSS %.1f..%.1f MiB, goroutines %.0f..%.0f, open fds max %.0f",
		w.n, float64(w.rssMin)/(1<<20), float64(w.rssMax)/(1<<20), w.gorMin, w.gorMax, w.fdsMax)
}

func summarize(t *testing.T, p plan, samples []sample) {
	warm := min(warmUp, p.duration/6)
	t.Logf("after warm-up (+%v..end): %v", warm, span(samples, warm, 1<<62))
	t.Logf("  up    (+%v..+%v): %v", warm, p.downAt, span(samples, warm, p.downAt))
	t.Logf("  b down (+%v..+%v, SIGKILL at +%v): %v", p.downAt, p.downAt+p.downFor, p.killAt, span(samples, p.downAt, p.downAt+p.downFor))
	t.Logf("  last third (+%v..end): %v", p.duration-p.duration/3, span(samples, p.duration-p.duration/3, 1<<62))
}

// checkFlat asserts that nothing grows with time once warm: the first
// window (warm-up over, both outputs up, first process) against the last
// third (second process, b back and drained).
//
//   - RSS: the last third's maximum within 25% of the first window's.
//     Between collections the heap grows toward twice the live heap
//     (GOGC=100), so single samples scatter by tens of percent; maxima over
//     minutes of samples at the same load differ much less. b's backlog
//     drain adds in-flight chunks (max_in_flight × chunk_bytes, 1 MiB) and
//     reading the queue from disk, not memory per event. A leak of a few
//     bytes per event (20,000/s for 20 minutes: 24 M events) or per
//     rotation, connection or chunk would exceed 25% of a ~50-100 MiB
//     agent.
//   - goroutines: at most 50 more. The count is fixed by the config (two
//     inputs, two outputs, 16 forward connections, one reader per tailed
//     file); rotations (one a container every 80 s) and reconnects come
//     and go. A goroutine leaked per rotation (about 60 in the last third),
//     per reconnect or per chunk (thousands) exceeds 50.
func checkFlat(t *testing.T, p plan, samples []sample) {
	if p.duration < 9*time.Minute {
		t.Logf("flatness not checked: SLUICE_SOAK_DURATION %v leaves no window after a %v warm-up before the outage", p.duration, warmUp)
		return
	}
	first := span(samples, warmUp, p.downAt)
	last := span(samples, p.duration-p.duration/3, 1<<62)
	if first.n < 3 || last.n < 3 {
		t.Errorf("too few samples to judge: first window %d, last third %d", first.n, last.n)
		return
	}
	if lim := first.rssMax + first.rssMax/4; last.rssMax > lim {
		t.Errorf("RSS not flat: last third's max %.1f MiB > 1.25 × first window's max %.1f MiB", float64(last.rssMax)/(1<<20), float64(first.rssMax)/(1<<20))
	}
	if last.gorMax > first.gorMax+50 {
		t.Errorf("goroutines not flat: last third's max %.0f > first window's max %.0f + 50", last.gorMax, first.gorMax)
	}
	if last.fdsMax > first.fdsMax+50 {
		t.Errorf("open fds not flat: last third's max %.0f > first window's max %.0f + 50", last.fdsMax, first.fdsMax)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

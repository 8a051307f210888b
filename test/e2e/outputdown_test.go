package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// generate runs every container at rate lines/s for d, in parallel, and
// returns when all are done (or ctx is cancelled). It may run in its own
// goroutine: write errors are reported with t.Error.
func (e *env) generate(ctx context.Context, rate float64, d time.Duration, types ...string) {
	e.t.Helper()
	if len(types) == 0 {
		types = logTypes
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(types))
	for _, lt := range types {
		c := e.cont[lt]
		wg.Go(func() {
			if err := c.Run(ctx, int(rate*d.Seconds()), rate); err != nil && ctx.Err() == nil {
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

// TestE2E_OutputDown (b): lines are written at a steady rate for 30 s; the
// audit receiver is down for the middle 10 s. The app and access outputs
// must keep their throughput and latency during the outage (their own
// queues are independent); audit gets everything after it returns.
func TestE2E_OutputDown(t *testing.T) {
	const (
		rate  = 1000.0 // lines/s per container
		phase = 10 * time.Second
	)
	e := newEnv(t, envOptions{payload: 200})
	e.start()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	genDone := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(genDone)
		e.generate(ctx, rate, 3*phase)
	}()

	time.Sleep(phase)
	down := time.Now()
	e.recv["audit"].Stop()
	t.Logf("audit receiver stopped at +%v", down.Sub(t0).Round(time.Millisecond))
	time.Sleep(phase)
	up := time.Now()
	if err := e.recv["audit"].Start(); err != nil {
		t.Fatal(err)
	}
	auditAtUp := e.recv["audit"].Count()
	t.Logf("audit receiver restarted at +%v holding %d lines", up.Sub(t0).Round(time.Millisecond), auditAtUp)
	<-genDone
	genEnd := time.Now()

	if !e.waitAll(2 * time.Minute) {
		e.summary()
		e.verify()
		t.Fatal("not every line delivered")
	}
	caughtUp := time.Now()
	text := e.metrics()
	e.term(30 * time.Second)

	// Throughput and latency of the healthy outputs, before vs during.
	// Skip the first 2 s (agent start) and the 1 s edge after the stop.
	for _, lt := range []string{"app", "access"} {
		r := e.recv[lt]
		before := r.Window(t0.Add(2*time.Second), down)
		during := r.Window(down.Add(time.Second), up)
		after := r.Window(up.Add(time.Second), genEnd)
		t.Logf("%s before: %v", lt, before)
		t.Logf("%s during audit outage: %v", lt, during)
		t.Logf("%s after: %v", lt, after)
		checkNotSlower(t, lt, before, during)
	}
	audit := e.recv["audit"]
	t.Logf("audit: %d lines at restart, %d written in total; caught up %v after restart (%v after the generator stopped); connection failures %v, retries %v",
		auditAtUp, e.cont["audit"].Seq(), caughtUp.Sub(up).Round(time.Millisecond), caughtUp.Sub(genEnd).Round(time.Millisecond),
		agentproc.MetricSum(text, "sluice_output_connection_failures_total", `output="audit"`),
		agentproc.MetricSum(text, "sluice_output_retries_total", `output="audit"`))
	if auditAtUp >= e.cont["audit"].Seq() {
		t.Errorf("audit received everything while down?")
	}
	t.Logf("audit after restart: %v", audit.Window(up, caughtUp.Add(time.Second)))
	e.verify()
}

// checkNotSlower asserts that during keeps before's rate within 25% and its
// mean latency within 3x + 250 ms (generous: the machine is shared).
func checkNotSlower(t *testing.T, name string, before, during receiver.WindowStats) {
	t.Helper()
	if before.Events == 0 || during.Events == 0 {
		t.Errorf("%s: no events before (%d) or during (%d) the outage", name, before.Events, during.Events)
		return
	}
	if during.Rate < 0.75*before.Rate {
		t.Errorf("%s: throughput dropped during the outage: %.0f/s vs %.0f/s before", name, during.Rate, before.Rate)
	}
	if limit := 3*before.MeanLatency + 250*time.Millisecond; during.MeanLatency > limit {
		t.Errorf("%s: mean latency during the outage %v > %v (3x before + 250ms)", name, during.MeanLatency, limit)
	}
}

package dockertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestFiNC is the outage that motivates the project: every aggregator is
// down, and containers using the fluentd driver in its default sync mode
// (no fluentd-async) must still start, because they only talk to the local
// agent. It starts 20 containers with the aggregators up, then 20 with
// them down, compares the `docker run -d` latencies, checks that a
// container pointed at a dead address does fail (what happens without the
// agent), then brings the aggregators back: every line of all 40
// containers is delivered.
func TestFiNC(t *testing.T) {
	requireDocker(t)
	e := newEnv(t, envOptions{forward: true})
	e.start()

	const (
		containers = 20
		parallel   = 4   // concurrent `docker run -d`, the same in both rounds
		n          = 200 // sequences per type and container
	)
	args := []string{"-n", fmt.Sprint(n), "-long-every", "50"}
	round := func(prefix string) []spec {
		var specs []spec
		for i := range containers {
			addr := "tcp://" + e.tcpAddr
			if i%2 == 1 {
				addr = "unix://" + e.unixPath
			}
			specs = append(specs, spec{name: fmt.Sprintf("%s%02d", prefix, i), driver: "fluentd", logOpts: fluentd(addr), args: args})
		}
		return specs
	}
	x := expect{}

	// Round 1: aggregators up.
	up := round("up")
	csUp := mustRun(t, parallel, up...)
	for _, s := range up {
		x.add(s, n)
	}
	latUp := summarize(csUp)
	t.Logf("aggregators UP:   docker run -d %s", latUp)

	// Round 2: every aggregator down.
	for _, r := range e.recv {
		r.Stop()
	}
	before := map[string]int64{}
	for lt, r := range e.recv {
		before[lt] = r.Stats().Events
	}
	down := round("down")
	csDown := run(t, parallel, down...)
	for _, c := range csDown {
		if c.err != nil {
			t.Errorf("container %s did not start with every aggregator down: %v", c.name, c.err)
		}
	}
	for _, s := range down {
		x.add(s, n)
	}
	latDown := summarize(csDown)
	t.Logf("aggregators DOWN: docker run -d %s", latDown)
	if latDown.n != containers {
		t.Fatalf("%d of %d containers started with the aggregators down", latDown.n, containers)
	}
	// The containers also run to completion: the agent takes their output
	// although nothing can be forwarded.
	t0 := time.Now()
	if err := waitExit(csDown, 2*time.Minute); err != nil {
		t.Fatalf("containers blocked or failed with the aggregators down: %v", err)
	}
	t.Logf("all %d containers exited 0 within %v with every aggregator still down", containers, time.Since(t0).Round(time.Millisecond))
	for lt, r := range e.recv {
		if got := r.Stats().Events; got != before[lt] {
			t.Fatalf("%s receiver got events while stopped", lt)
		}
	}
	// Allow generous noise: the two rounds share a 2-core machine, and
	// `docker run` itself takes seconds on this storage driver.
	if latDown.median > 2*latUp.median+2*time.Second {
		t.Errorf("start latency with aggregators down (median %v) much higher than up (median %v)", latDown.median, latUp.median)
	}

	// Without the agent (nothing listening), sync mode fails the start:
	// the single point of failure the agent removes.
	dead := run(t, 1, spec{name: "dead", driver: "fluentd", logOpts: fluentd("tcp://" + agentproc.FreeAddr(t)), args: []string{"-n", "1"}})[0]
	if dead.err == nil || !strings.Contains(dead.err.Error(), "failed to initialize logging driver") {
		t.Errorf("container with a dead fluentd-address: err = %v, want a start failure", dead.err)
	} else {
		t.Logf("control: with nothing listening, docker run fails after %v: %v", dead.took.Round(time.Millisecond), dead.err)
	}

	// Aggregators back: everything is delivered.
	t0 = time.Now()
	for _, r := range e.recv {
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := waitExit(csUp, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !e.waitDelivered(x, 2*time.Minute) {
		t.Errorf("not everything delivered within 2 min of the aggregators' return")
	}
	took := time.Since(t0)
	dups := e.checkDelivered(x, nil)
	t.Logf("after the aggregators returned: %d lines of %d containers delivered in %v, duplicates %d",
		x.total(), 2*containers, took.Round(time.Millisecond), dups)
}

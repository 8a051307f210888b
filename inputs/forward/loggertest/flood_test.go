package loggertest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/forward"
	"github.com/sluice-agent/sluice/pipeline"
)

// startWithMetrics is start with a metrics set to read.
func startWithMetrics(t *testing.T, cfg config.ForwardInput) (*forward.Input, *memQueue, *metrics.Set) {
	t.Helper()
	q := &memQueue{}
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"q"}}}, "",
		[]pipeline.OutputQueue{{ID: "q", Queue: q}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	in, err := forward.New("fw", cfg, r, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	in.Addr()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return in, q, set
}

func waitCount(t *testing.T, set *metrics.Set, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for set.GetOrCreateCounter(name).Get() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", name, set.GetOrCreateCounter(name).Get(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestDockerDriverSurvivesFlood is Docker's driver in its default sync
// mode, without acks: it connects at container start, and the container
// has not logged yet when silent connections fill every slot. Its
// connection, unused and the oldest, is the first closed to make room;
// then the container logs: every line arrives, the first included (the
// agent resets the connections it evicts, so fluent-logger-golang's first
// write fails and it reconnects and sends again, where a plain close
// would have let that write "succeed" into a dead connection). Then, used,
// the connection is never evicted again however long the flood goes on.
func TestDockerDriverSurvivesFlood(t *testing.T) {
	const max = 64
	in, q, set := startWithMetrics(t, config.ForwardInput{Listen: "127.0.0.1:0", MaxConnections: max})
	host, port, _ := net.SplitHostPort(in.Addr().String())
	p, _ := strconv.Atoi(port)
	cfg := dockerConfig(false, true, false)
	cfg.FluentNetwork, cfg.FluentHost, cfg.FluentPort = "tcp", host, p
	f, err := fluent.New(cfg) // sync: dials now, as at container start
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitCount(t, set, `sluice_input_connections_total{input="fw"}`, 1)

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	dialFlood := func(n int) {
		for range n {
			c, err := net.Dial("tcp", in.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			flood = append(flood, c)
		}
	}
	dialFlood(max)
	const evicted = `sluice_input_connections_evicted_total{input="fw",reason="unused"}`
	waitCount(t, set, evicted, 1) // the driver's connection
	time.Sleep(20 * time.Millisecond)

	const n = 200
	t0 := time.Now()
	for i := range n {
		if err := f.PostWithTime("app", time.Now(), dockerLine("stdout", fmt.Sprintf("line %d", i))); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if i == n/2 {
			dialFlood(2 * max) // the flood goes on: silent ones are closed, not the driver's
			waitCount(t, set, evicted, 2+2*max)
		}
	}
	got := q.wait(t, n)
	for i, e := range got {
		if e.record["log"] != fmt.Sprintf("line %d", i) {
			t.Fatalf("event %d: %v (first line lost or reordered?)", i, e.record["log"])
		}
	}
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	if v := set.GetOrCreateCounter(evicted).Get(); v != 2+2*max {
		t.Fatalf("%d evictions, want %d (the driver evicted once, its reconnect made room once more)", v, 2+2*max)
	}
	t.Logf("%d lines delivered in %v after the driver's connection was evicted by a flood of %d", n, time.Since(t0).Round(time.Millisecond), max)
}

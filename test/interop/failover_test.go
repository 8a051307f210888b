package interop

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/loggen"
)

// TestSluiceFailover runs Sluice's forward output with two servers of the
// same peer kind, the second `standby: true`, while a container logs a
// steady stream; the active server is killed with SIGKILL mid-stream. Every
// sequence number must arrive at one of the two (duplicates are allowed:
// chunks in flight on the killed connection are resent, and are counted).
//
// What a receiver acked must survive its kill -9 for the check to be about
// Sluice: Fluentd writes with the unbuffered out_stdout before it acks;
// Fluent Bit acks once the event is in its input chunk, which is a file
// (storage.type filesystem), so the killed Fluent Bit is started again at
// the end, on the same storage, to flush what it had acked.
func TestSluiceFailover(t *testing.T) {
	for _, kind := range []peerKind{fluentd, fluentBit} {
		t.Run(string(kind), func(t *testing.T) {
			kind.need(t)
			sluiceFailover(t, kind)
		})
	}
}

func sluiceFailover(t *testing.T, kind peerKind) {
	const (
		n    = 10000
		rate = 2500.0 // lines/s: 4 s of logging
	)
	t0 := time.Now()
	dir := t.TempDir()
	o := fwdOpts{Ack: true}
	active := startReceiver(t, kind, "active", dir, o)
	standby := startReceiver(t, kind, "standby", dir, o)

	root := filepath.Join(dir, "containers")
	c, err := loggen.New(root, loggen.Options{Name: "c-failover", LogType: "app", Payload: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := c.Src()
	s := startSluice(t, "sluice", dir, sluiceConf{
		DockerRoot:  root,
		Servers:     []peerServer{{Port: active.port}, {Port: standby.port, Standby: true}},
		Fwd:         o,
		MetricsAddr: listenAddr(t),
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logged := make(chan error, 1)
	go func() { logged <- c.Run(ctx, n, rate) }()

	// Kill the active server once it has a quarter of the stream.
	deadline := time.Now().Add(30 * time.Second)
	var atKill int
	for {
		atKill = active.read().distinct(src, n)
		if atKill >= n/4 {
			break
		}
		if time.Now().After(deadline) || active.Exited() || s.proc.Exited() {
			t.Fatalf("active %s got only %d events in 30 s", kind, atKill)
		}
		time.Sleep(50 * time.Millisecond)
	}
	active.Kill()
	killedAt := time.Since(t0)
	if err := <-logged; err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(t0)

	union := func() *tally {
		tl := active.read()
		tl.merge(standby.read())
		return tl
	}
	tl := waitQuiet(t, union, src, n, s)
	pending := s.metric("sluice_buffer_pending_chunks")
	retries := s.metric("sluice_output_retries_total")
	failures := s.metric("sluice_output_connection_failures_total")
	restarted := false
	if kind == fluentBit && tl.distinct(src, n) < n {
		// Sluice holds nothing more (every chunk acked); what is missing
		// was acked by the killed Fluent Bit and sits in its storage.
		before := tl.distinct(src, n)
		if pending != 0 {
			t.Errorf("union incomplete (%d/%d) while Sluice still holds %v chunks", before, n, pending)
		}
		active = startReceiverOn(t, kind, "active", dir, active.port, o)
		restarted = true
		tl = waitTally(t, union, src, n, 30*time.Second, func() bool { return s.proc.Exited() })
		t.Logf("Sluice had every chunk acked (pending %v) with %d/%d in the outputs; restarting the killed %s on its storage flushed %d more",
			pending, before, n, kind, tl.distinct(src, n)-before)
	}

	r := tl.check(src, n)
	ra, rb := active.read(), standby.read()
	if r.Missing > 0 {
		t.Errorf("active+standby received %s", r)
	}
	if r.Extra > 0 || tl.unkeyed > 0 {
		t.Errorf("%d unexpected and %d unkeyed events", r.Extra, tl.unkeyed)
	}
	gotB := rb.distinct(src, n)
	if gotB == 0 {
		t.Errorf("the standby %s received nothing after the active one was killed", kind)
	}
	overlap := 0
	for seq := range ra.seen[src] {
		if rb.seen[src][seq] > 0 {
			overlap++
		}
	}
	down := logLines(s.Log(), `"forward server down"`, "127.0.0.1:"+itoa(active.port))
	if len(down) == 0 {
		t.Errorf("Sluice did not log the active server down")
	}
	s.term()
	t.Logf("sluice -> %s active+standby: %d lines written at %.0f/s in %v; active killed at %v with %d events; "+
		"active %d distinct (restarted: %v), standby %d distinct, %d in both; union %s; total %v",
		kind, n, rate, wrote.Round(time.Millisecond), killedAt.Round(time.Millisecond), atKill,
		ra.distinct(src, n), restarted, gotB, overlap, r, time.Since(t0).Round(time.Millisecond))
	t.Logf("Sluice: %v retries, %v connection failures; logged %s", retries, failures, first(down))
}

// waitQuiet re-reads the output until src has every seq in [0, n), or
// Sluice's queue is empty and the count has not moved for 1.5 s, or 60 s
// pass.
func waitQuiet(t *testing.T, read func() *tally, src string, n int, s *sluiceProc) *tally {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last, since := -1, time.Now()
	for {
		tl := read()
		got := tl.distinct(src, n)
		if got != last {
			last, since = got, time.Now()
		}
		if got == n || time.Now().After(deadline) || s.proc.Exited() ||
			(time.Since(since) > 1500*time.Millisecond && s.metric("sluice_buffer_pending_chunks") == 0) {
			return tl
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFluentdFailoverToSluice is the reverse: Fluentd's out_forward with two
// Sluice servers, the second `standby true`, while the file Fluentd tails
// grows; the active Sluice is killed with SIGKILL mid-stream. Sluice acks a
// chunk only once it is in its disk queue, so what the killed Sluice acked
// is in its queue: it is started again at the end on the same data_dir, and
// its file output plus the standby's must then hold every sequence number
// (duplicates allowed and counted: Fluentd resends chunks whose ack it did
// not get).
func TestFluentdFailoverToSluice(t *testing.T) {
	fluentd.need(t)
	const (
		n     = 10000
		batch = 250 // lines appended every 100 ms: 4 s of logging
	)
	t0 := time.Now()
	dir := t.TempDir()
	o := fwdOpts{Ack: true}
	sluices := make([]*sluiceProc, 2)
	outs := make([]string, 2)
	for i, name := range []string{"active", "standby"} {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		outs[i] = filepath.Join(d, "out.jsonl")
		sluices[i] = startSluice(t, name, d, sluiceConf{Listen: listenAddr(t), FilePath: outs[i], Fwd: o, MetricsAddr: listenAddr(t)})
	}
	active, standby := sluices[0], sluices[1]
	readA := func() *tally { return readTally(jsonLine, outs[0]) }
	readB := func() *tally { return readTally(jsonLine, outs[1]) }
	union := func() *tally { tl := readA(); tl.merge(readB()); return tl }

	src := "fluentd-failover"
	input := filepath.Join(dir, "input.jsonl")
	writeSeqLines(t, input, src, 0, batch)
	peer := startSender(t, fluentd, "fluentd", dir, input,
		[]peerServer{{Port: active.port()}, {Port: standby.port(), Standby: true}}, o)

	written, atKill := batch, 0
	var killedAt time.Duration
	for written < n {
		time.Sleep(100 * time.Millisecond)
		writeSeqLines(t, input, src, written, batch)
		written += batch
		if killedAt == 0 {
			if atKill = readA().distinct(src, n); atKill >= n/4 {
				active.proc.Kill()
				killedAt = time.Since(t0)
			}
		}
		if peer.Exited() || standby.proc.Exited() {
			t.Fatal("fluentd or the standby Sluice exited")
		}
	}
	wrote := time.Since(t0)
	if killedAt == 0 {
		t.Fatalf("the active Sluice stored only %d events while %d were written", atKill, n)
	}

	// Fluentd detaches the dead server after hard_timeout (2 s) without
	// heartbeat; its failed chunks then go to the standby.
	deadline := time.Now().Add(30 * time.Second)
	for readB().distinct(src, n) == 0 && time.Now().Before(deadline) && !standby.proc.Exited() {
		time.Sleep(100 * time.Millisecond)
	}
	tl := waitQuiet(t, union, src, n, standby)
	before := tl.distinct(src, n)
	// Drain what the killed Sluice had acked from its queue.
	active.start()
	tl = waitTally(t, union, src, n, 30*time.Second, func() bool { return active.proc.Exited() || standby.proc.Exited() })

	r := tl.check(src, n)
	ra, rb := readA(), readB()
	if r.Missing > 0 {
		t.Errorf("active+standby Sluice stored %s", r)
	}
	if r.Extra > 0 || tl.unkeyed > 0 {
		t.Errorf("%d unexpected and %d unkeyed events", r.Extra, tl.unkeyed)
	}
	if rb.distinct(src, n) == 0 {
		t.Errorf("the standby Sluice received nothing after the active one was killed")
	}
	for _, s := range sluices {
		s.term()
	}
	t.Logf("fluentd -> sluice active+standby: %d lines written in %v; active killed at %v with %d events in its file; "+
		"union before restarting it %d, after %s; active %d distinct, standby %d distinct; total %v",
		n, wrote.Round(time.Millisecond), killedAt.Round(time.Millisecond), atKill, before, r,
		ra.distinct(src, n), rb.distinct(src, n), time.Since(t0).Round(time.Millisecond))
	t.Logf("fluentd logged: %s", first(logLines(peer.Log(), "detached forwarding server")))
}

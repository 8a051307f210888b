package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestE2E_Kill9 (c): lines are written at a steady rate while the agent is
// killed with SIGKILL three times and restarted on the same data_dir.
// Nothing may be missing; duplicates are counted and bounded.
//
// The duplicate bound, per output and per kill, is the sum of what a
// SIGKILL can legitimately make the agent send twice:
//
//   - chunks in flight (sent, ack not yet recorded): max_in_flight chunks
//     of at most chunk_bytes/payload+1 events each (an entry is larger than
//     its payload, and a chunk is cut once it reaches chunk_bytes);
//   - chunks acked but whose ack position was not yet persisted: at most
//     what was delivered in one fsync_interval (if the queue persists its
//     ack position on every ack this term is 0 in practice);
//   - lines read after the last committed offset: what was written in one
//     checkpoint_interval, plus one read turn of the docker input (256 KiB
//     per file, at most 256 KiB/payload lines).
func TestE2E_Kill9(t *testing.T) {
	const (
		rate          = 1500.0 // lines/s per container
		runFor        = 24 * time.Second
		kills         = 3
		maxInFlight   = 4
		chunkBytes    = 64 << 10
		payload       = 200
		checkpoint    = 500 * time.Millisecond
		fsyncInterval = time.Second
		readTurn      = 256 << 10
	)
	e := newEnv(t, envOptions{
		payload:    payload,
		checkpoint: checkpoint,
		output: func(o *agentproc.Output) {
			o.MaxInFlight = maxInFlight
			o.Buffer = agentproc.Buffer{ChunkBytes: "64KiB", FsyncInterval: fsyncInterval}
		},
	})
	e.start()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	genDone := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(genDone)
		e.generate(ctx, rate, runFor)
	}()

	for i := range kills {
		time.Sleep(runFor / (kills + 1))
		before := map[string]int64{}
		for _, lt := range logTypes {
			before[lt] = e.recv[lt].Count()
		}
		e.kill()
		t.Logf("kill -9 #%d at +%v (pid %d); delivered so far: app %d, access %d, audit %d",
			i+1, time.Since(t0).Round(time.Millisecond), e.proc.Pid(), before["app"], before["access"], before["audit"])
		time.Sleep(300 * time.Millisecond)
		e.start()
	}
	<-genDone
	if !e.waitAll(2 * time.Minute) {
		e.summary()
		e.verify()
		t.Fatal("not every line delivered after the kills")
	}
	t.Logf("everything delivered %v after the generator stopped (%d agent starts)", time.Since(t0)-runFor, e.starts)
	e.term(30 * time.Second)
	e.verify()

	perChunk := chunkBytes/payload + 1
	perKill := maxInFlight*perChunk + int(rate*fsyncInterval.Seconds()) + int(rate*checkpoint.Seconds()) + readTurn/payload
	bound := int64(kills * perKill)
	for _, lt := range logTypes {
		d := e.recv[lt].Duplicates()
		t.Logf("%s: %d duplicates (%.2f%% of %d lines); bound %d = %d kills x (%d in flight x %d events + %d fsync + %d checkpoint + %d read turn)",
			lt, d, 100*float64(d)/float64(e.cont[lt].Seq()), e.cont[lt].Seq(), bound, kills, maxInFlight, perChunk,
			int(rate*fsyncInterval.Seconds()), int(rate*checkpoint.Seconds()), readTurn/payload)
		if d > bound {
			t.Errorf("%s: %d duplicates exceed the bound %d", lt, d, bound)
		}
	}
}

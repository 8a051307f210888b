package forward

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/powercut"
	"github.com/sluice-agent/sluice/pipeline"
)

// TestAckedSurvivesPowerCut: clients send Messages that ask for an ack and
// wait for each (as Docker's driver with fluentd-request-ack) into a real
// disk queue whose fsync interval never fires. The power is cut while they
// send (only what an fsync covered survives, internal/testkit/powercut);
// the recovered queue holds every event acked before the cut.
func TestAckedSurvivesPowerCut(t *testing.T) {
	root := t.TempDir()
	disk := powercut.New(root)
	restore := buffer.SetSyncHook(disk.Sync)
	defer restore()
	qdir := root + "/buffer/out"
	q, err := buffer.Open(qdir, buffer.Options{Name: "out", SegmentBytes: 64 << 10, MaxBytes: 1 << 30, FsyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	qctx, stopQ := context.WithCancel(context.Background())
	qdone := make(chan error, 1)
	go func() { qdone <- q.Run(qctx) }()
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q, ChunkBytes: 4 << 10}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	in, err := New("fw", config.ForwardInput{Listen: "127.0.0.1:0"}, r, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopIn := context.WithCancel(context.Background())
	indone := make(chan error, 1)
	go func() { indone <- in.Run(ctx) }()
	addr := in.Addr().String()

	const clients, perClient, cutAfter = 4, 400, 600
	var acked sync.Map // "client-seq" -> true, stored once its ack arrived
	var nAcked atomic.Int64
	cut := make(chan struct{})
	var cutOnce sync.Once
	var wg sync.WaitGroup
	for k := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := range perClient {
				id := fmt.Sprintf("%d-%d", k, i)
				if _, err := c.Write(message("app", 1700000000, rec("log", id), id)); err != nil {
					return // the agent is stopping after the cut
				}
				got := make([]byte, len(ack(id)))
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != string(ack(id)) {
					return // the agent is stopping after the cut
				}
				acked.Store(id, true)
				if nAcked.Add(1) == cutAfter {
					cutOnce.Do(func() { close(cut) })
				}
			}
		})
	}
	<-cut
	// Everything acked up to here must survive.
	var before []string
	acked.Range(func(k, _ any) bool { before = append(before, k.(string)); return true })
	dst := t.TempDir()
	if err := disk.Crash(dst); err != nil {
		t.Fatal(err)
	}
	stopIn()
	wg.Wait()
	<-indone
	stopQ()
	<-qdone
	q.Close()
	restore()

	got, err := powercut.Logs(dst+"/buffer/out", buffer.Options{Name: "out", SegmentBytes: 64 << 10, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, id := range before {
		if got[id] == 0 {
			missing++
		}
	}
	t.Logf("%d events acked before the cut, %d recovered after it, %d fsyncs recorded", len(before), len(got), disk.Syncs())
	if missing > 0 {
		t.Fatalf("%d of %d acked events lost by the power cut", missing, len(before))
	}
}

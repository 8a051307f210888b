package kafka

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
)

// TestAgentKill9: the real agent binary tails three containers' Docker
// json-file logs (one log type each, written at a steady rate) into one
// kafka output, a topic per log type, on a 3-broker kfake cluster on
// 127.0.0.1. The agent is killed with SIGKILL once mid-run and started
// again on the same data_dir. Every topic is read back: nothing is
// missing, and the duplicates stay within what a SIGKILL can make the
// agent send twice (per log type):
//
//   - events in flight: records the broker acknowledged whose chunk was
//     not yet settled; at most max_in_flight_bytes of queued entries plus
//     the chunk being split, each entry larger than its payload, so at
//     most (max_in_flight_bytes + chunk_bytes) / payload events (the
//     idempotent producer of the new process has a new producer id: the
//     broker cannot recognize them);
//   - chunks settled whose acknowledgement was not yet on disk: what was
//     delivered in one buffer fsync_interval;
//   - lines read after the input's last saved offsets: one
//     checkpoint_interval of writes plus one read turn (256 KiB).
//
// The bound is per log type because the output's in-flight bytes are
// shared by the three: it is applied to their sum.
func TestAgentKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the agent")
	}
	const (
		rate          = 3000.0 // lines/s per container
		runFor        = 12 * time.Second
		payload       = 200
		inFlight      = 1 << 20
		chunkBytes    = 64 << 10
		checkpoint    = 500 * time.Millisecond
		fsyncInterval = time.Second
		readTurn      = 256 << 10
	)
	dir := t.TempDir()
	bin, err := agentproc.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, kfake.NumBrokers(3))
	root := filepath.Join(dir, "containers")
	conts := map[string]*loggen.Container{}
	for _, lt := range logTypes {
		cn, err := loggen.New(root, loggen.Options{Name: "c-" + lt, LogType: lt, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.Close() })
		conts[lt] = cn
	}
	metricsAddr := agentproc.FreeAddr(t)
	cfgPath := filepath.Join(dir, "agent.yml")
	cfg := fmt.Sprintf(`data_dir: %q
log_level: warn
metrics_addr: %q
shutdown_grace: 10s
inputs:
  - id: containers
    type: docker
    root: %q
    parse_json: true
    tag: "{field:log_type}.{name}"
    poll_interval: 200ms
    checkpoint_interval: %s
outputs:
  - id: bus
    type: kafka
    brokers: [%s]
    topic: "logs-{field:log_type}"
    key_field: src
    buffer: {chunk_bytes: 64KiB, fsync: interval, fsync_interval: %s}
    delivery: {max_in_flight_bytes: 1MiB, retry_initial: 100ms, retry_max: 1s}
default_output: bus
`, filepath.Join(dir, "data"), metricsAddr, root, checkpoint, `"`+strings.Join(c.ListenAddrs(), `", "`)+`"`, fsyncInterval)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "agent.log")
	p, err := agentproc.Start(bin, cfgPath, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", tail(p.Log(), 40))
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, cn := range conts {
		wg.Go(func() {
			if err := cn.Run(ctx, int(rate*runFor.Seconds()), rate); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
		})
	}
	t0 := time.Now()
	time.Sleep(runFor / 2)
	before := stored(c)
	p.Kill()
	t.Logf("SIGKILL at +%v with %d records stored", time.Since(t0).Round(time.Millisecond), before)
	time.Sleep(300 * time.Millisecond)
	if p, err = agentproc.Start(bin, cfgPath, logPath); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	var total int64
	for _, cn := range conts {
		total += cn.Seq()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for stored(c) < total {
		if p.Exited() {
			t.Fatal("the agent exited")
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records stored after 2 minutes", stored(c), total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // the re-sends of the last chunks, if any
	if code, _, err := p.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d, %v", code, err)
	}
	got := consume(t, c, "logs-app", "logs-access", "logs-audit")
	dups := 0
	for _, lt := range logTypes {
		d := got.check(t, "c-"+lt, int(conts[lt].Seq()), false)
		t.Logf("%s: %d lines, %d duplicates", lt, conts[lt].Seq(), d)
		dups += d
	}
	perType := int(rate*fsyncInterval.Seconds()) + int(rate*checkpoint.Seconds()) + readTurn/payload
	bound := (inFlight+chunkBytes)/payload + len(logTypes)*perType
	t.Logf("%d duplicates of %d lines (%.2f%%); bound %d = (1MiB in flight + 64KiB chunk) / %d B + 3 log types x (%d fsync interval + %d checkpoint + %d read turn)",
		dups, total, 100*float64(dups)/float64(total), bound, payload, int(rate*fsyncInterval.Seconds()), int(rate*checkpoint.Seconds()), readTurn/payload)
	if dups > bound {
		t.Errorf("%d duplicates exceed the bound %d", dups, bound)
	}
}

// stored is the number of records the cluster holds in the three topics.
func stored(c *kfake.Cluster) int64 {
	var n int64
	for _, lt := range logTypes {
		for _, p := range c.PartitionInfos("logs-" + lt) {
			n += p.HighWatermark - p.LogStartOffset
		}
	}
	return n
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

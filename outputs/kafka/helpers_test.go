package kafka

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// newCluster starts an in-process cluster (3 brokers unless opts say
// otherwise) that creates topics on demand with 3 partitions.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testConfig is the default section pointed at c, with short timeouts.
func testConfig(c *kfake.Cluster) config.KafkaOutput {
	k := config.DefaultKafkaOutput()
	k.Brokers = c.ListenAddrs()
	k.RequestTimeout = time.Second
	k.DeliveryTimeout = 3 * time.Second
	k.DialTimeout = time.Second
	return k
}

func fastDelivery() config.Delivery {
	return config.Delivery{RetryInitial: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond, FlushInterval: 50 * time.Millisecond}
}

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newOutput(t testing.TB, id string, cfg config.KafkaOutput, d config.Delivery, src delivery.Source, dataDir string, set *metrics.Set) *Output {
	t.Helper()
	o, err := New(id, cfg, d, dataDir, src, testLog(t), set)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func openQueue(t testing.TB, dir string) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{Name: "kafka"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// testRecord is the record of event seq: {"src", "seq", "log_type",
// "log"} with a log line of about pad bytes.
func testRecord(src string, seq int, logType string, pad int) []byte {
	r := msgp.AppendMapHeader(nil, 4)
	r = msgp.AppendString(msgp.AppendString(r, "src"), src)
	r = msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
	r = msgp.AppendString(msgp.AppendString(r, "log_type"), logType)
	line := fmt.Sprintf(`{"src":%q,"seq":%d,"msg":"%s"}`+"\n", src, seq, strings.Repeat("x", pad))
	return msgp.AppendString(msgp.AppendString(r, "log"), line)
}

// fill appends events [from, from+n) of src in chunks of per events,
// tagged tag.
func fill(t testing.TB, q *buffer.Queue, tag, src, logType string, from, n, per, pad int) {
	t.Helper()
	now := time.Now().UnixNano()
	for i := from; i < from+n; i += per {
		var e []byte
		k := min(per, from+n-i)
		for s := i; s < i+k; s++ {
			e = wire.AppendEntry(e, now+int64(s), testRecord(src, s, logType, pad))
		}
		if err := q.Append(context.Background(), []byte(tag), k, e); err != nil {
			t.Fatal(err)
		}
	}
}

type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func start(t testing.TB, o *Output) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- o.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) time.Duration {
	t0 := time.Now()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	return time.Since(t0)
}

func waitEmpty(t testing.TB, q *buffer.Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("queue not settled within %s: %+v", d, q.Stats())
	}
}

// consumed is what a consumer read back from a cluster.
type consumed struct {
	records []*kgo.Record
	seqs    map[string]map[int]int // src → seq → times
}

// consume reads every record of topics (all that exist when nil) from
// the start up to each partition's high watermark.
func consume(t testing.TB, c *kfake.Cluster, topics ...string) *consumed {
	t.Helper()
	out, err := consumeErr(c, topics...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func consumeErr(c *kfake.Cluster, topics ...string) (*consumed, error) {
	want := map[string]map[int32]kgo.Offset{}
	var total int64
	for _, tp := range topics {
		for _, p := range c.PartitionInfos(tp) {
			if p.HighWatermark > p.LogStartOffset {
				if want[tp] == nil {
					want[tp] = map[int32]kgo.Offset{}
				}
				want[tp][p.Partition] = kgo.NewOffset().AtStart()
				total += p.HighWatermark - p.LogStartOffset
			}
		}
	}
	out := &consumed{seqs: map[string]map[int]int{}}
	if total == 0 {
		return out, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumePartitions(want), kgo.DisableClientMetrics(),
		kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for int64(len(out.records)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %d of %d records", len(out.records), total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out.records = append(out.records, r)
			if src, seq, ok := keyOf(r.Value); ok {
				if out.seqs[src] == nil {
					out.seqs[src] = map[int]int{}
				}
				out.seqs[src][seq]++
			}
		})
	}
	return out, nil
}

// keyOf finds "src":"…" and "seq":N in a JSON value (the record's JSON or
// its raw log line).
func keyOf(v []byte) (string, int, bool) {
	src, ok := jsonField(v, `"src":"`, '"')
	if !ok {
		src, ok = jsonField(v, `"src":\"`, '\\')
		if !ok {
			return "", 0, false
		}
	}
	seq, ok := jsonField(v, `"seq":`, ',')
	if !ok {
		return "", 0, false
	}
	n, err := strconv.Atoi(strings.TrimRight(seq, "}"))
	return src, n, err == nil
}

func jsonField(v []byte, prefix string, end byte) (string, bool) {
	i := bytes.Index(v, []byte(prefix))
	if i < 0 {
		return "", false
	}
	rest := v[i+len(prefix):]
	j := bytes.IndexByte(rest, end)
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// check fails unless src's seqs [0, n) were each read at least once
// (exactly once with exact); it returns the duplicates.
func (c *consumed) check(t testing.TB, src string, n int, exact bool) int {
	t.Helper()
	missing, dups := 0, 0
	var first []int
	for i := range n {
		switch k := c.seqs[src][i]; {
		case k == 0:
			missing++
			if len(first) < 10 {
				first = append(first, i)
			}
		case k > 1:
			dups += k - 1
		}
	}
	if extra := len(c.seqs[src]) - (n - missing); extra > 0 {
		t.Errorf("%s: %d seqs beyond %d", src, extra, n)
	}
	if missing > 0 || exact && dups > 0 {
		t.Fatalf("%s: of %d events %d missing (first %v), %d duplicated", src, n, missing, first, dups)
	}
	return dups
}

// waitFor polls cond every 20ms for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

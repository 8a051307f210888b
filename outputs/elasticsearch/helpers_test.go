package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/esfake"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// baseTime is the event time of seq 0: 2024-01-02T03:04:05Z.
var baseTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()

// evTime is the time of event seq: a millisecond and 7ns apart, so the
// nanoseconds show.
func evTime(seq int) int64 { return baseTime + int64(seq)*int64(time.Millisecond+7) }

// rec is {"seq": seq, "log": "line <seq> ...", "app": app}.
func rec(seq int, app string) []byte {
	r := msgp.AppendMapHeader(nil, 3)
	r = msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
	r = msgp.AppendString(msgp.AppendString(r, "log"), fmt.Sprintf("line %d %s", seq, strings.Repeat("x", 60)))
	return msgp.AppendString(msgp.AppendString(r, "app"), app)
}

// fill appends chunks of per events, seq numbers from `from`, tag
// "app.web".
func fill(t testing.TB, q *buffer.Queue, from, chunks, per int) {
	t.Helper()
	n := from
	for range chunks {
		var e []byte
		for range per {
			e = wire.AppendEntry(e, evTime(n), rec(n, "web"))
			n++
		}
		if err := q.Append(context.Background(), []byte("app.web"), per, e); err != nil {
			t.Fatal(err)
		}
	}
}

func openQueue(t testing.TB, dir string) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{Name: filepath.Base(dir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// fastDelivery retries quickly and flushes soon.
func fastDelivery() config.Delivery {
	return config.Delivery{RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, FlushInterval: 50 * time.Millisecond}
}

// esConfig is the defaults with hosts.
func esConfig(hosts ...string) config.ElasticsearchOutput {
	c := config.DefaultElasticsearchOutput()
	c.Hosts = hosts
	return c
}

// logBuffer collects the output's logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type run struct {
	o      *Output
	q      *buffer.Queue
	set    *metrics.Set
	logs   *logBuffer
	dir    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startOutput builds output id over q with cfg and runs it until the test
// ends; dead letters go under dir.
func startOutput(t testing.TB, id string, cfg config.ElasticsearchOutput, d config.Delivery, q *buffer.Queue, dir string) *run {
	t.Helper()
	r := &run{q: q, set: metrics.NewSet(), logs: &logBuffer{}, dir: dir, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o, err := New(id, cfg, d, dir, q, log, r.set)
	if err != nil {
		t.Fatal(err)
	}
	r.o = o
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- o.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *run) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s")
		}
	})
}

func (r *run) counter(name string) uint64 {
	var b bytes.Buffer
	r.set.WritePrometheus(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == name {
			var n uint64
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

func waitEmpty(t testing.TB, q *buffer.Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("queue not settled within %s: %+v", d, q.Stats())
	}
}

// seqs counts the stored documents per seq.
func seqs(t testing.TB, docs []esfake.Doc) map[int]int {
	t.Helper()
	out := map[int]int{}
	for _, d := range docs {
		var v struct {
			Seq *int `json:"seq"`
		}
		if err := json.Unmarshal(d.Source, &v); err != nil || v.Seq == nil {
			t.Fatalf("doc %s: %v", d.Source, err)
		}
		out[*v.Seq]++
	}
	return out
}

// deadLetter is one event of a dead-letter queue.
type deadLetter struct {
	seq            int
	reason, detail string
	output         string
}

// readDeadLetters reads <dir>/deadletter/<id> back.
func readDeadLetters(t testing.TB, dir, id string) []deadLetter {
	t.Helper()
	q, err := buffer.Open(filepath.Join(dir, "deadletter", id), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var out []deadLetter
	for q.Stats().Pending > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := q.Next(ctx)
		cancel()
		if err != nil {
			break
		}
		q.Ack(c.ID)
		err = wire.ForEachEntry(c.Entries, func(_ int64, r []byte) error {
			var dl deadLetter
			v, ok := lookup(r, []byte("seq"))
			if !ok {
				return fmt.Errorf("no seq in %x", r)
			}
			dl.seq, _, _ = msgp.ReadIntBytes(v)
			m, ok := lookup(r, []byte(delivery.DeadLetterKey))
			if !ok {
				return fmt.Errorf("no %s in %x", delivery.DeadLetterKey, r)
			}
			get := func(k string) string { s, _ := wire.LookupString(m, []byte(k)); return string(s) }
			dl.reason, dl.detail, dl.output = get("reason"), get("detail"), get("output")
			out = append(out, dl)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// deadURL is an http URL nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	s := esfake.Start(t)
	u := s.URL()
	s.Close()
	return u
}

// waitLastError waits until the output's last error contains sub.
func waitLastError(t testing.TB, r *run, sub string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg, _ := r.o.LastError()
		if strings.Contains(msg, sub) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("last error %q, want %q", msg, sub)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

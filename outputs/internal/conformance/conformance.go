// Package conformance is the test suite every output must pass, run
// against the real output over a real buffer.Queue and a scripted fake (or
// real) service. An output's test file calls Run with a Harness that says
// how to build the output and drive its service.
//
// # What it checks
//
//   - delivers_all: 5,000 events in 50 chunks all arrive.
//   - partial_failure: events the service answers "retry" for (once each)
//     are sent again, and only they (PerEvent harnesses).
//   - refused_dead_lettered: events the service refuses for good land in
//     the output's dead-letter queue with a reason; every other event is
//     delivered and the queue empties (Refuses harnesses).
//   - restart_mid_request: the output is stopped while requests hang in
//     the service and the queue closed under it, as a crash would leave
//     them; a new output over the reopened queue delivers every event
//     (duplicates allowed, losses not).
//   - dead_service_own_queue: with one output's service down, a second
//     output of the same type keeps delivering everything; the first keeps
//     its data queued and delivers all of it once the service is back.
//   - shutdown_within_grace: Run returns within 2s of its context's end
//     even with a request hanging, and the unsettled chunks stay queued.
//
// Events are records {"src": "conf", "seq": n, "log": "line n ..."}; a
// Service reports which seq numbers the destination stored.
package conformance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Output is what an output under test is.
type Output interface {
	Run(ctx context.Context) error
	Drain()
}

// Mode is the state of a service.
type Mode int

const (
	Up   Mode = iota // answers normally
	Down             // refuses connections or fails every request
	Hang             // accepts requests and never answers
)

// Service drives one destination.
type Service interface {
	SetMode(t *testing.T, m Mode)
	// Accepted returns, per seq, how many times the destination stored it.
	Accepted(t *testing.T) map[int]int
	// Attempts returns, per seq, how many times it reached the destination
	// in a request, whatever the answer (PerEvent harnesses).
	Attempts(t *testing.T) map[int]int
	// FailOnce makes the destination answer "retry later" once for each
	// matching event (PerEvent harnesses).
	FailOnce(t *testing.T, match func(seq int) bool)
	// Refuse makes the destination refuse matching events for good
	// (Refuses harnesses).
	Refuse(t *testing.T, match func(seq int) bool)
}

// Harness is how the suite builds an output and its service.
type Harness struct {
	NewService func(t *testing.T) Service
	// NewOutput builds output id over src, sending to svc, with its
	// dead-letter queue under dataDir. It should use short retry
	// back-offs (at most 100ms) and flush intervals (at most 200ms).
	NewOutput func(t *testing.T, svc Service, id string, src delivery.Source, dataDir string) Output
	PerEvent  bool // the service answers per event
	Refuses   bool // the service can refuse single events for good
	// Timeout bounds each wait for delivery; default 30s.
	Timeout time.Duration
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	t.Run("delivers_all", func(t *testing.T) { deliversAll(t, h) })
	if h.PerEvent {
		t.Run("partial_failure", func(t *testing.T) { partialFailure(t, h) })
	}
	if h.Refuses {
		t.Run("refused_dead_lettered", func(t *testing.T) { refused(t, h) })
	}
	t.Run("restart_mid_request", func(t *testing.T) { restartMidRequest(t, h) })
	t.Run("dead_service_own_queue", func(t *testing.T) { deadServiceOwnQueue(t, h) })
	t.Run("shutdown_within_grace", func(t *testing.T) { shutdownWithinGrace(t, h) })
}

// Record returns the record of event seq.
func Record(seq int) []byte {
	r := msgp.AppendMapHeader(nil, 3)
	r = msgp.AppendString(msgp.AppendString(r, "src"), "conf")
	r = msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
	return msgp.AppendString(msgp.AppendString(r, "log"), fmt.Sprintf("line %d %s", seq, strings.Repeat("x", 80)))
}

// Time is the event time of seq (seconds apart, recent enough for any
// service's retention).
func Time(seq int) int64 {
	return time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano() + int64(seq)*int64(time.Millisecond)
}

// Tag is the events' tag.
const Tag = "conf.app"

func fill(t *testing.T, q *buffer.Queue, from, chunks, per int) {
	t.Helper()
	n := from
	for range chunks {
		var e []byte
		for range per {
			e = wire.AppendEntry(e, Time(n), Record(n))
			n++
		}
		if err := q.Append(context.Background(), []byte(Tag), per, e); err != nil {
			t.Fatal(err)
		}
	}
}

func openQueue(t *testing.T, dir string) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{Name: "conf"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() }) // after the outputs started later stop
	return q
}

type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func start(t *testing.T, o Output) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- o.Run(ctx) }()
	t.Cleanup(func() { r.stop(t, 10*time.Second) })
	return r
}

// stop cancels and waits at most d, returning how long it took.
func (r *running) stop(t *testing.T, d time.Duration) time.Duration {
	t0 := time.Now()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(d):
			r.err = fmt.Errorf("Run did not return within %s of cancel", d)
		}
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	})
	return time.Since(t0)
}

func waitEmpty(t *testing.T, q *buffer.Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("queue not settled within %s: %+v", d, q.Stats())
	}
}

// checkAll fails unless every seq in [0, n) except the skipped ones was
// accepted, and, with exact, exactly once.
func checkAll(t *testing.T, svc Service, n int, exact bool, skip func(int) bool) {
	t.Helper()
	acc := svc.Accepted(t)
	missing, dups := 0, 0
	for i := range n {
		if skip != nil && skip(i) {
			if acc[i] != 0 {
				t.Errorf("seq %d accepted %d times, want none", i, acc[i])
			}
			continue
		}
		switch {
		case acc[i] == 0:
			missing++
		case acc[i] > 1:
			dups++
		}
	}
	if missing > 0 || exact && dups > 0 {
		t.Fatalf("of %d events: %d missing, %d duplicated", n, missing, dups)
	}
}

func deliversAll(t *testing.T, h Harness) {
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	svc := h.NewService(t)
	fill(t, q, 0, 50, 100)
	start(t, h.NewOutput(t, svc, "conf", q, dir))
	waitEmpty(t, q, h.Timeout)
	checkAll(t, svc, 5000, true, nil)
	if st := q.Stats(); st.AckedChunks != 50 || st.DeliveredEvents != 5000 {
		t.Fatalf("queue %+v", st)
	}
}

func partialFailure(t *testing.T, h Harness) {
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	svc := h.NewService(t)
	failed := func(s int) bool { return s%17 == 3 }
	svc.FailOnce(t, failed)
	fill(t, q, 0, 20, 100)
	start(t, h.NewOutput(t, svc, "conf", q, dir))
	waitEmpty(t, q, h.Timeout)
	checkAll(t, svc, 2000, true, nil)
	att := svc.Attempts(t)
	for i := range 2000 {
		want := 1
		if failed(i) {
			want = 2
		}
		if att[i] != want {
			t.Fatalf("seq %d reached the service %d times, want %d (only failed events are retried)", i, att[i], want)
		}
	}
	if st := q.Stats(); st.AckedChunks != 20 {
		t.Fatalf("queue %+v", st)
	}
}

func refused(t *testing.T, h Harness) {
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	svc := h.NewService(t)
	bad := func(s int) bool { return s%100 == 42 }
	svc.Refuse(t, bad)
	fill(t, q, 0, 10, 100)
	r := start(t, h.NewOutput(t, svc, "conf", q, dir))
	waitEmpty(t, q, h.Timeout)
	r.stop(t, 10*time.Second)
	checkAll(t, svc, 1000, true, bad)
	if st := q.Stats(); st.DeadLetteredEvents != 10 || st.DeliveredEvents != 990 {
		t.Fatalf("queue %+v", st)
	}
	got := DeadLetters(t, dir+"/deadletter/conf")
	if len(got) != 10 {
		t.Fatalf("%d dead letters, want 10: %v", len(got), got)
	}
	for seq, reason := range got {
		if !bad(seq) || reason == "" {
			t.Fatalf("dead letter seq %d reason %q", seq, reason)
		}
	}
}

// DeadLetters reads a dead-letter queue directory: seq -> reason.
func DeadLetters(t *testing.T, dir string) map[int]string {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[int]string{}
	for q.Stats().Pending > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := q.Next(ctx)
		cancel()
		if err != nil {
			break // every pending chunk read
		}
		q.Ack(c.ID) // only so that Pending counts down; Close keeps nothing we need
		wire.ForEachEntry(c.Entries, func(_ int64, rec []byte) error {
			seq, ok := SeqOf(rec)
			if !ok {
				t.Fatalf("dead letter without seq: %x", rec)
			}
			reason := ""
			if dl, ok := member(rec, delivery.DeadLetterKey); ok {
				r, _ := wire.LookupString(dl, []byte("reason"))
				reason = string(r)
			}
			out[seq] = reason
			return nil
		})
	}
	return out
}

// SeqOf returns the seq member of a suite record.
func SeqOf(rec []byte) (int, bool) {
	v, ok := member(rec, "seq")
	if !ok {
		return 0, false
	}
	n, _, err := msgp.ReadIntBytes(v)
	return n, err == nil
}

func member(rec []byte, key string) ([]byte, bool) {
	n, rest, ok := wire.ReadMapHeader(rec)
	for i := 0; ok && i < n; i++ {
		var k []byte
		if k, rest, ok = wire.ReadStrBin(rest); !ok {
			return nil, false
		}
		v := rest
		if rest, ok = wire.Skip(rest); !ok {
			return nil, false
		}
		if string(k) == key {
			return v[:len(v)-len(rest)], true
		}
	}
	return nil, false
}

func restartMidRequest(t *testing.T, h Harness) {
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	svc := h.NewService(t)
	svc.SetMode(t, Hang)
	fill(t, q, 0, 10, 100)
	r := start(t, h.NewOutput(t, svc, "conf", q, dir))
	time.Sleep(500 * time.Millisecond) // requests are in flight, hanging
	r.stop(t, 5*time.Second)
	if st := q.Stats(); st.Pending != 10 {
		t.Fatalf("chunks settled while the service hung: %+v", st)
	}
	q.Close()
	q = openQueue(t, dir+"/q")
	svc.SetMode(t, Up)
	start(t, h.NewOutput(t, svc, "conf", q, dir))
	waitEmpty(t, q, h.Timeout)
	checkAll(t, svc, 1000, false, nil)
}

func deadServiceOwnQueue(t *testing.T, h Harness) {
	dir := t.TempDir()
	qa, qb := openQueue(t, dir+"/qa"), openQueue(t, dir+"/qb")
	dead, live := h.NewService(t), h.NewService(t)
	dead.SetMode(t, Down)
	start(t, h.NewOutput(t, dead, "dead", qa, dir))
	start(t, h.NewOutput(t, live, "live", qb, dir))
	for i := range 10 {
		fill(t, qa, i*200, 2, 100)
		fill(t, qb, i*200, 2, 100)
	}
	waitEmpty(t, qb, h.Timeout)
	checkAll(t, live, 2000, true, nil)
	if st := qa.Stats(); st.Pending != 20 || st.AckedChunks != 0 {
		t.Fatalf("dead service's queue: %+v", st)
	}
	dead.SetMode(t, Up)
	waitEmpty(t, qa, h.Timeout)
	checkAll(t, dead, 2000, false, nil)
}

func shutdownWithinGrace(t *testing.T, h Harness) {
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	svc := h.NewService(t)
	svc.SetMode(t, Hang)
	fill(t, q, 0, 5, 100)
	r := start(t, h.NewOutput(t, svc, "conf", q, dir))
	time.Sleep(300 * time.Millisecond)
	if d := r.stop(t, 5*time.Second); d > 2*time.Second {
		t.Fatalf("Run took %s to return", d)
	}
	if st := q.Stats(); st.Pending != 5 {
		t.Fatalf("queue %+v", st)
	}
	svc.SetMode(t, Up)
}

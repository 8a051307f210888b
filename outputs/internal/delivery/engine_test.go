package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
)

// record is {"seq": n, "pad": "..."}.
func record(n int) []byte {
	r := msgp.AppendMapHeader(nil, 2)
	r = msgp.AppendInt(msgp.AppendString(r, "seq"), n)
	return msgp.AppendString(msgp.AppendString(r, "pad"), "0123456789abcdef")
}

func seqOf(t testing.TB, rec []byte) int {
	n, rest, ok := wire.ReadMapHeader(rec)
	if !ok || n < 1 {
		t.Fatalf("bad record %x", rec)
	}
	k, rest, err := msgp.ReadStringBytes(rest)
	if err != nil || k != "seq" {
		t.Fatalf("bad record %x", rec)
	}
	v, _, err := msgp.ReadIntBytes(rest)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fill appends chunks of per events each, seq numbers from 0.
func fill(t testing.TB, q *buffer.Queue, chunks, per int) {
	t.Helper()
	n := 0
	for range chunks {
		var entries []byte
		for range per {
			entries = wire.AppendEntry(entries, int64(1700000000+n)*1e9, record(n))
			n++
		}
		if err := q.Append(context.Background(), []byte("app"), per, entries); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeEncoder collects seq numbers; it is full at max events, refuses
// seq numbers in reject.
type fakeEncoder struct {
	t      testing.TB
	max    int
	reject func(seq int) bool
	seqs   []int
}

func (f *fakeEncoder) Add(ev *Event) error {
	s := seqOf(f.t, ev.Record)
	if f.reject != nil && f.reject(s) {
		return Reject("too_large", "seq %d", s)
	}
	if len(f.seqs) >= f.max {
		return ErrFull
	}
	f.seqs = append(f.seqs, s)
	return nil
}
func (f *fakeEncoder) Full() bool { return len(f.seqs) >= f.max }
func (f *fakeEncoder) Len() int   { return len(f.seqs) }
func (f *fakeEncoder) Bytes() int { return 8 * len(f.seqs) }
func (f *fakeEncoder) Reset()     { f.seqs = f.seqs[:0] }

// fakeSink answers per a script: answer(request number, seqs, res) error.
type fakeSink struct {
	t      testing.TB
	max    int
	reject func(seq int) bool
	answer func(req int, seqs []int, res []Result) error

	mu       sync.Mutex
	requests int
	sent     map[int]int // seq -> times sent
	accepted map[int]int // seq -> times accepted
}

func newSink(t testing.TB, max int) *fakeSink {
	return &fakeSink{t: t, max: max, sent: map[int]int{}, accepted: map[int]int{}}
}

func (s *fakeSink) NewEncoder() Encoder { return &fakeEncoder{t: s.t, max: s.max, reject: s.reject} }

func (s *fakeSink) Send(ctx context.Context, enc Encoder, res []Result) error {
	seqs := enc.(*fakeEncoder).seqs
	s.mu.Lock()
	req := s.requests
	s.requests++
	for _, q := range seqs {
		s.sent[q]++
	}
	s.mu.Unlock()
	var err error
	if s.answer != nil {
		err = s.answer(req, seqs, res)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	for i, q := range seqs {
		if res[i].Status == OK {
			s.accepted[q]++
		}
	}
	s.mu.Unlock()
	return nil
}

func (s *fakeSink) counts() (sent, accepted map[int]int, requests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.sent), clone(s.accepted), s.requests
}

func clone(m map[int]int) map[int]int {
	c := make(map[int]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// countingSource counts Settle calls per chunk.
type countingSource struct {
	*buffer.Queue
	mu      sync.Mutex
	settled map[buffer.ID]int
}

func (c *countingSource) Settle(id buffer.ID, s buffer.Settlement) {
	c.mu.Lock()
	c.settled[id]++
	c.mu.Unlock()
	c.Queue.Settle(id, s)
}

type run struct {
	q      *buffer.Queue
	src    *countingSource
	e      *Engine
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, q *buffer.Queue, sink Sink, o Options) *run {
	t.Helper()
	if o.ID == "" {
		o.ID = "out"
	}
	src := &countingSource{Queue: q, settled: map[buffer.ID]int{}}
	e, err := New(src, sink, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{q: q, src: src, e: e, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *run) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
}

func (r *run) waitEmpty(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.q.WaitEmpty(ctx); err != nil {
		t.Fatalf("queue not drained: %v; stats %+v", err, r.q.Stats())
	}
}

func openQueue(t *testing.T, dir string) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{Name: "out"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func fast() Options {
	return Options{RetryInitial: time.Millisecond, RetryMax: 10 * time.Millisecond, FlushInterval: 20 * time.Millisecond}
}

// TestDeliversAndSettlesOnce: every event delivered once; a chunk spread
// over several batches is settled exactly once, as delivered.
func TestDeliversAndSettlesOnce(t *testing.T) {
	q := openQueue(t, t.TempDir())
	fill(t, q, 20, 100)
	sink := newSink(t, 30) // 100-event chunks span four batches
	o := fast()
	o.Workers = 3
	o.Metrics = metrics.NewSet()
	r := start(t, q, sink, o)
	r.waitEmpty(t, 10*time.Second)
	sent, accepted, _ := sink.counts()
	for i := range 2000 {
		if sent[i] != 1 || accepted[i] != 1 {
			t.Fatalf("seq %d sent %d accepted %d", i, sent[i], accepted[i])
		}
	}
	r.stop(t)
	for id, n := range r.src.settled {
		if n != 1 {
			t.Fatalf("chunk %s settled %d times", id, n)
		}
	}
	if st := q.Stats(); st.AckedChunks != 20 || st.DeliveredEvents != 2000 {
		t.Fatalf("stats %+v", st)
	}
	if got := o.Metrics.GetOrCreateCounter(`sluice_output_sent_events_total{output="out"}`).Get(); got != 2000 {
		t.Fatalf("sent_events %d", got)
	}
}

// TestPartialFailureRetriesOnlyFailed: events reported Retry are sent
// again, and only they.
func TestPartialFailureRetriesOnlyFailed(t *testing.T) {
	q := openQueue(t, t.TempDir())
	fill(t, q, 10, 100)
	sink := newSink(t, 50)
	var mu sync.Mutex
	failedOnce := map[int]bool{}
	sink.answer = func(_ int, seqs []int, res []Result) error {
		mu.Lock()
		defer mu.Unlock()
		for i, s := range seqs {
			if s%7 == 0 && !failedOnce[s] {
				failedOnce[s] = true
				res[i] = Result{Status: Retry, Reason: "es_rejected_execution_exception"}
			}
		}
		return nil
	}
	r := start(t, q, sink, fast())
	r.waitEmpty(t, 10*time.Second)
	sent, accepted, _ := sink.counts()
	for i := range 1000 {
		want := 1
		if i%7 == 0 {
			want = 2
		}
		if sent[i] != want || accepted[i] != 1 {
			t.Fatalf("seq %d sent %d (want %d) accepted %d", i, sent[i], want, accepted[i])
		}
	}
	if st := q.Stats(); st.AckedChunks != 10 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRefusedGoToDeadLetter: refused events (by the encoder or the
// destination) are stored in the dead-letter queue with their reason, the
// rest is delivered and the queue moves on.
func TestRefusedGoToDeadLetter(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 5, 100)
	sink := newSink(t, 40)
	sink.reject = func(s int) bool { return s == 250 }
	sink.answer = func(_ int, seqs []int, res []Result) error {
		for i, s := range seqs {
			if s%100 == 3 {
				res[i] = Result{Status: Refuse, Reason: "mapper_parsing_exception", Detail: fmt.Sprintf("field [seq] of %d", s)}
			}
		}
		return nil
	}
	o := fast()
	o.DeadLetterDir = dir + "/dlq"
	r := start(t, q, sink, o)
	r.waitEmpty(t, 10*time.Second)
	r.stop(t)
	st := q.Stats()
	if st.DeadLetteredChunks != 5 || st.DeadLetteredEvents != 6 || st.DeliveredEvents != 494 || st.AckedChunks != 0 {
		t.Fatalf("stats %+v", st)
	}
	dl, err := buffer.Open(dir+"/dlq", buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	reasons := map[int]string{}
	for dl.Stats().Pending > int64(len(reasons)) || len(reasons) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := dl.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("dead letters: %v (have %v)", err, reasons)
		}
		wire.ForEachEntry(c.Entries, func(_ int64, rec []byte) error {
			dlv, ok := lookupMap(rec, DeadLetterKey)
			if !ok {
				t.Fatalf("no %s in %x", DeadLetterKey, rec)
			}
			reason, _ := wire.LookupString(dlv, []byte("reason"))
			reasons[seqOf(t, rec)] = string(reason)
			return nil
		})
		if len(reasons) >= 6 {
			break
		}
	}
	want := map[int]string{3: "mapper_parsing_exception", 103: "mapper_parsing_exception", 203: "mapper_parsing_exception",
		303: "mapper_parsing_exception", 403: "mapper_parsing_exception", 250: "too_large"}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Fatalf("dead letters %v, want %v", reasons, want)
	}
	_, accepted, _ := sink.counts()
	if len(accepted) != 494 {
		t.Fatalf("%d accepted", len(accepted))
	}
}

// lookupMap returns the map value of key in record.
func lookupMap(record []byte, key string) ([]byte, bool) {
	n, rest, ok := wire.ReadMapHeader(record)
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

// TestWholeRequestFailureRetriesAll: a failed request retries every event
// of its batch, and waits at least what Retry-After says.
func TestWholeRequestFailureRetriesAll(t *testing.T) {
	q := openQueue(t, t.TempDir())
	fill(t, q, 1, 10)
	sink := newSink(t, 100)
	var firstAt, secondAt time.Time
	sink.answer = func(req int, _ []int, _ []Result) error {
		switch req {
		case 0:
			firstAt = time.Now()
			return &RetryAfterError{Err: errors.New("429 too many requests"), After: 300 * time.Millisecond}
		case 1:
			secondAt = time.Now()
		}
		return nil
	}
	r := start(t, q, sink, fast())
	r.waitEmpty(t, 10*time.Second)
	if d := secondAt.Sub(firstAt); d < 300*time.Millisecond {
		t.Fatalf("retried after %s, Retry-After was 300ms", d)
	}
	sent, accepted, _ := sink.counts()
	for i := range 10 {
		if sent[i] != 2 || accepted[i] != 1 {
			t.Fatalf("seq %d sent %d accepted %d", i, sent[i], accepted[i])
		}
	}
	if msg, at := r.e.LastError(); msg != "429 too many requests" || at.IsZero() {
		t.Fatalf("last error %q at %s", msg, at)
	}
}

// TestMaxRetriesDeadLetters: with max_retries n, an event failing n+1
// times is dead-lettered (reason max_retries) and the queue moves on.
func TestMaxRetriesDeadLetters(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 2, 5)
	sink := newSink(t, 5) // one batch per chunk
	sink.answer = func(_ int, seqs []int, _ []Result) error {
		if seqs[0] < 5 {
			return errors.New("connection refused")
		}
		return nil
	}
	o := fast()
	o.MaxRetries = 3
	o.DeadLetterDir = dir + "/dlq"
	r := start(t, q, sink, o)
	r.waitEmpty(t, 10*time.Second)
	sent, _, _ := sink.counts()
	if sent[0] != 4 || sent[5] != 1 {
		t.Fatalf("sent %v", sent)
	}
	if st := q.Stats(); st.DeadLetteredEvents != 5 || st.AckedChunks != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDeadLetterDisabledDrops: without a dead-letter queue a refused event
// is dropped, counted as such, never as delivered.
func TestDeadLetterDisabledDrops(t *testing.T) {
	q := openQueue(t, t.TempDir())
	fill(t, q, 1, 10)
	sink := newSink(t, 100)
	sink.reject = func(s int) bool { return s == 4 }
	r := start(t, q, sink, fast())
	r.waitEmpty(t, 10*time.Second)
	if st := q.Stats(); st.DiscardedEvents != 1 || st.DeliveredEvents != 9 || st.AckedChunks != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFlushInterval: a lone event is sent after FlushInterval, not held
// for a full batch; Drain sends at once.
func TestFlushInterval(t *testing.T) {
	q := openQueue(t, t.TempDir())
	sink := newSink(t, 1000)
	o := fast()
	o.FlushInterval = 300 * time.Millisecond
	r := start(t, q, sink, o)
	t0 := time.Now()
	fill(t, q, 1, 1)
	r.waitEmpty(t, 5*time.Second)
	if d := time.Since(t0); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("delivered after %s, flush interval 300ms", d)
	}
	r.e.Drain()
	t0 = time.Now()
	fill(t, q, 1, 1)
	r.waitEmpty(t, 5*time.Second)
	if d := time.Since(t0); d > 200*time.Millisecond {
		t.Fatalf("draining, delivered after %s", d)
	}
}

// TestShutdownLeavesInFlightOnDisk: Run returns promptly while a request
// hangs; its chunks stay unsettled and come back after a reopen.
func TestShutdownLeavesInFlightOnDisk(t *testing.T) {
	dir := t.TempDir()
	q, err := buffer.Open(dir, buffer.Options{Name: "out"})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, q, 3, 10)
	sink := newSink(t, 100)
	hung := make(chan struct{}, 1)
	bs := &blockingSink{fakeSink: sink, started: hung, release: make(chan struct{})}
	r := start(t, q, bs, fast())
	<-hung
	t0 := time.Now()
	r.stop(t)
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Run took %s to stop", d)
	}
	if st := q.Stats(); st.Pending != 3 {
		t.Fatalf("stats %+v", st)
	}
	q.Close()
	q = openQueue(t, dir)
	sink2 := newSink(t, 100)
	r2 := start(t, q, sink2, fast())
	r2.waitEmpty(t, 5*time.Second)
	_, accepted, _ := sink2.counts()
	if len(accepted) != 30 {
		t.Fatalf("after restart %d events", len(accepted))
	}
}

// blockingSink blocks every Send until ctx is done.
type blockingSink struct {
	*fakeSink
	started chan struct{}
	release chan struct{}
}

func (b *blockingSink) Send(ctx context.Context, enc Encoder, res []Result) error {
	select {
	case b.started <- struct{}{}:
	default:
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.release:
		return b.fakeSink.Send(ctx, enc, res)
	}
}

// TestInFlightBound: with the destination stuck, the engine holds at most
// MaxInFlightBytes (plus one chunk) of the queue.
func TestInFlightBound(t *testing.T) {
	q := openQueue(t, t.TempDir())
	fill(t, q, 200, 100) // ~ 3 KB per chunk
	sink := newSink(t, 50)
	bs := &blockingSink{fakeSink: sink, started: make(chan struct{}, 1), release: make(chan struct{})}
	o := fast()
	o.MaxInFlightBytes = 20 << 10
	o.Workers = 2
	start(t, q, bs, o)
	<-bs.started
	time.Sleep(200 * time.Millisecond)
	st := q.Stats()
	chunkBytes := st.AppendedBytes / st.AppendedChunks
	if held := int64(st.InFlight) * chunkBytes; held > o.MaxInFlightBytes+2*chunkBytes {
		t.Fatalf("%d chunks (%d bytes) in flight, bound %d", st.InFlight, held, o.MaxInFlightBytes)
	}
	if st.InFlight == 0 {
		t.Fatal("nothing in flight")
	}
	close(bs.release)
}

// TestBackoff: full jitter, uniform up to the capped exponential.
func TestBackoff(t *testing.T) {
	o := &Engine{o: Options{RetryInitial: 100 * time.Millisecond, RetryMax: time.Second}}
	tests := map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second}
	for n, ceiling := range tests {
		var maxSeen time.Duration
		for range 2000 {
			d := o.backoff(n)
			if d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %s, want within [0, %s]", n, d, ceiling)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < ceiling/2 {
			t.Errorf("backoff(%d) never above %s in 2000 draws: jitter not spread up to %s", n, maxSeen, ceiling)
		}
	}
	if d := (&Engine{}).backoff(3); d != 0 {
		t.Errorf("zero retry settings gave %s", d)
	}
}

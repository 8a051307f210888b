package delivery

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Engine delivers the chunks of one Source through one Sink. See the
// package doc for its contract. An Engine runs once.
type Engine struct {
	o    Options
	src  Source
	sink Sink
	m    *engineMetrics
	dl   *deadLetters

	drainOnce sync.Once
	drainCh   chan struct{}
	ran       sync.Once
	pub       engineState // what Status reads; the loop publishes it (status.go)

	// Owned by the loop.
	cur      *tracked // the chunk being split into events
	open     *batch   // the batch being filled
	free     []*batch
	ready    []*batch // sealed, waiting for a worker
	busy     int      // batches with a worker
	again    []ref    // events to add before cur's: due retries, a bounced event
	retries  []retryGroup
	held     int64 // entries bytes of the chunks between Next and Settle
	draining bool
	rejects  []rejected // refused events waiting for the dead-letter queue
	scratch  Event      // the event being added
}

// tracked is a chunk between Next and Settle.
type tracked struct {
	chunk   buffer.Chunk
	rest    []byte // entries not yet split into events
	split   bool   // rest is exhausted (or undecodable)
	next    int    // index of the next event
	open    int    // events split off and not final
	dead    int    // dead-lettered
	dropped int
	reason  string // of the first dead-lettered or dropped event
}

// ref is one event in a batch or waiting for a retry: a compact
// reference into its chunk (refs are copied per event and a batch holds
// thousands), expanded into an Event by event().
type ref struct {
	t              *tracked
	ns             int64  // event time
	off, n         uint32 // the entry: t.chunk.Entries[off:off+n]
	recOff, recLen uint32 // the record, within the entry
	idx            int32  // index in the chunk
	attempts       int32  // failed sends so far
	last           bool   // the chunk's last event
}

// event expands r.
func (r *ref) event() Event {
	c := &r.t.chunk
	// Entry keeps the chunk's capacity: an encoder may extend a view over
	// the entries that follow (the forward output sends a chunk uncopied).
	entry := c.Entries[r.off : r.off+r.n]
	return Event{Tag: c.Tag, Time: r.ns, Record: entry[r.recOff : r.recOff+r.recLen : r.recOff+r.recLen],
		Entry: entry, Chunk: c.ID, Index: int(r.idx), Last: r.last}
}

type batch struct {
	enc    Encoder
	refs   []ref
	res    []Result
	opened time.Time // first event added
	err    error     // Send's error, set by the worker
	took   time.Duration
}

type retryGroup struct {
	refs []ref
	due  time.Time
}

type rejected struct {
	r              ref
	reason, detail string
	stored         bool // in the dead-letter queue
}

// New returns an Engine delivering src's chunks through sink.
func New(src Source, sink Sink, o Options) (*Engine, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if src == nil || sink == nil {
		return nil, errors.New("nil source or sink")
	}
	e := &Engine{o: o, src: src, sink: sink, drainCh: make(chan struct{})}
	e.m = newEngineMetrics(o.Metrics, o.ID)
	for range o.Workers + 1 {
		e.free = append(e.free, &batch{enc: sink.NewEncoder()})
	}
	return e, nil
}

// Drain makes the engine send every batch as soon as no more input is
// ready, instead of waiting for FlushInterval: the agent calls it at
// shutdown before waiting for the queue to empty. Safe from any goroutine.
func (e *Engine) Drain() { e.drainOnce.Do(func() { close(e.drainCh) }) }

// Run delivers until ctx is cancelled, then cancels the requests in
// flight, waits for every goroutine it started, rewinds the source and
// returns nil. It returns an error only when the source or the
// dead-letter queue fails for another reason than ctx.
func (e *Engine) Run(ctx context.Context) error {
	first := false
	e.ran.Do(func() { first = true })
	if !first {
		return errors.New("delivery: Run called twice")
	}
	if e.o.DeadLetterDir != "" {
		dl, err := openDeadLetters(e.o)
		if err != nil {
			return fmt.Errorf("dead-letter queue: %w", err)
		}
		e.dl = dl
		defer dl.close()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	chunks := make(chan buffer.Chunk)
	fetchErr := make(chan error, 1)
	work := make(chan *batch, e.o.Workers)
	done := make(chan *batch, e.o.Workers+1)
	wg.Go(func() { e.fetch(ctx, chunks, fetchErr) })
	for range e.o.Workers {
		wg.Go(func() { e.worker(ctx, work, done) })
	}
	err := e.loop(ctx, chunks, fetchErr, work, done)
	cancel()
	close(work)
	wg.Wait()
	e.src.Rewind()
	return err
}

func (e *Engine) fetch(ctx context.Context, out chan<- buffer.Chunk, errc chan<- error) {
	for {
		c, err := e.src.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				errc <- fmt.Errorf("next chunk: %w", err)
			}
			return
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
	}
}

func (e *Engine) worker(ctx context.Context, work <-chan *batch, done chan<- *batch) {
	for b := range work {
		n := b.enc.Len()
		b.res = slices.Grow(b.res[:0], n)[:n]
		clear(b.res)
		start := time.Now()
		b.err = e.sink.Send(ctx, b.enc, b.res)
		b.took = time.Since(start)
		done <- b
	}
}

func (e *Engine) loop(ctx context.Context, chunks <-chan buffer.Chunk, fetchErr <-chan error, work chan<- *batch, done <-chan *batch) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	drain := e.drainCh
	for {
		now := time.Now()
		e.promote(now)
		e.fill(now, chunks)
		if err := e.flushRejects(); err != nil {
			return err
		}
		for len(e.ready) > 0 && e.busy < e.o.Workers {
			b := e.ready[0]
			e.ready = slices.Delete(e.ready, 0, 1)
			e.busy++
			work <- b // never blocks: busy ≤ Workers = cap(work)
		}
		var in <-chan buffer.Chunk
		if e.cur == nil && e.held < e.o.MaxInFlightBytes {
			in = chunks
		}
		e.m.inFlightBytes.Set(float64(e.held))
		e.publish()
		if wake, ok := e.nextWake(); ok {
			timer.Reset(max(time.Until(wake), 0))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-fetchErr:
			return err
		case c := <-in:
			e.take(c)
		case b := <-done:
			e.busy--
			e.result(b, time.Now())
		case <-drain:
			e.draining, drain = true, nil
		case <-timer.C:
		}
	}
}

// take starts splitting a new chunk.
func (e *Engine) take(c buffer.Chunk) {
	t := &tracked{chunk: c, rest: c.Entries}
	e.held += int64(len(c.Entries))
	e.cur = t
	if len(t.rest) == 0 {
		e.splitDone(t)
	}
}

// next returns the next event to add: a due retry or bounced event first,
// then the next event of the current chunk.
func (e *Engine) next() (ref, bool) {
	if len(e.again) > 0 {
		r := e.again[0]
		e.again[0] = ref{}
		e.again = e.again[1:]
		return r, true
	}
	t := e.cur
	if t == nil {
		return ref{}, false
	}
	ns, rec, recOff, n, err := wire.NextEntry(t.rest)
	if err != nil {
		lost := max(t.chunk.Count-t.next, 1)
		e.o.Log.Error("chunk entries do not decode; dropping the rest of the chunk", "tag", string(t.chunk.Tag),
			"chunk", t.chunk.ID.String(), "events_lost", lost, "err", err)
		e.m.dropped("undecodable").Add(lost)
		t.dropped += lost
		if t.reason == "" {
			t.reason = "undecodable"
		}
		e.splitDone(t)
		return ref{}, false
	}
	off := len(t.chunk.Entries) - len(t.rest)
	r := ref{t: t, ns: ns, off: uint32(off), n: uint32(n), recOff: uint32(recOff), recLen: uint32(len(rec)),
		idx: int32(t.next), last: n == len(t.rest)}
	t.rest = t.rest[n:]
	t.next++
	t.open++
	if len(t.rest) == 0 {
		e.splitDone(t)
	}
	return r, true
}

func (e *Engine) splitDone(t *tracked) {
	t.split = true
	t.rest = nil
	if e.cur == t {
		e.cur = nil
	}
	e.maybeSettle(t)
}

// fill adds events to the open batch while there are events (taking a
// chunk the fetcher has ready) and a batch to put them in, and seals the
// open batch when it is full, old enough, or, with no more input ready,
// when draining or (Eager) when a worker is free.
func (e *Engine) fill(now time.Time, chunks <-chan buffer.Chunk) {
	for {
		if e.open == nil {
			if len(e.free) == 0 {
				return
			}
			e.open = e.free[len(e.free)-1]
			e.free = e.free[:len(e.free)-1]
		}
		r, ok := e.next()
		if !ok && e.cur == nil && e.held < e.o.MaxInFlightBytes {
			select {
			case c := <-chunks:
				e.take(c)
				continue
			default:
			}
		}
		if !ok {
			break
		}
		b := e.open
		e.scratch = r.event() // Add gets a pointer: to a field, so that nothing escapes
		err := b.enc.Add(&e.scratch)
		switch {
		case err == nil:
			if len(b.refs) == 0 {
				b.opened = now
			}
			b.refs = append(b.refs, r)
			if b.enc.Full() {
				e.seal()
			}
		case errors.Is(err, ErrFull) && b.enc.Len() > 0:
			e.again = append([]ref{r}, e.again...)
			e.seal()
		case errors.Is(err, ErrFull):
			e.reject(r, "too_large", "the event alone does not fit in a request")
		default:
			reason, detail := rejection(err)
			e.reject(r, reason, detail)
		}
	}
	if b := e.open; b != nil && len(b.refs) > 0 &&
		(e.draining || !now.Before(b.opened.Add(e.o.FlushInterval)) || e.o.Eager && e.busy+len(e.ready) < e.o.Workers) {
		e.seal()
	}
}

// rejection returns the reason and detail of an error from Encoder.Add.
func rejection(err error) (reason, detail string) {
	if rej, ok := errors.AsType[*RejectError](err); ok {
		return rej.Reason, rej.Detail
	}
	return "encode", err.Error()
}

func (e *Engine) seal() {
	e.ready = append(e.ready, e.open)
	e.open = nil
}

// result handles a batch a worker finished.
func (e *Engine) result(b *batch, now time.Time) {
	e.m.latency.Update(b.took.Seconds())
	if b.err != nil {
		e.m.requestsFailed.Inc()
		e.m.lastError(b.err, now)
		e.o.Log.Warn("request failed; retrying its events", "events", len(b.refs), "bytes", b.enc.Bytes(), "err", b.err)
		e.retry(b.refs, b.err, now)
	} else {
		var failed []ref
		delivered, bytes := 0, b.enc.Bytes()
		for i, r := range b.refs {
			switch res := b.res[i]; res.Status {
			case OK:
				delivered++
				r.t.open--
				e.maybeSettle(r.t)
			case Retry:
				failed = append(failed, r)
				e.m.lastError(fmt.Errorf("event not taken: %s %s", res.Reason, res.Detail), now)
			default:
				e.reject(r, or(res.Reason, "refused"), res.Detail)
			}
		}
		e.m.sentEvents.Add(delivered)
		e.m.sentBytes.Add(bytes)
		if len(failed) == 0 {
			e.m.requestsOK.Inc()
		} else {
			e.m.requestsPartial.Inc()
			e.retry(failed, nil, now)
		}
	}
	b.enc.Reset()
	clear(b.refs)
	b.refs = b.refs[:0]
	b.err = nil
	e.free = append(e.free, b)
}

// retry schedules refs for another try after a back-off, or dead-letters
// the ones past MaxRetries. err is the whole request's error, if any.
func (e *Engine) retry(refs []ref, err error, now time.Time) {
	keep := make([]ref, 0, len(refs))
	var attempts int32
	for _, r := range refs {
		r.attempts++
		if e.o.MaxRetries > 0 && int(r.attempts) > e.o.MaxRetries {
			detail := "too many failed sends"
			if err != nil {
				detail = err.Error()
			}
			e.reject(r, "max_retries", detail)
			continue
		}
		attempts = max(attempts, r.attempts)
		keep = append(keep, r)
	}
	if len(keep) == 0 {
		return
	}
	e.m.retriedEvents.Add(len(keep))
	d := e.backoff(int(attempts))
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		d = max(d, ra.After)
	}
	e.retries = append(e.retries, retryGroup{refs: keep, due: now.Add(d)})
}

// backoff is the delay before retry n (n ≥ 1): uniform in
// [0, min(RetryMax, RetryInitial·2^(n-1))] ("full jitter").
func (e *Engine) backoff(n int) time.Duration {
	d := e.o.RetryInitial
	for i := 1; i < n && d < e.o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, e.o.RetryMax)
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

// promote moves the events of due retry groups to the front of the input,
// oldest group first.
func (e *Engine) promote(now time.Time) {
	var due []ref
	keep := e.retries[:0]
	for _, g := range e.retries {
		if !g.due.After(now) {
			due = append(due, g.refs...)
		} else {
			keep = append(keep, g)
		}
	}
	clear(e.retries[len(keep):])
	e.retries = keep
	if len(due) > 0 {
		e.again = append(due, e.again...)
	}
}

func (e *Engine) nextWake() (time.Time, bool) {
	var t time.Time
	ok := false
	if b := e.open; b != nil && len(b.refs) > 0 {
		t, ok = b.opened.Add(e.o.FlushInterval), true
	}
	for _, g := range e.retries {
		if !ok || g.due.Before(t) {
			t, ok = g.due, true
		}
	}
	return t, ok
}

// reject takes r out of delivery: it goes to the dead-letter queue at the
// next flushRejects (or is dropped, counted, without one).
func (e *Engine) reject(r ref, reason, detail string) {
	e.m.rejected(reason).Inc()
	e.m.logReject(e.o.Log, reason, detail, r.t.chunk.Tag)
	e.rejects = append(e.rejects, rejected{r: r, reason: reason, detail: detail})
}

// flushRejects stores the refused events in the dead-letter queue (one
// append and fsync for all of them) and only then lets their chunks
// settle. An I/O error of the dead-letter queue drops them, counted.
func (e *Engine) flushRejects() error {
	if len(e.rejects) == 0 {
		return nil
	}
	if e.dl != nil {
		err := e.dl.store(e.o.ID, e.rejects)
		switch {
		case errors.Is(err, buffer.ErrClosed):
			return fmt.Errorf("dead-letter queue: %w", err)
		case err != nil:
			e.o.Log.Error("dead-letter queue write failed; dropping the refused events", "events", len(e.rejects), "err", err)
		}
	}
	for _, x := range e.rejects {
		t := x.r.t
		t.open--
		if x.stored {
			t.dead++
			e.m.deadLettered(x.reason).Inc()
		} else {
			t.dropped++
			e.m.dropped(x.reason).Inc()
		}
		if t.reason == "" {
			t.reason = x.reason
		}
		e.maybeSettle(t)
	}
	clear(e.rejects)
	e.rejects = e.rejects[:0]
	return nil
}

// maybeSettle settles t once every event of it is final.
func (e *Engine) maybeSettle(t *tracked) {
	if !t.split || t.open > 0 {
		return
	}
	e.src.Settle(t.chunk.ID, buffer.Settlement{DeadLettered: t.dead, Dropped: t.dropped, Reason: t.reason})
	e.held -= int64(len(t.chunk.Entries))
	t.chunk = buffer.Chunk{}
	t.split = false // settled: never again
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

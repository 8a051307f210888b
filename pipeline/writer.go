package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/processors"
)

// maxCachedTags bounds the per-Writer tag cache; past it the cache is
// cleared at the next Flush (a client sending endless distinct tags must not
// grow memory without bound).
const maxCachedTags = 4096

// maxRetained bounds the encode buffers a Writer keeps between Flushes for
// reuse; past it they are released to the GC.
const maxRetained = 4 << 20

// Writer batches events into chunks for one input goroutine. It is not safe
// for concurrent use. See the package doc for its contract: Add never
// fails, Flush is the only step that touches the queues, and what a failed
// Flush did not append stays held, in order, for the next one.
type Writer struct {
	r       *Router
	tags    map[string]*tagState
	open    []*builder // builders that received an entry since they were last sealed, in first-use order
	sealed  []sealed   // chunks waiting for Flush, oldest first
	free    [][]byte   // recycled entry buffers
	freeCap int        // sum of cap(free[i])
	marks   []uint64   // per output: queue mark after this Writer's last append, 0 once synced
	outs    []int      // scratch
	entry   []byte     // the current event encoded once, copied per output
	byField bool
	f       follower // the Router's Swap, if any (swap.go)
	// run runs the Router's processors (nil without); runOf is the Router
	// it was made for, so that a Writer that moved to another Router
	// takes a new one.
	run   *processors.Runner
	runOf *Router
}

type tagState struct {
	tag      []byte
	outs     []int      // cached route result, valid unless byField
	builders []*builder // indexed by output
	procs    []int      // the processors whose match covers tag (Chain.Select)
}

// builder is the open chunk of one (tag, output).
type builder struct {
	out     int
	tag     []byte
	count   int
	entries []byte
	max     int  // largest entries payload the queue accepts for this tag
	inOpen  bool // listed in Writer.open
}

// sealed is a complete chunk not yet appended to its queue.
type sealed struct {
	out     int
	tag     []byte
	count   int
	entries []byte
}

// NewWriter returns a Writer for one input goroutine.
func (r *Router) NewWriter() *Writer {
	return &Writer{
		r:       r,
		tags:    make(map[string]*tagState),
		marks:   make([]uint64, len(r.queues)),
		byField: r.tagDependsOnRecord(),
	}
}

// Add routes ev and encodes it into the open chunk of each output it goes
// to. It never fails, blocks or touches a queue: a chunk that the next
// event would take past its output's chunk size is sealed and held until
// Flush. What a Writer holds is therefore bounded by what its input adds
// between two successful Flushes. An event too large for any chunk of an
// output's queue is not stored for that output: it is counted in
// sluice_events_too_large_total and logged, and Add reports false (inputs
// that can tell their client, like the forward input, check
// Router.MaxEventBytes first).
func (w *Writer) Add(ev *Event) bool {
	if !w.f.dirty {
		w.follow() // a batch starts (swap.go)
	}
	ts := w.state(ev.Tag)
	rec := ev.Record
	if len(ts.procs) > 0 {
		if w.runOf != w.r {
			w.run, w.runOf = w.r.chain.NewRunner(w.procsOf), w.r
		}
		tag, out, keep := w.run.Run(ts.procs, ev.Tag, ev.Record)
		if !keep {
			return true // counted by the processor
		}
		if string(tag) != string(ts.tag) {
			ts = w.state(tag)
		}
		rec = out
	}
	outs := ts.outs
	if w.byField {
		w.outs = w.r.resolve(w.outs[:0], ts.tag, rec)
		outs = w.outs
	}
	if len(outs) == 0 {
		w.r.unrouted.Inc()
		return true
	}
	w.entry = wire.AppendEntry(w.entry[:0], ev.Time, rec)
	n := len(w.entry)
	stored := true
	for _, o := range outs {
		b := ts.builders[o]
		if b == nil {
			b = &builder{out: o, tag: ts.tag, max: w.r.maxEntries(o, len(ts.tag))}
			ts.builders[o] = b
		}
		if n > b.max {
			stored = false
			w.r.tooLarge[o].Inc()
			w.r.log.Warn("event larger than a buffer segment can hold; not stored for this output",
				"output", w.r.names[o], "tag", string(ts.tag), "entry_bytes", n, "max_bytes", b.max)
			continue
		}
		if b.count > 0 && (len(b.entries)+n > w.r.chunkBytes[o] || len(b.entries)+n > b.max) {
			w.seal(b)
		}
		if b.entries == nil {
			b.entries = w.buf()
		}
		if !b.inOpen {
			b.inOpen = true
			w.open = append(w.open, b)
		}
		b.entries = append(b.entries, w.entry...)
		b.count++
		w.r.routed[o].Inc()
	}
	return stored
}

// state returns the cached per-tag state of tag, made on first use.
func (w *Writer) state(tag []byte) *tagState {
	ts := w.tags[string(tag)]
	if ts == nil {
		ts = &tagState{tag: append([]byte(nil), tag...), builders: make([]*builder, len(w.r.queues))}
		ts.outs = w.r.resolve(nil, tag, nil)
		if w.r.chain != nil {
			ts.procs = w.r.chain.Select(tag)
		}
		w.tags[string(ts.tag)] = ts
	}
	return ts
}

// procsOf is the Runner's view of the per-tag cache (a rewritten tag).
func (w *Writer) procsOf(tag []byte) []int { return w.state(tag).procs }

// seal moves b's chunk to the sealed list; b starts empty.
func (w *Writer) seal(b *builder) {
	w.sealed = append(w.sealed, sealed{out: b.out, tag: b.tag, count: b.count, entries: b.entries})
	b.count, b.entries = 0, nil
}

// buf returns an empty entry buffer, recycled when possible.
func (w *Writer) buf() []byte {
	if k := len(w.free); k > 0 {
		b := w.free[k-1]
		w.free[k-1] = nil
		w.free = w.free[:k-1]
		w.freeCap -= cap(b)
		return b[:0]
	}
	return nil
}

// recycle keeps b for reuse unless it is outsized or the pool is full.
func (w *Writer) recycle(b []byte, out int) {
	if cap(b) == 0 || cap(b) > 4*w.r.chunkBytes[out] || w.freeCap+cap(b) > maxRetained {
		return
	}
	w.free = append(w.free, b[:0])
	w.freeCap += cap(b)
}

// Flush appends every held chunk to its queue, in the order the chunks
// were cut. It returns nil once every event added so far has been handed
// to its queues (written to the OS; fsynced when the queue's policy is
// "always"). On error the chunks not yet appended stay held, in order, and
// the next Flush continues with them: a chunk is appended exactly once and
// none is skipped. The error wraps the queue's (ctx's for a queue blocked
// by overflow "block").
func (w *Writer) Flush(ctx context.Context) error {
	for _, b := range w.open {
		if b.count > 0 {
			w.seal(b)
		}
		b.inOpen = false
	}
	clear(w.open)
	w.open = w.open[:0]
	for i := range w.sealed {
		s := &w.sealed[i]
		q := w.r.queues[s.out]
		if err := q.Append(ctx, s.tag, s.count, s.entries); err != nil {
			n := copy(w.sealed, w.sealed[i:])
			clear(w.sealed[n:])
			w.sealed = w.sealed[:n]
			return fmt.Errorf("append to output %s: %w", w.r.names[s.out], err)
		}
		w.marks[s.out] = q.Mark()
		w.recycle(s.entries, s.out)
	}
	clear(w.sealed)
	w.sealed = w.sealed[:0]
	if len(w.tags) > maxCachedTags {
		clear(w.tags)
	}
	w.settle()
	return nil
}

// Sync returns once every chunk this Writer appended is durable on disk
// (not only written to the OS). It waits only for the queues this Writer
// appended to since its last Sync, and shares each queue's fsync with every
// other waiter (group commit; see buffer.Queue.SyncTo), without waiting for
// the fsync interval. Inputs call it after a successful Flush and before
// they acknowledge data to a client.
func (w *Writer) Sync() error {
	var errs []error
	if err := w.syncPrev(); err != nil {
		errs = append(errs, err)
	}
	for o, m := range w.marks {
		if m == 0 {
			continue
		}
		if err := w.r.queues[o].SyncTo(m); err != nil {
			errs = append(errs, fmt.Errorf("sync output %s: %w", w.r.names[o], err))
			continue
		}
		w.marks[o] = 0
	}
	return errors.Join(errs...)
}

// Pending reports whether events were added and not yet appended by a
// successful Flush.
func (w *Writer) Pending() bool {
	if len(w.sealed) > 0 {
		return true
	}
	for _, b := range w.open {
		if b.count > 0 {
			return true
		}
	}
	return false
}

// Held returns the number of entries and entry bytes added and not yet
// appended (an event routed to two outputs counts twice).
func (w *Writer) Held() (entries, bytes int) {
	for _, s := range w.sealed {
		entries += s.count
		bytes += len(s.entries)
	}
	for _, b := range w.open {
		entries += b.count
		bytes += len(b.entries)
	}
	return entries, bytes
}

// Discard drops everything held and returns the number of entries dropped,
// for an input that gives up (its client is gone and will resend, or the
// agent is stopping); the caller counts them.
func (w *Writer) Discard() int {
	n, _ := w.Held()
	for _, b := range w.open {
		b.count, b.entries, b.inOpen = 0, nil, false
	}
	clear(w.open)
	w.open = w.open[:0]
	clear(w.sealed)
	w.sealed = w.sealed[:0]
	w.settle()
	return n
}

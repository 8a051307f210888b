package pipeline

import (
	"context"
	"fmt"

	"github.com/sluice-agent/sluice/internal/wire"
)

// maxCachedTags bounds the per-Writer tag cache; past it the cache is
// cleared at the next Flush (a client sending endless distinct tags must not
// grow memory without bound).
const maxCachedTags = 4096

// maxRetained bounds the encode buffers a Writer keeps between Flushes
// (summed over its builders); past it they are released to the GC.
const maxRetained = 4 << 20

// Writer batches events into chunks for one input goroutine. It is not safe
// for concurrent use. See the package doc for its contract.
type Writer struct {
	r        *Router
	tags     map[string]*tagState
	pending  []*builder // builders holding at least one entry, in first-use order
	outs     []int      // scratch
	entry    []byte     // the current event encoded once, copied per output
	retained int        // sum of builders' held capacity
	byField  bool
}

type tagState struct {
	tag      []byte
	outs     []int      // cached route result, valid unless byField
	builders []*builder // indexed by output
}

type builder struct {
	out     int
	tag     []byte
	count   int
	entries []byte
	held    int // capacity counted in Writer.retained
	max     int // largest entries payload the queue accepts for this tag
}

// NewWriter returns a Writer for one input goroutine.
func (r *Router) NewWriter() *Writer {
	return &Writer{r: r, tags: make(map[string]*tagState), byField: r.tagDependsOnRecord()}
}

// Add routes ev and encodes it into the pending chunk of each output it goes
// to. A chunk is appended to its queue as soon as the next event would take
// it past its output's chunk size, so Add can block (overflow "block") and
// return ctx's error; the event is then not added anywhere and may be
// retried. An event too large for any chunk of an output's queue is not
// stored for that output: it is counted in sluice_events_too_large_total
// and logged.
func (w *Writer) Add(ctx context.Context, ev *Event) error {
	ts := w.tags[string(ev.Tag)]
	if ts == nil {
		ts = &tagState{tag: append([]byte(nil), ev.Tag...), builders: make([]*builder, len(w.r.queues))}
		ts.outs = w.r.resolve(nil, ev.Tag, nil)
		w.tags[string(ts.tag)] = ts
	}
	outs := ts.outs
	if w.byField {
		w.outs = w.r.resolve(w.outs[:0], ev.Tag, ev.Record)
		outs = w.outs
	}
	if len(outs) == 0 {
		w.r.unrouted.Inc()
		return nil
	}
	w.entry = wire.AppendEntry(w.entry[:0], ev.Time, ev.Record)
	n := len(w.entry)
	// First make room everywhere, so that an error leaves the event in no
	// builder at all.
	for _, o := range outs {
		b := ts.builders[o]
		if b == nil {
			b = &builder{out: o, tag: ts.tag, max: w.r.maxEntries(o, len(ts.tag))}
			ts.builders[o] = b
		}
		if b.count > 0 && (len(b.entries)+n > w.r.chunkBytes[o] || len(b.entries)+n > b.max) {
			if err := w.flushBuilder(ctx, b); err != nil {
				return err
			}
		}
	}
	for _, o := range outs {
		b := ts.builders[o]
		if n > b.max {
			w.r.tooLarge[o].Inc()
			w.r.log.Warn("event larger than a buffer segment can hold; not stored for this output",
				"output", w.r.names[o], "tag", string(ts.tag), "entry_bytes", n, "max_bytes", b.max)
			continue
		}
		if b.count == 0 {
			w.pending = append(w.pending, b)
		}
		b.entries = append(b.entries, w.entry...)
		b.count++
		w.r.routed[o].Inc()
	}
	return nil
}

func (w *Writer) flushBuilder(ctx context.Context, b *builder) error {
	if b.count == 0 {
		return nil
	}
	if err := w.r.queues[b.out].Append(ctx, b.tag, b.count, b.entries); err != nil {
		return fmt.Errorf("append to output %s: %w", w.r.names[b.out], err)
	}
	b.count = 0
	if cap(b.entries) > 4*w.r.chunkBytes[b.out] {
		b.entries = nil // do not pin an outsized buffer
	} else {
		b.entries = b.entries[:0]
	}
	w.retained += cap(b.entries) - b.held
	b.held = cap(b.entries)
	return nil
}

// Flush appends every pending chunk to its queue. When it returns nil, every
// event added so far has been handed to its queues.
func (w *Writer) Flush(ctx context.Context) error {
	for i, b := range w.pending {
		if err := w.flushBuilder(ctx, b); err != nil {
			w.pending = w.pending[:copy(w.pending, w.pending[i:])]
			return err
		}
	}
	w.pending = w.pending[:0]
	if len(w.tags) > maxCachedTags {
		clear(w.tags)
		w.retained = 0
	} else if w.retained > maxRetained {
		// Many tags or outputs: keep memory bounded rather than buffers warm.
		for _, ts := range w.tags {
			for _, b := range ts.builders {
				if b != nil {
					b.entries, b.held = nil, 0
				}
			}
		}
		w.retained = 0
	}
	return nil
}

// Pending reports whether events were added since the last Flush.
func (w *Writer) Pending() bool {
	for _, b := range w.pending {
		if b.count > 0 {
			return true
		}
	}
	return false
}

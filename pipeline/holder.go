package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
)

// Holder holds the current Router so that it can be replaced while inputs
// run (a reload with other routes or other outputs). A Router is immutable;
// replacing it is one atomic pointer store, and nothing already handed to a
// queue is touched.
//
// Who sees a new Router, and when:
//   - Load returns it at once; an input built after Store is given it.
//   - A HeldWriter (from Holder.NewWriter) moves to it at its next Flush
//     boundary: after a Flush returned nil, when nothing is pending, so no
//     event is ever split between two Routers or re-routed.
//   - A plain Writer taken from a Router keeps that Router for its life.
//
// The caller that Stores a Router keeps the queues of the old one open
// until every Writer that may still use it has moved on or stopped.
type Holder struct {
	p atomic.Pointer[Router]
}

// NewHolder returns a Holder holding r, which must not be nil.
func NewHolder(r *Router) *Holder {
	h := &Holder{}
	h.p.Store(r)
	return h
}

// Load returns the current Router.
func (h *Holder) Load() *Router { return h.p.Load() }

// Store makes r, which must not be nil, the current Router.
func (h *Holder) Store(r *Router) { h.p.Store(r) }

// NewWriter returns a Writer that follows h: see Holder. Like a Writer it
// belongs to one goroutine.
func (h *Holder) NewWriter() *HeldWriter {
	r := h.Load()
	return &HeldWriter{Writer: r.NewWriter(), h: h, r: r}
}

// HeldWriter is a Writer that moves to its Holder's current Router at a
// Flush boundary. Add, Pending, Held and Discard are the embedded
// Writer's; Flush and Sync also cover the Writers it moved away from.
type HeldWriter struct {
	*Writer
	h *Holder
	r *Router // the Router Writer was taken from
	// prev are earlier Writers whose appends may not be synced yet.
	prev []*Writer
}

// Flush is Writer.Flush; after a successful Flush that left nothing
// pending, the next events go through the Holder's current Router.
func (w *HeldWriter) Flush(ctx context.Context) error {
	if err := w.Writer.Flush(ctx); err != nil {
		return err
	}
	if r := w.h.Load(); r != w.r && !w.Writer.Pending() {
		w.prev = append(w.prev, w.Writer)
		w.r, w.Writer = r, r.NewWriter()
	}
	return nil
}

// Sync is Writer.Sync over the current Writer and every earlier one that
// still has unsynced appends.
func (w *HeldWriter) Sync() error {
	var errs []error
	keep := w.prev[:0]
	for _, p := range w.prev {
		if err := p.Sync(); err != nil {
			errs = append(errs, err)
			keep = append(keep, p)
		}
	}
	clear(w.prev[len(keep):])
	w.prev = keep
	if err := w.Writer.Sync(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Router returns the Router the next Add goes through.
func (w *HeldWriter) Router() *Router { return w.r }

package pipeline

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Swap lets a running agent replace its Router (a config reload with
// other routes or other outputs) under inputs that keep running, without
// the inputs knowing: every Router stored in a Swap, and every Writer
// taken from one of them, follows the Swap.
//
// When a Writer moves: at its first Add after a Flush boundary — after a
// Flush that returned nil (nothing is pending then), after Discard, or
// when it is new. So every batch of events between two successful
// Flushes is routed by one Router from its first event to its last: an
// event is never routed half by the old table and half by the new one,
// never re-routed, and what a Writer held at the Store is appended, by
// the old Router, at its next Flush, as a Flush always does. Events an
// input reads after the Store go through the new Router from the input's
// next batch on (a tail input's next read, a forward connection's next
// request).
//
// What follows the Swap besides the Writers: Router.Sync and
// Router.MaxEventBytes of any of its Routers answer for the current one
// (an input built with an older Router syncs the queues it appends to
// now), and Router.Sync also syncs the queues being retired (Retire).
// Writer.Sync covers the queues a Writer appended to through earlier
// Routers.
//
// Retiring a queue no current Router names (a removed output): the caller
// calls Retire before Store, waits until the func Store returned reports
// true (every Writer that held events routed by an earlier Router has
// flushed or discarded them), syncs and closes the queue, then calls
// Retired. A Writer abandoned while it held events (its input gave up
// without Discard) keeps that func false; the queue then stays open,
// which loses nothing.
type Swap struct {
	cur atomic.Pointer[generation]

	mu       sync.Mutex
	retiring []named        // synced by Router.Sync until Retired
	retired  map[Queue]bool // closed: a Writer's old mark on it is settled
}

// generation is one Router of a Swap and the Writers that hold events
// it routed.
type generation struct {
	r     *Router
	dirty atomic.Int64 // Writers on r with events added since their last Flush boundary
	prev  *generation  // the one before, until every one before is settled; guarded by Swap.mu
}

type named struct {
	q    Queue
	name string
}

// follower is a Writer's link to its Router's Swap.
type follower struct {
	dirty bool        // events added since the last Flush boundary
	g     *generation // the generation counting this Writer as dirty, nil if none
	prev  []prevMark  // appends through earlier Routers not synced yet
}

type prevMark struct {
	named
	mark uint64
}

// NewSwap returns a Swap whose current Router is r. r must be new (not
// in another Swap).
func NewSwap(r *Router) *Swap {
	s := &Swap{retired: map[Queue]bool{}}
	r.swap = s
	s.cur.Store(&generation{r: r})
	return s
}

// Load returns the current Router.
func (s *Swap) Load() *Router { return s.cur.Load().r }

// Store makes r, a Router not in any other Swap, the current one. It
// returns a func that reports whether every Writer that held events routed
// by an earlier Router has appended (or discarded) them; once true it
// stays true.
func (s *Swap) Store(r *Router) (settled func() bool) {
	r.swap = s
	s.mu.Lock()
	old := s.cur.Load()
	g := &generation{r: r, prev: old}
	s.cur.Store(g)
	s.mu.Unlock()
	// A Writer increments the count of the generation it checked is
	// current after the increment (follow), so once the count of a
	// superseded generation reads 0 it stays 0.
	return func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for p := g.prev; p != nil; p = p.prev {
			if p.dirty.Load() != 0 {
				return false
			}
		}
		g.prev = nil
		return true
	}
}

// Retire adds q, the queue of an output the next Router will not name,
// to the queues Router.Sync syncs, until Retired.
func (s *Swap) Retire(q Queue, name string) {
	s.mu.Lock()
	s.retiring = append(s.retiring, named{q, name})
	s.mu.Unlock()
}

// Retired tells s that q was synced and closed: it leaves Router.Sync,
// and a Writer's unsynced mark on it counts as synced.
func (s *Swap) Retired(q Queue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired[q] = true
	for i, n := range s.retiring {
		if n.q == q {
			s.retiring = append(s.retiring[:i], s.retiring[i+1:]...)
			break
		}
	}
}

// Keep undoes Retire for q, a queue the current Router names again.
func (s *Swap) Keep(q Queue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range s.retiring {
		if n.q == q {
			s.retiring = append(s.retiring[:i], s.retiring[i+1:]...)
			break
		}
	}
}

func (s *Swap) isRetired(q Queue) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retired[q]
}

// sync is Router.Sync for every Router of s: the current Router's queues
// and those being retired.
func (s *Swap) sync() error {
	r := s.Load()
	qs := make([]named, 0, len(r.queues)+1)
	for i, q := range r.queues {
		qs = append(qs, named{q, r.names[i]})
	}
	s.mu.Lock()
	qs = append(qs, s.retiring...)
	s.mu.Unlock()
	var errs []error
	for _, n := range qs {
		if err := n.q.Sync(); err != nil && !s.isRetired(n.q) {
			errs = append(errs, fmt.Errorf("sync output %s: %w", n.name, err))
		}
	}
	return errors.Join(errs...)
}

// current returns the Router r answers for: the current Router of its
// Swap, or r.
func (r *Router) current() *Router {
	if r.swap == nil {
		return r
	}
	return r.swap.Load()
}

// follow starts a batch: with a Swap, the Writer moves to the current
// Router (it holds nothing now) and is counted as dirty on it until
// settle.
func (w *Writer) follow() {
	w.f.dirty = true
	s := w.r.swap
	if s == nil {
		return
	}
	for {
		g := s.cur.Load()
		g.dirty.Add(1)
		if s.cur.Load() != g {
			g.dirty.Add(-1) // superseded meanwhile: take the new one
			continue
		}
		if g.r != w.r {
			w.moveTo(g.r)
		}
		w.f.g = g
		return
	}
}

// settle ends a batch: nothing is held any more.
func (w *Writer) settle() {
	if w.f.g != nil {
		w.f.g.dirty.Add(-1)
		w.f.g = nil
	}
	w.f.dirty = false
}

// moveTo makes w route through r. w holds nothing (no open or sealed
// chunk); its unsynced marks move to r's index of the same queue, or to
// f.prev for a queue r does not have.
func (w *Writer) moveTo(r *Router) {
	marks := make([]uint64, len(r.queues))
	for o, m := range w.marks {
		if m == 0 {
			continue
		}
		q := w.r.queues[o]
		j := -1
		for k, nq := range r.queues {
			if nq == q {
				j = k
				break
			}
		}
		if j >= 0 {
			marks[j] = max(marks[j], m)
		} else {
			w.f.prev = append(w.f.prev, prevMark{named{q, w.r.names[o]}, m})
		}
	}
	w.r, w.marks = r, marks
	clear(w.tags) // builders are per output index of the old Router
	w.byField = r.tagDependsOnRecord()
}

// syncPrev syncs what w appended through earlier Routers to queues the
// current one does not have.
func (w *Writer) syncPrev() error {
	if len(w.f.prev) == 0 {
		return nil
	}
	var errs []error
	keep := w.f.prev[:0]
	for _, p := range w.f.prev {
		if err := p.q.SyncTo(p.mark); err != nil && !w.r.swap.isRetired(p.q) {
			errs = append(errs, fmt.Errorf("sync output %s: %w", p.name, err))
			keep = append(keep, p)
		}
	}
	clear(w.f.prev[len(keep):])
	w.f.prev = keep
	return errors.Join(errs...)
}

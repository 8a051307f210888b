package forward

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Why a reservation was refused; the reason logged with
// sluice_input_limit_violations_total{limit="memory"}.
var (
	// errMemTooLarge: the request alone needs more than the whole budget.
	errMemTooLarge = errors.New("request needs more memory than max_buffered_bytes")
	// errMemTimeout: the budget did not free up within buffer_wait_timeout.
	errMemTimeout = errors.New("no memory budget within buffer_wait_timeout")
	// errMemDeadlock: every connection holding budget was waiting for more,
	// so none could finish; the youngest waiter was refused.
	errMemDeadlock = errors.New("memory budget held by connections that all wait for more")
	// errMemInterrupted: the connection was evicted or the input stops.
	errMemInterrupted = errors.New("interrupted while waiting for memory budget")
)

// memBudget is the memory budget of one forward input (max_buffered_bytes),
// shared by all its connections: each connection reserves from it the
// bytes it buffers beyond its fixed per-connection baseline, before it
// allocates them, and gives them back when done.
//
// A reservation that does not fit waits for at most buffer_wait_timeout.
// Waiters are served first fit in this order: connections that hold
// budget already (a request that turned out larger than first known),
// then connections that completed a request before, then the others
// (those that never did: what a flood of hostile connections is made of,
// as for eviction); within each, the smallest reservation first (and in
// arrival order among equals). A large request may therefore wait while
// smaller ones keep coming, but never longer than buffer_wait_timeout.
// The policy cannot deadlock:
//
//   - A connection that holds nothing waits while holding nothing: it
//     cannot keep anyone else from finishing.
//   - A connection that already holds budget (a request that turned out
//     larger than first known) has priority: while one waits, nothing is
//     granted to connections that hold nothing.
//   - If every connection that holds budget is waiting for more (no one
//     could ever release), the youngest such waiter is refused at once
//     (errMemDeadlock); its connection closes and frees what it held.
//
// Holders that are not waiting are busy with a request (reading,
// decompressing, storing): they release when it is done; a connection
// that stalls in the middle of a request while holding budget is closed
// after buffer_wait_timeout without a byte (see conn.read).
type memBudget struct {
	mu      sync.Mutex
	total   int64
	used    int64
	active  int          // holders (held > 0) not waiting
	waiters []*memWaiter // arrival order

	reserved atomic.Int64 // used, for the gauge
	peak     atomic.Int64 // highest used since start (tests)
	waiting  atomic.Int64 // len(waiters), for the gauge
}

// memHold is one connection's share of the budget. Its fields are guarded
// by memBudget.mu; held is also read by its own connection goroutine,
// which is the only one that changes it (through the budget's methods).
type memHold struct {
	held    int64
	waiting bool
}

type memWaiter struct {
	h    *memHold
	need int64
	used bool       // its connection completed a request before
	done chan error // buffered: nil (granted) or errMemDeadlock
	out  bool       // granted or refused (mu)
}

// before orders waiters for grant: holders, then used connections, then
// smaller needs.
func (w *memWaiter) before(x *memWaiter) int {
	if a, b := w.h.held > 0, x.h.held > 0; a != b {
		if a {
			return -1
		}
		return 1
	}
	if w.used != x.used {
		if w.used {
			return -1
		}
		return 1
	}
	return cmp.Compare(w.need, x.need)
}

func newMemBudget(total int64) *memBudget { return &memBudget{total: total} }

// available is what is not reserved now.
func (b *memBudget) available() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.free()
}

// free is what is not reserved. Called with mu held.
func (b *memBudget) free() int64 { return b.total - b.used }

// take adds n to h. Called with mu held; h is not waiting.
func (b *memBudget) take(h *memHold, n int64) {
	if h.held == 0 && n > 0 {
		b.active++
	}
	h.held += n
	b.used += n
	b.reserved.Store(b.used)
	if b.used > b.peak.Load() {
		b.peak.Store(b.used)
	}
}

// reserve reserves n more bytes for h, waiting for at most timeout (and
// until wake is closed) if they are not free. It fails at once with
// errMemTooLarge if h would hold more than the whole budget. used says
// whether h's connection completed a request before (see memBudget for the
// order). waited reports whether it had to wait.
func (b *memBudget) reserve(h *memHold, n int64, used bool, timeout time.Duration, wake <-chan struct{}) (waited bool, err error) {
	if n <= 0 {
		return false, nil
	}
	b.mu.Lock()
	if h.held+n > b.total {
		b.mu.Unlock()
		return false, errMemTooLarge
	}
	if n <= b.free() && (h.held > 0 || !b.holdingWaiters()) {
		b.take(h, n)
		b.mu.Unlock()
		return false, nil
	}
	w := &memWaiter{h: h, need: n, used: used, done: make(chan error, 1)}
	b.waiters = append(b.waiters, w)
	b.waiting.Store(int64(len(b.waiters)))
	if h.held > 0 {
		h.waiting = true
		b.active--
	}
	b.grant()
	b.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-w.done:
		return true, err
	case <-t.C:
		err = errMemTimeout
	case <-wake:
		err = errMemInterrupted
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.dequeue(w) {
		return true, <-w.done // decided in the meantime
	}
	b.grant() // a holding waiter leaving may unblock the others
	return true, err
}

// holdingWaiters reports whether a connection that holds budget is
// waiting for more. Called with mu held.
func (b *memBudget) holdingWaiters() bool {
	for _, w := range b.waiters {
		if w.h.held > 0 {
			return true
		}
	}
	return false
}

// dequeue removes w if it is still waiting and makes its holder active
// again. Called with mu held.
func (b *memBudget) dequeue(w *memWaiter) bool {
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.waiting.Store(int64(len(b.waiters)))
			if w.h.waiting {
				w.h.waiting = false
				b.active++
			}
			return true
		}
	}
	return false
}

// grant serves the waiters that fit (holders first), then refuses a
// holding waiter if no holder could ever release. Called with mu held.
func (b *memBudget) grant() {
	if len(b.waiters) == 0 {
		return
	}
	order := slices.Clone(b.waiters)
	slices.SortStableFunc(order, (*memWaiter).before)
	serve := func(w *memWaiter) {
		b.dequeue(w)
		b.take(w.h, w.need)
		w.out = true
		w.done <- nil
	}
	holding := false
	for _, w := range order {
		if w.h.held == 0 {
			break // holders sort first
		}
		if w.need <= b.free() {
			serve(w)
		} else {
			holding = true
		}
	}
	if !holding {
		for _, w := range order {
			if !w.out && w.need <= b.free() {
				serve(w)
			}
		}
		return
	}
	if b.active > 0 {
		return // a busy holder will release
	}
	// Every holder waits for more than is free: nobody can finish. Refuse
	// the youngest holding waiter; its connection closes and releases
	// (b.active is 1 until then, so one is refused per release).
	for i := len(b.waiters) - 1; i >= 0; i-- {
		if w := b.waiters[i]; w.h.held > 0 {
			b.dequeue(w)
			w.out = true
			w.done <- errMemDeadlock
			return
		}
	}
}

// release gives n of h's bytes back (all of them if n > held).
func (b *memBudget) release(h *memHold, n int64) {
	if n <= 0 || h.held == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, h.held)
	h.held -= n
	b.used -= n
	b.reserved.Store(b.used)
	if h.held == 0 && !h.waiting {
		b.active--
	}
	b.grant()
}

// snapshot returns what is reserved, how many holders are active and how
// many connections wait (tests).
func (b *memBudget) snapshot() (used int64, active, waiters int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.active, len(b.waiters)
}

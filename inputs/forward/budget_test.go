package forward

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// checkWhole fails unless b is back to nothing reserved, no holder and
// no waiter.
func checkWhole(t *testing.T, b *memBudget) {
	t.Helper()
	if used, active, waiting := b.snapshot(); used != 0 || active != 0 || waiting != 0 {
		t.Fatalf("budget not whole: %d bytes reserved, %d active holders, %d waiters", used, active, waiting)
	}
}

// TestBudgetImmediate: what fits is granted at once, more than the whole
// budget never, and release makes the budget whole.
func TestBudgetImmediate(t *testing.T) {
	b := newMemBudget(100)
	var h memHold
	if waited, err := b.reserve(&h, 60, false, time.Second, nil); err != nil || waited {
		t.Fatalf("reserve 60: waited %v, %v", waited, err)
	}
	if _, err := b.reserve(&h, 41, false, time.Second, nil); !errors.Is(err, errMemTooLarge) {
		t.Fatalf("60+41 of 100: %v, want errMemTooLarge", err)
	}
	if _, err := b.reserve(&h, 40, false, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if h.held != 100 || b.peak.Load() != 100 {
		t.Fatalf("held %d, peak %d", h.held, b.peak.Load())
	}
	b.release(&h, 30)
	b.release(&h, 1000) // more than held: all of it
	checkWhole(t, b)
}

// TestBudgetTimeoutAndWake: a waiter gives up after its timeout, or when
// woken, and leaves nothing behind.
func TestBudgetTimeoutAndWake(t *testing.T) {
	b := newMemBudget(100)
	var big, w memHold
	b.reserve(&big, 100, false, time.Second, nil)
	t0 := time.Now()
	if waited, err := b.reserve(&w, 1, false, 50*time.Millisecond, nil); !errors.Is(err, errMemTimeout) || !waited {
		t.Fatalf("waited %v, %v; want errMemTimeout", waited, err)
	}
	if d := time.Since(t0); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	wake := make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); close(wake) }()
	if _, err := b.reserve(&w, 1, false, time.Minute, wake); !errors.Is(err, errMemInterrupted) {
		t.Fatalf("woken: %v", err)
	}
	b.release(&big, 100)
	checkWhole(t, b)
}

// TestBudgetOrder: a release serves holders first, then connections that
// completed a request, then the smallest need.
func TestBudgetOrder(t *testing.T) {
	b := newMemBudget(100)
	var owner memHold
	b.reserve(&owner, 100, false, time.Second, nil)
	type res struct {
		name string
		err  error
	}
	got := make(chan res, 4)
	start := func(name string, h *memHold, n int64, used bool) {
		go func() {
			_, err := b.reserve(h, n, used, 10*time.Second, nil)
			got <- res{name, err}
		}()
		waitFor(t, time.Second, name+" waiting", func() bool {
			_, _, w := b.snapshot()
			return w > 0 && func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				for _, x := range b.waiters {
					if x.h == h {
						return true
					}
				}
				return false
			}()
		})
	}
	var unusedBig, unusedSmall, usedBig memHold
	start("unused 40", &unusedBig, 40, false)
	start("unused 10", &unusedSmall, 10, false)
	start("used 30", &usedBig, 30, true)
	// Free 30: the used connection's 30 first, although it came last.
	b.release(&owner, 30)
	if r := <-got; r.name != "used 30" || r.err != nil {
		t.Fatalf("first served %s (%v), want used 30", r.name, r.err)
	}
	// Free 40 more: the smaller unused one, then the larger fits too.
	b.release(&owner, 10)
	if r := <-got; r.name != "unused 10" || r.err != nil {
		t.Fatalf("then %s (%v), want unused 10", r.name, r.err)
	}
	b.release(&owner, 40)
	if r := <-got; r.name != "unused 40" || r.err != nil {
		t.Fatalf("then %s (%v), want unused 40", r.name, r.err)
	}
	for _, h := range []*memHold{&owner, &unusedBig, &unusedSmall, &usedBig} {
		b.release(h, h.held)
	}
	checkWhole(t, b)
}

// TestBudgetNoDeadlock: connections that each hold part of the budget and
// all wait for more cannot deadlock: the youngest is refused at once (not
// after its timeout), and the others are served from what it releases.
func TestBudgetNoDeadlock(t *testing.T) {
	const holders = 10
	b := newMemBudget(100)
	hs := make([]memHold, holders)
	for i := range hs {
		b.reserve(&hs[i], 10, false, time.Second, nil)
	}
	// Each wants 5 more: no one can have it until someone gives up.
	var refused, served atomic.Int32
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range hs {
		wg.Go(func() {
			_, err := b.reserve(&hs[i], 5, true, time.Minute, nil)
			switch {
			case err == nil:
				served.Add(1)
				time.Sleep(time.Millisecond) // finishes its request
			case errors.Is(err, errMemDeadlock):
				refused.Add(1)
			default:
				t.Errorf("holder %d: %v", i, err)
			}
			b.release(&hs[i], hs[i].held) // done, or closed
		})
	}
	wg.Wait()
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("took %v: resolved by timeouts, not at once", d)
	}
	if served.Load() == 0 || refused.Load() == 0 || served.Load()+refused.Load() != holders {
		t.Fatalf("served %d, refused %d of %d", served.Load(), refused.Load(), holders)
	}
	checkWhole(t, b)
}

// TestBudgetManySmallWaiters: hundreds of connections holding nothing wait
// for a budget one connection holds; as it releases, every one of them is
// served (no deadlock, no lost wake-up), and the budget ends whole.
func TestBudgetManySmallWaiters(t *testing.T) {
	b := newMemBudget(1000)
	var owner memHold
	b.reserve(&owner, 1000, false, time.Second, nil)
	const waiters = 500
	var wg sync.WaitGroup
	var served atomic.Int32
	for i := range waiters {
		wg.Go(func() {
			var h memHold
			if _, err := b.reserve(&h, int64(1+i%7), i%2 == 0, time.Minute, nil); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			served.Add(1)
			time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
			b.release(&h, h.held)
		})
	}
	waitFor(t, 10*time.Second, "every waiter queued", func() bool {
		_, _, w := b.snapshot()
		return w == waiters
	})
	b.release(&owner, 1000)
	wg.Wait()
	if served.Load() != waiters {
		t.Fatalf("served %d of %d", served.Load(), waiters)
	}
	checkWhole(t, b)
}

// TestBudgetStress: random reservations, growths, releases, timeouts and
// wake-ups from many goroutines never exceed the budget and leave it
// whole.
func TestBudgetStress(t *testing.T) {
	const total = 1 << 20
	b := newMemBudget(total)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			var h memHold
			for range 300 {
				switch r.IntN(4) {
				case 0, 1:
					var wake chan struct{}
					if r.IntN(8) == 0 {
						wake = make(chan struct{})
						close(wake)
					}
					_, err := b.reserve(&h, int64(1+r.IntN(total/8)), r.IntN(2) == 0, time.Duration(r.IntN(3))*time.Millisecond, wake)
					if err != nil && !errors.Is(err, errMemTimeout) && !errors.Is(err, errMemTooLarge) &&
						!errors.Is(err, errMemDeadlock) && !errors.Is(err, errMemInterrupted) {
						t.Errorf("reserve: %v", err)
					}
					if errors.Is(err, errMemDeadlock) {
						b.release(&h, h.held) // its connection closes
					}
				case 2:
					b.release(&h, int64(r.IntN(total/8)))
				case 3:
					b.release(&h, h.held)
				}
			}
			b.release(&h, h.held)
		})
	}
	wg.Wait()
	if p := b.peak.Load(); p > total {
		t.Fatalf("peak %d over the budget %d", p, total)
	}
	checkWhole(t, b)
}

// writeSome writes b to c for at most a second: the server may stop
// reading (waiting for budget) or close.
func writeSome(c net.Conn, b []byte) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write(b) //nolint:errcheck
	c.SetWriteDeadline(time.Time{})
}

// TestConnectionsReleaseBudget: real connections that hold budget (a
// large request half sent, a decompression) and are closed in every way
// (client gone, refused, evicted, shutdown) give it all back.
func TestConnectionsReleaseBudget(t *testing.T) {
	s := startServer(t, config.ForwardInput{MaxBufferedBytes: 8 << 20, BufferWaitTimeout: 300 * time.Millisecond,
		MaxConnections: 8}, nil)
	b := s.in.mem
	// Half of a 3 MiB request: the connection reserves its size.
	c1 := s.dial(t)
	writeSome(c1, halfRequest(3<<20))
	waitFor(t, 5*time.Second, "a reservation", func() bool { used, _, _ := b.snapshot(); return used >= 3<<20-initialBufSize })
	c1.Close()
	waitFor(t, 5*time.Second, "the release after the client left", func() bool { used, _, _ := b.snapshot(); return used == 0 })

	// Two of 6 MiB: the second waits, then is refused after
	// buffer_wait_timeout; the first stalls and is closed after it too.
	c2 := s.dial(t)
	writeSome(c2, halfRequest(6<<20))
	waitFor(t, 5*time.Second, "a reservation", func() bool { used, _, _ := b.snapshot(); return used >= 6<<20-initialBufSize })
	c3 := s.dial(t)
	writeSome(c3, halfRequest(6<<20))
	readAll(t, c3)
	readAll(t, c2)
	waitFor(t, 5*time.Second, "the budget whole", func() bool { used, _, w := b.snapshot(); return used == 0 && w == 0 })
	if n := s.counter(`sluice_input_limit_violations_total{input="fw",limit="memory"}`); n != 2 {
		t.Fatalf("%d memory refusals, want 2 (one timeout, one stalled)", n)
	}

	// A request larger than the whole budget is refused from its header.
	c4 := s.dial(t)
	writeSome(c4, wire.AppendPackedForwardHeader(nil, []byte("big"), 12<<20))
	readAll(t, c4)

	// The oldest unused connection, holding budget, is evicted for a new
	// one: its budget goes to a waiter. (Another server, whose waiters do
	// not time out meanwhile.)
	s = startServer(t, config.ForwardInput{MaxBufferedBytes: 8 << 20, BufferWaitTimeout: time.Minute, MaxConnections: 8}, nil)
	b = s.in.mem
	c5 := s.dial(t)
	writeSome(c5, halfRequest(6<<20))
	waitFor(t, 5*time.Second, "a reservation", func() bool { used, _, _ := b.snapshot(); return used >= 6<<20-initialBufSize })
	var waiting []net.Conn
	for range 7 {
		c := s.dial(t)
		go writeSome(c, halfRequest(6<<20))
		waiting = append(waiting, c)
	}
	waitFor(t, 5*time.Second, "7 waiters", func() bool { _, _, w := b.snapshot(); return w == 7 })
	s.dial(t) // the 9th connection evicts the oldest unused one (c5, the holder)
	waitFor(t, 5*time.Second, "an eviction", func() bool {
		return s.counter(`sluice_input_connections_evicted_total{input="fw",reason="unused"}`) > 0
	})
	waitFor(t, 5*time.Second, "a waiter served", func() bool {
		_, active, w := b.snapshot()
		return active == 1 && w == 6
	})

	// Shutdown with waiters (woken) and a holder: the budget ends whole.
	s.stop()
	checkWhole(t, b)
	for _, c := range waiting {
		c.Close()
	}
}

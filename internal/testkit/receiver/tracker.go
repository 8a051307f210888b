package receiver

import (
	"context"
	"fmt"
	"math/bits"
	"sort"
	"sync"
	"time"
)

// MaxSeq bounds the sequence numbers a Tracker accepts (one bit each per
// source): 2^27 lines per source is 16 MiB of bitset.
const MaxSeq = 1 << 27

// maxMissing is how many missing sequence numbers Missing lists.
const maxMissing = 20

// BucketWidth is the time resolution of Window.
const BucketWidth = 100 * time.Millisecond

// maxBuckets bounds the time series (one hour); later events go to the last
// bucket.
const maxBuckets = int(time.Hour / BucketWidth)

// Tracker records which (source, sequence) keys arrived. It is safe for
// concurrent use: codecs fill a Batch per request without locking and Commit
// it under one lock.
type Tracker struct {
	mu       sync.Mutex
	start    time.Time
	sources  map[string]*source
	events   int64 // every keyed event, duplicates included
	distinct int64
	dups     int64
	unkeyed  int64
	requests int64
	bytes    int64
	buckets  []bucket
	waitCh   chan struct{} // non-nil while a waiter waits; closed on Commit
}

type source struct {
	bits     []uint64
	distinct int
	dups     int
}

type bucket struct {
	events int64
	latSum int64 // ns
	latMax int64 // ns
	latN   int64 // events with a usable event time
}

// NewTracker returns an empty Tracker; Window times are measured from now.
func NewTracker() *Tracker {
	return &Tracker{start: time.Now(), sources: make(map[string]*source)}
}

// Batch collects the events of one request before Commit. A Batch is owned
// by one goroutine; reusing it after Commit allocates nothing in steady
// state.
type Batch struct {
	srcs    []byte
	keys    []batchKey
	unkeyed int
	bytes   int
}

type batchKey struct {
	start, end uint32 // source bytes in srcs
	seq        int64
	timeNano   int64
}

// Add records one keyed event. src is copied; eventNano is the event's time
// (0 if unknown) for the latency figures.
func (b *Batch) Add(src []byte, seq int64, eventNano int64) {
	var start, end uint32
	reuse := false
	if n := len(b.keys); n > 0 {
		last := b.keys[n-1]
		if string(b.srcs[last.start:last.end]) == string(src) {
			start, end, reuse = last.start, last.end, true
		}
	}
	if !reuse {
		start = uint32(len(b.srcs))
		b.srcs = append(b.srcs, src...)
		end = uint32(len(b.srcs))
	}
	b.keys = append(b.keys, batchKey{start: start, end: end, seq: seq, timeNano: eventNano})
}

// AddUnkeyed counts an event that carried no (src, seq) key.
func (b *Batch) AddUnkeyed() { b.unkeyed++ }

// AddBytes adds n request bytes to the batch's byte count.
func (b *Batch) AddBytes(n int) { b.bytes += n }

// Len is the number of events in the batch, keyed or not.
func (b *Batch) Len() int { return len(b.keys) + b.unkeyed }

func (b *Batch) reset() {
	b.srcs = b.srcs[:0]
	b.keys = b.keys[:0]
	b.unkeyed = 0
	b.bytes = 0
}

// Commit records every event of b as one request and resets b.
func (t *Tracker) Commit(b *Batch) {
	now := time.Now()
	nowNano := now.UnixNano()
	t.mu.Lock()
	bi := int(now.Sub(t.start) / BucketWidth)
	if bi >= maxBuckets {
		bi = maxBuckets - 1
	}
	for len(t.buckets) <= bi {
		t.buckets = append(t.buckets, bucket{})
	}
	bk := &t.buckets[bi]
	var last *source
	var lastStart, lastEnd uint32 = 1, 0 // impossible range
	for _, k := range b.keys {
		if k.seq < 0 || k.seq >= MaxSeq {
			t.unkeyed++
			continue
		}
		s := last
		if k.start != lastStart || k.end != lastEnd {
			s = t.sources[string(b.srcs[k.start:k.end])]
			if s == nil {
				s = &source{}
				t.sources[string(b.srcs[k.start:k.end])] = s
			}
			last, lastStart, lastEnd = s, k.start, k.end
		}
		w := int(k.seq >> 6)
		if w >= len(s.bits) {
			n := max(w+1, 2*len(s.bits), 1024)
			s.bits = append(s.bits, make([]uint64, n-len(s.bits))...)
		}
		m := uint64(1) << (uint(k.seq) & 63)
		if s.bits[w]&m != 0 {
			s.dups++
			t.dups++
		} else {
			s.bits[w] |= m
			s.distinct++
			t.distinct++
		}
		t.events++
		bk.events++
		if k.timeNano > 0 {
			lat := max(nowNano-k.timeNano, 0)
			bk.latSum += lat
			bk.latN++
			bk.latMax = max(bk.latMax, lat)
		}
	}
	t.unkeyed += int64(b.unkeyed)
	t.requests++
	t.bytes += int64(b.bytes)
	if t.waitCh != nil {
		close(t.waitCh)
		t.waitCh = nil
	}
	t.mu.Unlock()
	b.reset()
}

// Stats is a snapshot of a Tracker's counters.
type Stats struct {
	Events     int64 // keyed events received, duplicates included
	Distinct   int64 // distinct (source, seq) keys
	Duplicates int64 // keyed events whose key was already seen
	Unkeyed    int64 // events without a usable key
	Requests   int64 // requests (chunks) recorded
	Bytes      int64 // request bytes as received (compressed if gzip)
}

func (s Stats) String() string {
	return fmt.Sprintf("events=%d distinct=%d duplicates=%d unkeyed=%d requests=%d bytes=%d",
		s.Events, s.Distinct, s.Duplicates, s.Unkeyed, s.Requests, s.Bytes)
}

// Stats returns the current counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Events: t.events, Distinct: t.distinct, Duplicates: t.dups, Unkeyed: t.unkeyed, Requests: t.requests, Bytes: t.bytes}
}

// Count is the number of distinct (source, seq) keys received.
func (t *Tracker) Count() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.distinct
}

// Duplicates is the number of keyed events received more than once.
func (t *Tracker) Duplicates() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dups
}

// Distinct is the number of distinct sequence numbers received from src.
func (t *Tracker) Distinct(src string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sources[src]; s != nil {
		return s.distinct
	}
	return 0
}

// Sources returns the distinct count per source.
func (t *Tracker) Sources() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := make(map[string]int, len(t.sources))
	for k, s := range t.sources {
		m[k] = s.distinct
	}
	return m
}

// Missing returns the first few (at most 20) sequence numbers in [0, n)
// not received from src, in ascending order; nil when none is missing.
func (t *Tracker) Missing(src string, n int) []int {
	miss, _ := t.missing(src, n)
	return miss
}

// MissingCount is the number of sequence numbers in [0, n) not received
// from src.
func (t *Tracker) MissingCount(src string, n int) int {
	_, c := t.missing(src, n)
	return c
}

func (t *Tracker) missing(src string, n int) ([]int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b []uint64
	if s := t.sources[src]; s != nil {
		b = s.bits
	}
	var out []int
	count := 0
	for w := 0; w*64 < n; w++ {
		var word uint64
		if w < len(b) {
			word = b[w]
		}
		valid := ^uint64(0)
		if rem := n - w*64; rem < 64 {
			valid = (uint64(1) << uint(rem)) - 1
		}
		holes := ^word & valid
		if holes == 0 {
			continue
		}
		count += bits.OnesCount64(holes)
		for holes != 0 && len(out) < maxMissing {
			i := bits.TrailingZeros64(holes)
			out = append(out, w*64+i)
			holes &= holes - 1
		}
	}
	return out, count
}

// Wait returns nil once at least n distinct keys were received, or ctx's
// error with the count reached so far.
func (t *Tracker) Wait(ctx context.Context, n int64) error {
	return t.WaitFunc(ctx, func(s Stats) bool { return s.Distinct >= n })
}

// WaitCount is Wait with a timeout; it reports whether n was reached.
func (t *Tracker) WaitCount(n int64, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.Wait(ctx, n) == nil
}

// WaitFunc returns nil once cond holds for the current Stats (checked after
// every Commit), or ctx's error.
func (t *Tracker) WaitFunc(ctx context.Context, cond func(Stats) bool) error {
	for {
		t.mu.Lock()
		st := Stats{Events: t.events, Distinct: t.distinct, Duplicates: t.dups, Unkeyed: t.unkeyed, Requests: t.requests, Bytes: t.bytes}
		if cond(st) {
			t.mu.Unlock()
			return nil
		}
		if t.waitCh == nil {
			t.waitCh = make(chan struct{})
		}
		ch := t.waitCh
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("receiver: wait: %w (%s)", ctx.Err(), st)
		}
	}
}

// WindowStats summarises the events committed in a time window.
type WindowStats struct {
	Events      int64
	Duration    time.Duration
	Rate        float64       // events per second
	MeanLatency time.Duration // receive time minus event time
	MaxLatency  time.Duration
}

func (w WindowStats) String() string {
	return fmt.Sprintf("%d events in %v (%.0f/s), latency mean %v max %v",
		w.Events, w.Duration.Round(time.Millisecond), w.Rate,
		w.MeanLatency.Round(time.Millisecond), w.MaxLatency.Round(time.Millisecond))
}

// Window aggregates the events committed in [from, to), at BucketWidth
// resolution.
func (t *Tracker) Window(from, to time.Time) WindowStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	lo := max(int(from.Sub(t.start)/BucketWidth), 0)
	hi := min(int(to.Sub(t.start)/BucketWidth), len(t.buckets))
	var w WindowStats
	var latSum, latN int64
	for i := lo; i < hi; i++ {
		b := t.buckets[i]
		w.Events += b.events
		latSum += b.latSum
		latN += b.latN
		w.MaxLatency = max(w.MaxLatency, time.Duration(b.latMax))
	}
	if hi > lo {
		w.Duration = time.Duration(hi-lo) * BucketWidth
		w.Rate = float64(w.Events) / w.Duration.Seconds()
	}
	if latN > 0 {
		w.MeanLatency = time.Duration(latSum / latN)
	}
	return w
}

// SourceNames returns the sources seen, sorted.
func (t *Tracker) SourceNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.sources))
	for k := range t.sources {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

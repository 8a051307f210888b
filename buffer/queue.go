package buffer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

var (
	// ErrClosed is returned by Append, Sync, Next and WaitEmpty after Close.
	ErrClosed = errors.New("buffer: queue closed")
	// ErrChunkTooLarge is returned (wrapped) by Append for a chunk whose
	// frame does not fit in one segment.
	ErrChunkTooLarge = errors.New("buffer: chunk larger than a segment")
)

// maxUnsynced bounds the rotated segments waiting for an fsync when Run is
// not fsyncing them (interval policy): past it, Append fsyncs them itself.
const maxUnsynced = 4

// Queue is one output's durable disk queue. See the package doc for the
// on-disk format and the guarantees.
//
// Lifecycle: Open, then Run in its own goroutine (interval fsync), then
// Close. Close is idempotent and the Queue cannot be reused after it.
//
// Concurrency: Append, Sync, Stats, WaitEmpty and Ack are safe for
// concurrent use. Next and Rewind belong to the single consumer; Ack may
// come from any goroutine (for example a connection's ack reader).
type Queue struct {
	dir  string
	opts Options
	log  *slog.Logger
	m    queueMetrics

	frames sync.Pool // *[]byte frame buffers, used by Append outside mu

	// rhdr is the frame header scratch of the single consumer (Next),
	// used outside mu.
	rhdr [frameHeaderLen]byte

	// mu guards everything below. File I/O that may be slow (fsync, and
	// Next's reads) runs with mu released; the code that does it says how
	// it stays consistent.
	mu       sync.Mutex
	closed   bool  // Close started: no new appends or reads
	final    bool  // Close finished its final fsync
	err      error // sticky write-side error: a failed fsync, or a write that could not be undone
	done     chan struct{}
	syncCond *sync.Cond // signalled when a sync finishes (syncing, syncedEpoch, final)

	// Writer state, owned by Append under mu.
	segs     []*segment // ascending sequence; the last one is the active segment
	wf       *os.File   // active segment, opened for writing
	total    int64      // sum of segs[i].size
	unsynced []*os.File // rotated segments not yet fsynced; the syncer closes them
	spare    []*os.File // recycled backing array for unsynced

	// Durability. epoch counts changes that need an fsync; the syncer
	// captures the dirty flags, fsyncs with mu released, then publishes
	// syncedEpoch. Only one sync runs at a time (syncing).
	epoch, syncedEpoch uint64
	// dataEpoch counts the changes that appended data depends on (writes,
	// new segments); syncedData is the dataEpoch the last fsync round
	// covered. SyncTo waits on these: an ack to a client needs its data on
	// disk, not the ack position (which only saves duplicates).
	dataEpoch, syncedData        uint64
	syncing                      bool
	syncRounds                   int // fsync rounds done, for tests
	segDirty, ackDirty, dirDirty bool
	dirf                         *os.File
	ack                          *ackFile
	ackPos                       ID // first position not known to be acked
	ackErrLogged                 bool

	// Consumer state. inflight[head:] are the chunks handed out by Next
	// from ackPos up to readPos, in order; rdIdx is the next one Next
	// re-delivers after a Rewind (len(inflight) when none).
	inflight  []inflight
	head      int
	rdIdx     int
	readPos   ID       // where the next new frame is read
	rf        *os.File // read handle of segment rfSeq
	rfSeq     uint64
	cursorGen uint64 // bumped when Rewind or a drop moves the cursor under a running read

	pending, pendingEvents int64
	stats                  Stats

	dataCh   chan struct{} // closed when a chunk is appended, if dataWait
	paused   bool          // Next hands out nothing (Pause, Resume)
	dataWait bool
	ackCh    chan struct{} // closed on acks, drops and deletions, if ackWait
	ackWait  bool
}

// segment is the in-memory summary of one segment file.
type segment struct {
	seq   uint64
	size  int64  // bytes in the file
	end   int64  // end of the last valid frame; readers stop here
	skips []span // damaged regions readers jump over

	// Frames in this segment neither acked, dropped nor lost.
	chunks, events, bytes int64
}

func (s *segment) skipAt(off int64) (int64, bool) {
	for _, sp := range s.skips {
		if sp.from <= off && off < sp.to {
			return sp.to, true
		}
	}
	return 0, false
}

// inflight is a chunk handed out by Next and not yet part of the acked
// prefix.
type inflight struct {
	id, next ID // the frame's position and the position right after it
	count    int
	bytes    int // entries bytes
	acked    bool
}

// Stats are the queue's numbers since Open (counters) and now (gauges).
type Stats struct {
	Bytes         int64 // sum of segment file sizes on disk
	Segments      int
	Pending       int64 // chunks appended or recovered and not yet acked, dropped or lost
	PendingEvents int64
	InFlight      int // chunks returned by Next and not yet acked

	AppendedChunks, AppendedEvents, AppendedBytes int64 // bytes: entries bytes
	AckedChunks                                   int64 // settled with every event delivered
	DeliveredEvents                               int64
	DeadLetteredChunks, DeadLetteredEvents        int64 // settled with events in the dead-letter queue
	DroppedChunks, DroppedEvents, DroppedBytes    int64 // by the DropOldest policy
	DiscardedChunks, DiscardedEvents              int64 // given up on by the output (Discard)
	CorruptChunks                                 int64 // damaged regions skipped or truncated
	BadSegments                                   int64 // unreadable segment files renamed to .bad
	TruncatedBytes                                int64 // damaged tail bytes cut off the last segment
}

type queueMetrics struct {
	appendedChunks, appendedEvents, appendedBytes *metrics.Counter
	ackedChunks                                   *metrics.Counter
	delivered, deadLettered, droppedBySettle      *metrics.Counter // sluice_buffer_settled_events_total{status}
	droppedChunks, droppedEvents, droppedBytes    *metrics.Counter
	corrupt, badSegments, truncatedBytes          *metrics.Counter
	bytes, pending                                *metrics.Gauge
}

func newQueueMetrics(set *metrics.Set, name string) queueMetrics {
	c := func(metric string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf("%s{output=%q}", metric, name))
	}
	g := func(metric string) *metrics.Gauge {
		return set.GetOrCreateGauge(fmt.Sprintf("%s{output=%q}", metric, name), nil)
	}
	return queueMetrics{
		appendedChunks:  c("sluice_buffer_appended_chunks_total"),
		appendedEvents:  c("sluice_buffer_appended_events_total"),
		appendedBytes:   c("sluice_buffer_appended_bytes_total"),
		ackedChunks:     c("sluice_buffer_acked_chunks_total"),
		delivered:       set.GetOrCreateCounter(fmt.Sprintf(`sluice_buffer_settled_events_total{output=%q,status="delivered"}`, name)),
		deadLettered:    set.GetOrCreateCounter(fmt.Sprintf(`sluice_buffer_settled_events_total{output=%q,status="dead_lettered"}`, name)),
		droppedBySettle: set.GetOrCreateCounter(fmt.Sprintf(`sluice_buffer_settled_events_total{output=%q,status="dropped"}`, name)),
		droppedChunks:   c("sluice_buffer_dropped_chunks_total"),
		droppedEvents:   c("sluice_buffer_dropped_events_total"),
		droppedBytes:    c("sluice_buffer_dropped_bytes_total"),
		corrupt:         c("sluice_buffer_corrupt_chunks_total"),
		badSegments:     c("sluice_buffer_bad_segments_total"),
		truncatedBytes:  c("sluice_buffer_truncated_bytes_total"),
		bytes:           g("sluice_buffer_bytes"),
		pending:         g("sluice_buffer_pending_chunks"),
	}
}

// Open opens or creates the queue in dir, recovering what a previous run
// left: it verifies every frame from the persisted ack position on,
// truncates a damaged tail of the last segment, skips damaged frames
// elsewhere, renames unreadable segments to .bad, and starts a new active
// segment. Damage is logged and counted, never returned: Open fails only
// on real I/O problems (permissions, a full disk) or invalid options, and
// when another Queue holds dir.
func Open(dir string, opts Options) (*Queue, error) {
	opts, err := opts.withDefaults(dir)
	if err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("buffer: create dir: %w", err)
	}
	q := &Queue{
		dir:    dir,
		opts:   opts,
		log:    opts.Logger,
		m:      newQueueMetrics(opts.Metrics, opts.Name),
		done:   make(chan struct{}),
		dataCh: make(chan struct{}),
		ackCh:  make(chan struct{}),
	}
	q.syncCond = sync.NewCond(&q.mu)
	q.frames.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	if err := q.recover(); err != nil {
		q.closeFiles()
		return nil, err
	}
	return q, nil
}

func (q *Queue) segPath(seq uint64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%020d.seg", seq))
}

// Append stores one chunk: count events of one tag whose Forward entries
// are entries (stored verbatim). It returns after the frame is written to
// the OS and, with FsyncAlways, fsynced. With overflow Block it waits for
// space and returns ctx's error if ctx ends first. A chunk whose frame is
// larger than SegmentBytes is rejected with ErrChunkTooLarge. Append
// copies tag and entries; the caller may reuse them.
func (q *Queue) Append(ctx context.Context, tag []byte, count int, entries []byte) error {
	if count < 0 || uint64(count) > math.MaxUint32 {
		return fmt.Errorf("buffer: invalid event count %d", count)
	}
	if len(tag) > maxTagLen {
		return fmt.Errorf("buffer: tag of %d bytes is longer than %d", len(tag), maxTagLen)
	}
	if n := frameSize(len(tag), len(entries)); n > q.opts.SegmentBytes {
		return fmt.Errorf("%w: frame of %d bytes, segment_bytes %d", ErrChunkTooLarge, n, q.opts.SegmentBytes)
	}
	bp := q.frames.Get().(*[]byte)
	*bp = appendFrame((*bp)[:0], tag, count, entries)
	err := q.write(ctx, *bp, count, len(entries))
	q.frames.Put(bp)
	return err
}

func (q *Queue) write(ctx context.Context, frame []byte, count, entriesLen int) error {
	n := int64(len(frame))
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return ErrClosed
		}
		if q.err != nil {
			return q.err
		}
		if act := q.segs[len(q.segs)-1]; act.size > 0 && act.size+n > q.opts.SegmentBytes {
			if err := q.rotateLocked(); err != nil {
				return err
			}
		}
		if q.total+n <= q.opts.MaxBytes {
			break
		}
		if q.opts.Overflow == DropOldest {
			q.dropLocked(n)
			break
		}
		ch := q.waitAckLocked()
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			q.mu.Lock()
			return ctx.Err()
		case <-ch:
		}
		q.mu.Lock()
	}
	act := q.segs[len(q.segs)-1]
	off := act.size
	if _, err := q.wf.WriteAt(frame, off); err != nil {
		werr := fmt.Errorf("buffer: write segment %d: %w", act.seq, err)
		if terr := q.wf.Truncate(off); terr != nil {
			q.err = fmt.Errorf("%w; undo: %v", werr, terr)
			q.log.Error("buffer: write failed and could not be undone; queue stops accepting chunks", "err", q.err)
		}
		return werr
	}
	act.size += n
	act.end = act.size
	act.chunks++
	act.events += int64(count)
	act.bytes += int64(entriesLen)
	q.total += n
	q.pending++
	q.pendingEvents += int64(count)
	q.stats.AppendedChunks++
	q.stats.AppendedEvents += int64(count)
	q.stats.AppendedBytes += int64(entriesLen)
	q.m.appendedChunks.Inc()
	q.m.appendedEvents.Add(count)
	q.m.appendedBytes.Add(entriesLen)
	q.epoch++
	q.dataEpoch++
	q.segDirty = true
	q.notifyDataLocked()
	q.gaugesLocked()
	if q.opts.FsyncAlways || len(q.unsynced) >= maxUnsynced {
		return q.syncLocked()
	}
	return nil
}

// rotateLocked closes the active segment for writing and starts the next.
// The old file is handed to the syncer, which fsyncs and closes it.
func (q *Queue) rotateLocked() error {
	seq := q.segs[len(q.segs)-1].seq + 1
	f, err := createSegment(q.segPath(seq))
	if err != nil {
		return fmt.Errorf("buffer: create segment %d: %w", seq, err)
	}
	q.unsynced = append(q.unsynced, q.wf)
	q.wf = f
	q.segDirty = false // the old file's writes are covered by unsynced
	q.segs = append(q.segs, &segment{seq: seq})
	q.dirDirty = true
	q.epoch++
	q.dataEpoch++
	if q.collectLocked() {
		q.persistAckLocked()
	}
	return nil
}

// dropLocked deletes old segments until need more bytes fit, never the
// active one. It first deletes, oldest first, the segments that hold no
// chunk in flight (handed out by Next and not settled): an output that
// holds chunks for minutes (batching into one request or object) does not
// have them deleted under it, and they stay on disk until it settles them.
// Only if that cannot make room does it delete segments with chunks in
// flight too, oldest first: those chunks are counted as dropped and their
// later settlement is ignored. Outputs bound what they hold in flight far
// below MaxBytes, so the second pass is a last resort. Unacked chunks in
// deleted segments are counted as dropped, and the consumer's cursors move
// past them.
func (q *Queue) dropLocked(need int64) {
	var chunks, events, bytes, inflightDropped int64
	var segs []uint64
	busy := q.busySegmentsLocked()
	for pass := 0; pass < 2 && q.total+need > q.opts.MaxBytes; pass++ {
		for i := 0; i < len(q.segs)-1 && q.total+need > q.opts.MaxBytes; {
			s := q.segs[i]
			if pass == 0 && slices.Contains(busy, s.seq) {
				i++
				continue
			}
			q.removeSegmentLocked(i)
			segs = append(segs, s.seq)
			chunks += s.chunks
			events += s.events
			bytes += s.bytes
			if pass == 1 {
				inflightDropped += q.dropInflightLocked(s.seq)
			}
		}
	}
	if len(segs) == 0 {
		return
	}
	q.pending -= chunks
	q.pendingEvents -= events
	moved := false
	if !q.hasSegmentLocked(q.ackPos.Segment) {
		// The segment holding the ack position is gone: every chunk before
		// the next kept segment is settled or dropped.
		i, _ := slices.BinarySearchFunc(q.segs, q.ackPos.Segment, func(s *segment, seq uint64) int { return cmp.Compare(s.seq, seq) })
		q.ackPos = ID{Segment: q.segs[i].seq} // i < len: the active segment is never dropped
		for q.head < len(q.inflight) && q.inflight[q.head].id.compare(q.ackPos) < 0 {
			q.head++ // settled (pass 0) or just dropped (pass 1)
		}
		moved = true
	}
	// Chunks after the dropped ones may already be acked (out of order):
	// the acked prefix now starts with them.
	q.advanceAckedLocked(moved)
	q.cursorGen++
	q.stats.DroppedChunks += chunks
	q.stats.DroppedEvents += events
	q.stats.DroppedBytes += bytes
	q.m.droppedChunks.AddInt64(chunks)
	q.m.droppedEvents.AddInt64(events)
	q.m.droppedBytes.AddInt64(bytes)
	if inflightDropped > 0 {
		q.log.Error("buffer: full and every older segment is in flight; dropped chunks an output was sending",
			"chunks_in_flight", inflightDropped, "max_bytes", q.opts.MaxBytes)
	}
	q.log.Warn("buffer: full; dropped old segments", "segments", len(segs), "first", segs[0], "last", segs[len(segs)-1],
		"chunks", chunks, "events", events, "bytes", bytes, "max_bytes", q.opts.MaxBytes)
	q.notifyAckLocked()
	q.gaugesLocked()
}

// busySegmentsLocked returns the sequence numbers of the segments that
// hold a chunk in flight, ascending.
func (q *Queue) busySegmentsLocked() []uint64 {
	var busy []uint64
	for i := q.head; i < len(q.inflight); i++ {
		if e := &q.inflight[i]; !e.acked && (len(busy) == 0 || busy[len(busy)-1] != e.id.Segment) {
			busy = append(busy, e.id.Segment)
		}
	}
	return busy
}

// dropInflightLocked marks the unsettled in-flight chunks of segment seq
// settled (they were deleted with it) and returns how many there were. Their
// counts are already part of the segment's, which the caller accounts.
func (q *Queue) dropInflightLocked(seq uint64) int64 {
	var n int64
	for i := q.head; i < len(q.inflight); i++ {
		if e := &q.inflight[i]; e.id.Segment == seq && !e.acked {
			e.acked = true
			n++
		}
	}
	return n
}

func (q *Queue) hasSegmentLocked(seq uint64) bool {
	_, ok := slices.BinarySearchFunc(q.segs, seq, func(s *segment, seq uint64) int { return cmp.Compare(s.seq, seq) })
	return ok
}

// removeSegmentLocked deletes the segment file q.segs[i]. The caller
// accounts for its pending chunks.
func (q *Queue) removeSegmentLocked(i int) *segment {
	s := q.segs[i]
	q.segs = slices.Delete(q.segs, i, i+1)
	q.total -= s.size
	if q.rf != nil && q.rfSeq == s.seq {
		q.rf.Close() // read-only handle: nothing to lose
		q.rf = nil
		q.cursorGen++
	}
	if err := os.Remove(q.segPath(s.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		q.log.Error("buffer: remove segment", "segment", s.seq, "err", err)
	}
	q.dirDirty = true
	q.epoch++
	q.notifyAckLocked()
	return s
}

// collectLocked deletes the leading segments whose every chunk is acked
// and moves ackPos to the start of the first kept segment when it was at
// the end of a deleted one. It reports whether ackPos changed.
func (q *Queue) collectLocked() bool {
	changed := false
	for len(q.segs) > 1 {
		s := q.segs[0]
		atEnd := s.seq == q.ackPos.Segment && q.ackPos.Offset >= s.end
		if s.seq >= q.ackPos.Segment && !atEnd {
			break
		}
		q.removeSegmentLocked(0)
		q.pending -= s.chunks // zero unless the accounting is wrong
		q.pendingEvents -= s.events
		if atEnd {
			q.ackPos = ID{Segment: q.segs[0].seq}
			changed = true
		}
	}
	q.gaugesLocked()
	return changed
}

// Stats returns a snapshot of the queue's numbers.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.Bytes = q.total
	s.Segments = len(q.segs)
	s.Pending = q.pending
	s.PendingEvents = q.pendingEvents
	for _, e := range q.inflight[q.head:] {
		if !e.acked {
			s.InFlight++
		}
	}
	return s
}

func (q *Queue) gaugesLocked() {
	q.m.bytes.Set(float64(q.total))
	q.m.pending.Set(float64(q.pending))
}

// waitDataLocked returns a channel closed at the next append or at Close.
func (q *Queue) waitDataLocked() <-chan struct{} {
	q.dataWait = true
	return q.dataCh
}

func (q *Queue) notifyDataLocked() {
	if q.dataWait && !q.closed {
		close(q.dataCh)
		q.dataCh = make(chan struct{})
		q.dataWait = false
	}
}

// waitAckLocked returns a channel closed at the next ack, drop or segment
// deletion, or at Close.
func (q *Queue) waitAckLocked() <-chan struct{} {
	q.ackWait = true
	return q.ackCh
}

func (q *Queue) notifyAckLocked() {
	if q.ackWait && !q.closed {
		close(q.ackCh)
		q.ackCh = make(chan struct{})
		q.ackWait = false
	}
}

// errorsIsEOF reports a short read of a segment: its data ends earlier
// than the in-memory state says.
func errorsIsEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

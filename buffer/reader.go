package buffer

import (
	"context"
	"fmt"
	"os"
	"slices"
)

// Chunk is one stored chunk as returned by Next. Tag and Entries share one
// buffer that Next allocates for the chunk; the caller owns it.
type Chunk struct {
	ID      ID
	Tag     []byte
	Count   int
	Entries []byte // concatenated msgpack Forward entries, as appended
}

// Next returns the next chunk past the read cursor, in append order,
// waiting until one exists or ctx is done. After Rewind it first returns
// again every chunk it returned before that is still unacked. Damaged
// frames are skipped, counted and logged. A chunk already available is
// returned even if ctx is done. Next is for the single consumer;
// it must not be called concurrently with itself or Rewind.
func (q *Queue) Next(ctx context.Context) (Chunk, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return Chunk{}, ErrClosed
		}
		if q.paused {
			ch := q.waitDataLocked() // closed by Resume (or an Append: look again)
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				q.mu.Lock()
				return Chunk{}, ctx.Err()
			case <-ch:
			}
			q.mu.Lock()
			continue
		}
		var id ID
		var limit int64
		redeliver := q.rdIdx < len(q.inflight)
		if redeliver {
			e := &q.inflight[q.rdIdx]
			if e.acked {
				q.rdIdx++
				continue
			}
			id, limit = e.id, e.next.Offset
		} else {
			s, ok := q.nextReadLocked()
			if !ok {
				ch := q.waitDataLocked()
				q.mu.Unlock()
				select {
				case <-ctx.Done():
					q.mu.Lock()
					return Chunk{}, ctx.Err()
				case <-ch:
				}
				q.mu.Lock()
				continue
			}
			id, limit = q.readPos, s.end
		}
		f, err := q.readerLocked(id.Segment)
		if err != nil {
			return Chunk{}, err
		}
		gen := q.cursorGen
		// Read with mu released. The frame is complete (limit is at most
		// the end of what Append wrote) and its segment stays on disk
		// unless a drop deletes it, which bumps cursorGen; so does a
		// Rewind. On a changed generation the result is discarded.
		q.mu.Unlock()
		payload, size, err := readFrame(f, id, limit, q.rhdr[:])
		ce, _ := err.(*CorruptionError) // readFrame returns it unwrapped
		skipTo := int64(-1)
		if ce != nil && !redeliver {
			skipTo = resyncFile(f, id.Offset+1, limit)
		}
		q.mu.Lock()
		if q.closed {
			return Chunk{}, ErrClosed
		}
		if gen != q.cursorGen || q.paused {
			continue // paused while we read: nothing is handed out
		}
		if redeliver && (q.rdIdx >= len(q.inflight) || q.inflight[q.rdIdx].id != id || q.inflight[q.rdIdx].acked) {
			continue // acked (and maybe popped) while we read
		}
		if ce != nil {
			q.corruptReadLocked(ce, redeliver, skipTo, limit)
			continue
		}
		if err != nil {
			return Chunk{}, err
		}
		count, tag, entries := decodePayload(payload)
		if redeliver {
			q.rdIdx++
		} else {
			next := ID{Segment: id.Segment, Offset: id.Offset + size}
			q.inflight = append(q.inflight, inflight{id: id, next: next, count: count, bytes: len(entries)})
			q.rdIdx = len(q.inflight)
			q.readPos = next
		}
		return Chunk{ID: id, Tag: tag, Count: count, Entries: entries}, nil
	}
}

// nextReadLocked moves readPos over damaged regions, segment ends and
// deleted segments to the next frame to read. It returns false when the
// reader has caught up with the writer.
func (q *Queue) nextReadLocked() (*segment, bool) {
	for {
		i, _ := slices.BinarySearchFunc(q.segs, q.readPos.Segment, func(s *segment, seq uint64) int {
			switch {
			case s.seq < seq:
				return -1
			case s.seq > seq:
				return 1
			}
			return 0
		})
		if i == len(q.segs) {
			return nil, false // unreachable: readPos never passes the active segment
		}
		s := q.segs[i]
		if s.seq != q.readPos.Segment {
			q.readPos = ID{Segment: s.seq}
		}
		if to, ok := s.skipAt(q.readPos.Offset); ok {
			q.readPos.Offset = to
			continue
		}
		if q.readPos.Offset < s.end {
			return s, true
		}
		if i == len(q.segs)-1 {
			return s, false
		}
		q.reconcileLocked(s)
		q.readPos = ID{Segment: q.segs[i+1].seq}
	}
}

// reconcileLocked runs when the reader leaves a finished segment: its
// pending chunks must now all be in flight. Any difference are chunks lost
// to damage found while reading (the frame count of a damaged region is
// unknown until then); they stop counting as pending.
func (q *Queue) reconcileLocked(s *segment) {
	var chunks, events, bytes int64
	for i := len(q.inflight) - 1; i >= q.head && q.inflight[i].id.Segment >= s.seq; i-- {
		if e := &q.inflight[i]; e.id.Segment == s.seq && !e.acked {
			chunks++
			events += int64(e.count)
			bytes += int64(e.bytes)
		}
	}
	lost := s.chunks - chunks
	if lost <= 0 {
		return
	}
	q.log.Warn("buffer: chunks lost to damage in segment", "segment", s.seq, "chunks", lost, "events", s.events-events)
	q.pending -= lost
	q.pendingEvents -= s.events - events
	s.chunks, s.events, s.bytes = chunks, events, bytes
	q.notifyAckLocked()
	q.gaugesLocked()
}

// corruptReadLocked handles a frame that failed verification in Next. A
// new frame's damaged region is skipped up to the next valid frame (or
// limit); a chunk being re-delivered is lost and settled as if acked.
func (q *Queue) corruptReadLocked(ce *CorruptionError, redeliver bool, skipTo, limit int64) {
	q.stats.CorruptChunks++
	q.m.corrupt.Inc()
	if redeliver {
		q.log.Warn("buffer: chunk damaged on disk before it was acked; lost", "err", ce)
		q.settleLocked(q.rdIdx)
		return
	}
	to := limit
	if skipTo >= 0 {
		to = skipTo
	}
	q.log.Warn("buffer: skipped damaged frame", "segment", ce.Segment, "offset", ce.Offset, "to", to, "err", ce)
	for _, s := range q.segs {
		if s.seq == ce.Segment {
			s.skips = append(s.skips, span{ce.Offset, to})
			slices.SortFunc(s.skips, func(a, b span) int { return int(a.from - b.from) })
			break
		}
	}
}

// readerLocked returns the consumer's read handle for segment seq.
func (q *Queue) readerLocked(seq uint64) (*os.File, error) {
	if q.rf != nil && q.rfSeq == seq {
		return q.rf, nil
	}
	if q.rf != nil {
		q.rf.Close()
		q.rf = nil
	}
	f, err := os.Open(q.segPath(seq))
	if err != nil {
		return nil, fmt.Errorf("buffer: open segment %d: %w", seq, err)
	}
	q.rf, q.rfSeq = f, seq
	return f, nil
}

// readFrame reads and verifies the frame at id, which must end by limit.
// Damage is returned as *CorruptionError.
func readFrame(f *os.File, id ID, limit int64, hdr []byte) ([]byte, int64, error) {
	corrupt := func(err error) ([]byte, int64, error) {
		return nil, 0, &CorruptionError{Segment: id.Segment, Offset: id.Offset, Err: err}
	}
	if limit-id.Offset < minFrameLen {
		return corrupt(errTorn)
	}
	if _, err := f.ReadAt(hdr, id.Offset); err != nil {
		if errorsIsEOF(err) {
			return corrupt(errTorn)
		}
		return nil, 0, fmt.Errorf("buffer: read segment %d: %w", id.Segment, err)
	}
	n, err := checkHeader(hdr, limit-id.Offset)
	if err != nil {
		return corrupt(err)
	}
	p := make([]byte, n)
	if _, err := f.ReadAt(p, id.Offset+frameHeaderLen); err != nil {
		if errorsIsEOF(err) {
			return corrupt(errTorn)
		}
		return nil, 0, fmt.Errorf("buffer: read segment %d: %w", id.Segment, err)
	}
	fi, err := checkPayload(hdr, p)
	if err != nil {
		return corrupt(err)
	}
	return p, fi.size, nil
}

// resyncFile returns the offset of the first valid frame in [from, limit)
// of f, or -1 (also when the range cannot be read).
func resyncFile(f *os.File, from, limit int64) int64 {
	if from >= limit {
		return -1
	}
	b := make([]byte, limit-from)
	if _, err := f.ReadAt(b, from); err != nil {
		return -1
	}
	if i := resync(b, 0); i >= 0 {
		return from + int64(i)
	}
	return -1
}

// Ack marks the chunk id as delivered: Settle(id, Settlement{}).
func (q *Queue) Ack(id ID) { q.Settle(id, Settlement{}) }

// Discard settles the chunk id without delivery: the output gave up on it
// and kept no copy. It is Settle with every event dropped for reason.
func (q *Queue) Discard(id ID, reason string) {
	q.Settle(id, Settlement{Dropped: -1, Reason: reason})
}

// Settlement says how an output settled a chunk: every event not counted
// here was delivered.
type Settlement struct {
	// DeadLettered events were refused for good by the destination and
	// stored in the output's dead-letter queue (a durable copy).
	DeadLettered int
	// Dropped events were given up without a copy (max_retries without a
	// dead-letter queue, Discard). -1 means all of the chunk's events.
	Dropped int
	// Reason is a short constant label for the dead-lettered or dropped
	// events, e.g. "max_retries" or "rejected".
	Reason string
}

// Settle marks the chunk id done, however it ended. The ack position
// advances over the contiguous settled prefix and is persisted (fsynced at
// once with FsyncAlways, else by Run); fully settled segments are deleted.
// Settles may come in any order and from any goroutine; ones for unknown
// ids (already settled, dropped by overflow, or from before a restart) are
// ignored.
//
// Counting: a chunk with every event delivered counts as acked
// (sluice_buffer_acked_chunks_total, Stats.AckedChunks); its events in
// sluice_buffer_settled_events_total{status="delivered"}. Dead-lettered
// and dropped events count under status "dead_lettered" and "dropped";
// a chunk with dropped events also counts in
// sluice_buffer_discarded_{chunks,events}_total{reason} (Stats.Discarded*),
// and never as acked.
func (q *Queue) Settle(id ID, s Settlement) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, ok := q.findInflightLocked(id)
	if !ok {
		return
	}
	n := q.inflight[i].count
	if s.Dropped < 0 || s.Dropped > n {
		s.Dropped = n
	}
	s.DeadLettered = min(max(s.DeadLettered, 0), n-s.Dropped)
	delivered := n - s.Dropped - s.DeadLettered
	q.stats.DeliveredEvents += int64(delivered)
	q.stats.DeadLetteredEvents += int64(s.DeadLettered)
	q.m.delivered.Add(delivered)
	if s.DeadLettered > 0 {
		q.m.deadLettered.Add(s.DeadLettered)
	}
	switch {
	case s.Dropped > 0:
		q.stats.DiscardedChunks++
		q.stats.DiscardedEvents += int64(s.Dropped)
		q.m.droppedBySettle.Add(s.Dropped)
		q.opts.Metrics.GetOrCreateCounter(fmt.Sprintf(`sluice_buffer_discarded_chunks_total{output=%q,reason=%q}`, q.opts.Name, s.Reason)).Inc()
		q.opts.Metrics.GetOrCreateCounter(fmt.Sprintf(`sluice_buffer_discarded_events_total{output=%q,reason=%q}`, q.opts.Name, s.Reason)).Add(s.Dropped)
	case s.DeadLettered > 0:
		q.stats.DeadLetteredChunks++
	default:
		q.stats.AckedChunks++
		q.m.ackedChunks.Inc()
	}
	if q.settleLocked(i) && q.opts.FsyncAlways {
		_ = q.syncLocked() // logged there; a lost ack position only means duplicates
	}
}

// findInflightLocked returns the index in inflight of the unsettled chunk
// id handed out by Next.
func (q *Queue) findInflightLocked(id ID) (int, bool) {
	if q.closed {
		return 0, false
	}
	i, ok := slices.BinarySearchFunc(q.inflight[q.head:], id, func(e inflight, id ID) int { return e.id.compare(id) })
	if !ok || q.inflight[q.head+i].acked {
		return 0, false
	}
	return q.head + i, true
}

// settleLocked marks inflight[i] done (acked, or lost) and advances ackPos
// over the acked prefix, deleting segments that became fully acked. It
// reports whether ackPos moved.
func (q *Queue) settleLocked(i int) bool {
	e := &q.inflight[i]
	e.acked = true
	for _, s := range q.segs {
		if s.seq == e.id.Segment {
			s.chunks--
			s.events -= int64(e.count)
			s.bytes -= int64(e.bytes)
			break
		}
	}
	q.pending--
	q.pendingEvents -= int64(e.count)
	moved := q.advanceAckedLocked(false)
	q.notifyAckLocked()
	q.gaugesLocked()
	return moved
}

// advanceAckedLocked moves the acked position over the acked chunks at the
// head of inflight; if it moved (or moved is already true), fully acked
// segments are deleted and the position is persisted. It reports whether
// the position moved.
func (q *Queue) advanceAckedLocked(moved bool) bool {
	for q.head < len(q.inflight) && q.inflight[q.head].acked {
		q.ackPos = q.inflight[q.head].next
		q.head++
		moved = true
	}
	q.rdIdx = max(q.rdIdx, q.head)
	q.compactLocked()
	if moved {
		q.collectLocked()
		q.persistAckLocked()
	}
	return moved
}

// compactLocked reclaims the popped front of inflight without allocating.
func (q *Queue) compactLocked() {
	switch {
	case q.head == len(q.inflight):
		q.inflight = q.inflight[:0]
		q.head, q.rdIdx = 0, 0
	case q.head >= 1024 && 2*q.head >= len(q.inflight):
		n := copy(q.inflight, q.inflight[q.head:])
		q.inflight = q.inflight[:n]
		q.rdIdx -= q.head
		q.head = 0
	}
}

// Rewind moves the read cursor back to the first unacked chunk: Next
// returns again, in order, every chunk it returned that is not acked yet,
// then continues with new ones. Acks for the earlier deliveries still
// count.
func (q *Queue) Rewind() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.rdIdx = q.head
	q.cursorGen++
}

// WaitEmpty returns nil once every appended (or recovered) chunk is acked
// or dropped, ctx's error if ctx ends first, and ErrClosed if the queue is
// closed while chunks are pending.
func (q *Queue) WaitEmpty(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.pending > 0 {
		if q.closed {
			return ErrClosed
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
	return nil
}

// Pause makes Next hand out no chunk (it waits, as on an empty queue)
// until Resume. Appends, acks and settles go on. A config reload pauses an
// output's queue before it stops the output, so that once the chunks in
// flight are settled none is taken that the stop would cut off.
func (q *Queue) Pause() {
	q.mu.Lock()
	q.paused = true
	q.mu.Unlock()
}

// Resume ends a Pause.
func (q *Queue) Resume() {
	q.mu.Lock()
	q.paused = false
	q.notifyDataLocked()
	q.mu.Unlock()
}

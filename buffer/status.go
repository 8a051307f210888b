package buffer

import (
	"os"
	"time"

	"github.com/sluice-agent/sluice/internal/wire"
)

// QueueStatus is a snapshot of a queue for the agent's /status and health
// endpoints. The JSON field names are part of the documented /status shape
// (docs/operations.md).
type QueueStatus struct {
	// Open is false once Close started or after a sticky write error:
	// the queue no longer takes appends.
	Open bool `json:"open"`
	// Error is the sticky write-side error (a failed fsync), if any.
	Error string `json:"error,omitempty"`

	Bytes          int64  `json:"bytes"`     // segment files on disk
	MaxBytes       int64  `json:"max_bytes"` // the cap
	Overflow       string `json:"overflow"`  // "drop_oldest" or "block"
	Segments       int    `json:"segments"`
	PendingChunks  int64  `json:"pending_chunks"`   // not yet acked, dropped or lost
	PendingEvents  int64  `json:"pending_events"`   // their events
	InFlightChunks int    `json:"in_flight_chunks"` // read by the output, not settled

	// OldestEventTime is the event time of the first event of the oldest
	// chunk not acked (nil when nothing is pending, or when that chunk
	// cannot be read); OldestAgeSeconds is now minus it (0 when nil). The
	// time is the event's own (the log line's, or the Forward client's):
	// it survives restarts, and a client with a skewed clock skews it.
	OldestEventTime  *time.Time `json:"oldest_event_time,omitempty"`
	OldestAgeSeconds float64    `json:"oldest_age_seconds"`

	DroppedEvents   int64 `json:"dropped_events"`   // by drop_oldest since Open
	DiscardedEvents int64 `json:"discarded_events"` // given up on by the output since Open
}

// Status returns a snapshot of the queue. Safe for concurrent use, also
// after Close. It holds q.mu only to copy the numbers and the position of
// the oldest pending chunk; that chunk is then read with q.mu released,
// through a descriptor of its own, so a status request never delays an
// append. Segment files are append-only and a frame below a segment's end
// is complete, so the read sees a whole frame; if the segment was deleted
// meanwhile (the chunk was acked), the age is left out.
func (q *Queue) Status() QueueStatus {
	q.mu.Lock()
	st := QueueStatus{
		Open:            !q.closed && q.err == nil,
		Bytes:           q.total,
		MaxBytes:        q.opts.MaxBytes,
		Overflow:        q.opts.Overflow.String(),
		Segments:        len(q.segs),
		PendingChunks:   q.pending,
		PendingEvents:   q.pendingEvents,
		DroppedEvents:   q.stats.DroppedEvents,
		DiscardedEvents: q.stats.DiscardedEvents,
	}
	if q.err != nil {
		st.Error = q.err.Error()
	}
	for _, e := range q.inflight[q.head:] {
		if !e.acked {
			st.InFlightChunks++
		}
	}
	id, limit, ok := q.oldestLocked()
	path := q.segPath(id.Segment)
	q.mu.Unlock()
	if ok {
		if t, ok := firstEventTime(path, id, limit); ok {
			st.OldestEventTime = &t
			st.OldestAgeSeconds = max(time.Since(t).Seconds(), 0)
		}
	}
	return st
}

// oldestLocked returns the position of the oldest chunk not acked and the
// end of its segment's valid data: the first frame at or after the acked
// position, in the first segment that still holds pending chunks.
func (q *Queue) oldestLocked() (ID, int64, bool) {
	if q.pending == 0 {
		return ID{}, 0, false
	}
	for _, s := range q.segs {
		if s.seq < q.ackPos.Segment || s.chunks == 0 {
			continue
		}
		off := int64(0)
		if s.seq == q.ackPos.Segment {
			off = q.ackPos.Offset
		}
		for {
			to, ok := s.skipAt(off)
			if !ok {
				break
			}
			off = to
		}
		if off < s.end {
			return ID{Segment: s.seq, Offset: off}, s.end, true
		}
	}
	return ID{}, 0, false
}

// firstEventTime reads and verifies the frame at id in the segment file
// path and returns the time of its first entry.
func firstEventTime(path string, id ID, limit int64) (time.Time, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	var hdr [frameHeaderLen]byte
	payload, _, err := readFrame(f, id, limit, hdr[:])
	if err != nil {
		return time.Time{}, false
	}
	_, _, entries := decodePayload(payload)
	ns, _, _, _, err := wire.NextEntry(entries)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Err returns why the queue no longer takes appends: its sticky write
// error, or ErrClosed once Close started; nil while it is open. Cheaper
// than Status (no read), for health checks.
func (q *Queue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.err != nil:
		return q.err
	case q.closed:
		return ErrClosed
	}
	return nil
}

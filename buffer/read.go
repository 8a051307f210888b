package buffer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-agent/sluice/internal/wire"
)

// Read-only access for operator tools (`agent buffer`, `agent tap`): these
// functions never create, write, truncate, rename or lock-and-keep a file
// of the queue. Reading a queue an open Queue (a running agent) holds is
// safe for the Queue, but what is read may change under the reader; tools
// check Locked first.

// ErrLocked says the queue is held by an open Queue (a running agent).
var ErrLocked = errors.New("in use by a running agent (the queue is locked)")

// Locked reports whether an open Queue holds dir. It takes a shared flock
// on dir's ack file without blocking and releases it at once, so it never
// keeps an agent from opening the queue. A queue without an ack file (never
// opened, or not a queue) is not locked.
func Locked(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, ackFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return true, nil
		}
		return false, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false, nil
}

// Summary describes the chunks a queue directory holds, as an Open would
// find them (nothing is changed).
type Summary struct {
	Segments    int   // segment files, acked ones included
	Bytes       int64 // their size
	BadSegments int   // files quarantined as .seg.bad

	// Ack is the persisted acknowledged position; AckValid is false when
	// the ack file is missing or damaged (an Open replays everything).
	Ack      ID
	AckValid bool

	// Chunks, Events and EntryBytes are the pending chunks: from the ack
	// position on, damaged regions excluded.
	Chunks, Events, EntryBytes int64
	// Oldest and Newest are the smallest and largest event times among
	// the pending events (zero when there are none).
	Oldest, Newest time.Time
	// Corrupt counts damaged regions an Open would skip or truncate.
	Corrupt int
}

// Scan reads the queue in dir without changing it and calls fn, if not
// nil, for each pending chunk in order (fn owns the chunk's bytes). An
// error from fn stops the scan and is returned. It reads one segment at a
// time into memory, as Open does. A missing dir is an error wrapping
// fs.ErrNotExist.
func Scan(dir string, fn func(Chunk) error) (Summary, error) {
	var sum Summary
	if _, err := os.Stat(dir); err != nil {
		return sum, err
	}
	pos, ok, err := readAckPos(dir)
	if err != nil {
		return sum, err
	}
	sum.Ack, sum.AckValid = pos, ok
	seqs, _, err := listSegments(dir)
	if err != nil {
		return sum, err
	}
	sum.BadSegments, _ = countBad(dir)
	if !ok && len(seqs) > 0 {
		pos = ID{Segment: seqs[0]}
	}
	var buf []byte
	for _, seq := range seqs {
		path := filepath.Join(dir, fmt.Sprintf("%020d.seg", seq))
		start := int64(0)
		if seq == pos.Segment {
			start = pos.Offset
		}
		if seq < pos.Segment {
			start = -1 // acked: size only
		}
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile (acked by a running queue)
		}
		if err != nil {
			return sum, err
		}
		sum.Segments++
		sum.Bytes += fi.Size()
		if start < 0 {
			continue
		}
		data, _, err := readSegment(path, start, &buf)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			sum.Corrupt++ // Open would quarantine it
			continue
		}
		if err := scanChunks(seq, data, start, &sum, fn); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// scanChunks walks the frames of data (a segment's bytes from base on) as
// scan does, adding each valid chunk to sum and passing it to fn.
func scanChunks(seq uint64, data []byte, base int64, sum *Summary, fn func(Chunk) error) error {
	for off := 0; off < len(data); {
		fi, err := checkFrame(data[off:])
		if err != nil {
			sum.Corrupt++
			next := resync(data, off+1)
			if next < 0 {
				return nil
			}
			off = next
			continue
		}
		p := data[off+frameHeaderLen : off+int(fi.size)]
		count, tag, entries := decodePayload(p)
		sum.Chunks++
		sum.Events += int64(count)
		sum.EntryBytes += int64(len(entries))
		eventTimes(entries, sum)
		if fn != nil {
			b := make([]byte, len(tag)+len(entries))
			copy(b, tag)
			copy(b[len(tag):], entries)
			c := Chunk{ID: ID{Segment: seq, Offset: base + int64(off)}, Tag: b[:len(tag):len(tag)], Count: count, Entries: b[len(tag):]}
			if err := fn(c); err != nil {
				return err
			}
		}
		off += int(fi.size)
	}
	return nil
}

// eventTimes widens sum's oldest and newest times with the entries' times.
func eventTimes(entries []byte, sum *Summary) {
	for len(entries) > 0 {
		ns, _, _, n, err := wire.NextEntry(entries)
		if err != nil {
			return
		}
		entries = entries[n:]
		t := time.Unix(0, ns)
		if sum.Oldest.IsZero() || t.Before(sum.Oldest) {
			sum.Oldest = t
		}
		if sum.Newest.IsZero() || t.After(sum.Newest) {
			sum.Newest = t
		}
	}
}

// readAckPos reads dir's ack file without creating or locking it.
func readAckPos(dir string) (ID, bool, error) {
	f, err := os.Open(filepath.Join(dir, ackFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return ID{}, false, nil
	}
	if err != nil {
		return ID{}, false, err
	}
	defer f.Close()
	a := &ackFile{f: f}
	st, err := a.read()
	if err != nil {
		return ID{}, false, err
	}
	return st.pos, st.ok, nil
}

func countBad(dir string) (int, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.seg.bad"))
	return len(m), err
}

// Follow calls fn for each chunk appended to the queue in dir after Follow
// started, in order, until ctx is done (it then returns nil) or fn returns
// an error. It polls every poll, reading segment files through descriptors
// of its own and never writing: it has no effect on the Queue that
// appends, its reader or its acks. A segment deleted before Follow read it
// (acked or dropped quickly) is skipped; Follow is for sampling, not for
// delivery.
func Follow(ctx context.Context, dir string, poll time.Duration, fn func(Chunk) error) error {
	seqs, _, err := listSegments(dir)
	if err != nil {
		return err
	}
	fl := follower{dir: dir}
	defer fl.close()
	if len(seqs) > 0 {
		fl.open(seqs[len(seqs)-1])
		if fl.f != nil {
			if fi, err := fl.f.Stat(); err == nil {
				fl.pos = fi.Size() // only what comes next
			}
		}
	}
	last := false // a later segment exists: this is the final pass over cur
	for {
		n, err := fl.readNew(fn)
		if err != nil {
			return err
		}
		if n > 0 {
			last = false
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		next, ok, err := nextSegment(dir, fl.cur)
		if err != nil {
			return err
		}
		switch {
		case ok && !last && fl.f != nil:
			// The current segment is finished (a queue rotates after its
			// last write to it): read it once more, then move on.
			last = true
			continue
		case ok:
			fl.open(next)
			last = false
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// follower is Follow's position: segment cur, offset pos in it.
type follower struct {
	dir    string
	cur    uint64
	pos    int64
	f      *os.File // nil when cur could not be opened (deleted)
	synced bool     // pos is known to be a frame boundary
	hdr    [frameHeaderLen]byte
}

func (fl *follower) open(seq uint64) {
	fl.close()
	fl.cur, fl.pos, fl.synced = seq, 0, true
	if f, err := os.Open(segPathIn(fl.dir, seq)); err == nil {
		fl.f = f
	}
}

func (fl *follower) close() {
	if fl.f != nil {
		fl.f.Close()
		fl.f = nil
	}
}

// readNew passes every complete frame past pos to fn and returns how many
// there were. A frame still being written is left for the next call.
func (fl *follower) readNew(fn func(Chunk) error) (int, error) {
	if fl.f == nil {
		return 0, nil
	}
	fi, err := fl.f.Stat()
	if err != nil {
		return 0, err
	}
	size, n := fi.Size(), 0
	for fl.pos+minFrameLen <= size {
		p, fsize, err := readFrame(fl.f, ID{Segment: fl.cur, Offset: fl.pos}, size, fl.hdr[:])
		var ce *CorruptionError
		if errors.As(err, &ce) {
			if errors.Is(ce.Err, errTorn) && (fl.synced || [4]byte(fl.hdr[:4]) == frameMagic) {
				break // being written: read it at the next call
			}
			// Damage, or Follow started inside a frame being written.
			to := resyncFile(fl.f, fl.pos+1, size)
			if to < 0 {
				break
			}
			fl.pos, fl.synced = to, true
			continue
		}
		if err != nil {
			return n, err
		}
		fl.synced = true
		count, tag, entries := decodePayload(p)
		c := Chunk{ID: ID{Segment: fl.cur, Offset: fl.pos}, Tag: tag, Count: count, Entries: entries}
		fl.pos += fsize
		n++
		if err := fn(c); err != nil {
			return n, err
		}
	}
	return n, nil
}

// nextSegment returns the lowest segment sequence above cur.
func nextSegment(dir string, cur uint64) (uint64, bool, error) {
	seqs, _, err := listSegments(dir)
	if err != nil {
		return 0, false, err
	}
	for _, s := range seqs {
		if s > cur {
			return s, true, nil
		}
	}
	return 0, false, nil
}

func segPathIn(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", seq))
}

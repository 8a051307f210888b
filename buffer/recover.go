package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// recover is Open's work on a fresh Queue; no other goroutine sees q yet.
func (q *Queue) recover() error {
	dirf, err := os.Open(q.dir)
	if err != nil {
		return fmt.Errorf("buffer: open dir: %w", err)
	}
	q.dirf = dirf
	af, err := os.OpenFile(filepath.Join(q.dir, ackFileName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("buffer: open ack file: %w", err)
	}
	q.ack = &ackFile{f: af}
	if err := unix.Flock(int(af.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("buffer: %s is in use by another queue", q.dir)
		}
		return fmt.Errorf("buffer: lock ack file: %w", err)
	}
	st, err := q.ack.read()
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	seqs, maxSeq, err := listSegments(q.dir)
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	pos := st.pos
	switch {
	case st.ok && (st.invalid[0] || st.invalid[1]):
		q.log.Warn("buffer: one ack file slot is damaged; using the other", "ack", pos.String())
	case !st.ok && len(seqs) > 0:
		msg := "buffer: ack file missing; replaying every segment (duplicates possible)"
		if !st.empty {
			msg = "buffer: ack file damaged; replaying every segment (duplicates possible)"
		}
		q.log.Warn(msg, "segments", len(seqs))
	}
	if !st.ok {
		pos = ID{}
		if len(seqs) > 0 {
			pos = ID{Segment: seqs[0]}
		}
	}
	maxSeq = max(maxSeq, pos.Segment)

	var buf []byte
	for i, seq := range seqs {
		path := q.segPath(seq)
		if seq < pos.Segment {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("buffer: remove acked segment %d: %w", seq, err)
			}
			q.dirDirty = true
			continue
		}
		start := int64(0)
		if seq == pos.Segment {
			start = pos.Offset
		}
		data, size, err := readSegment(path, start, &buf)
		if err != nil {
			if rerr := os.Rename(path, path+".bad"); rerr != nil {
				return fmt.Errorf("buffer: quarantine segment %d: %w", seq, rerr)
			}
			q.dirDirty = true
			q.stats.BadSegments++
			q.m.badSegments.Inc()
			q.log.Warn("buffer: unreadable segment renamed to .bad; its chunks are lost", "segment", seq, "err", err)
			continue
		}
		last := i == len(seqs)-1
		r := scan(seq, data, start)
		for _, ce := range r.corrupt {
			q.stats.CorruptChunks++
			q.m.corrupt.Inc()
			switch {
			case ce.Offset != r.tail:
				q.log.Warn("buffer: skipped damaged frame", "segment", seq, "offset", ce.Offset, "err", ce)
			case last:
				q.log.Warn("buffer: truncating damaged tail of the last segment", "segment", seq, "offset", ce.Offset, "bytes", size-ce.Offset, "err", ce)
			default:
				q.log.Warn("buffer: skipped damaged tail of a segment", "segment", seq, "offset", ce.Offset, "bytes", size-ce.Offset, "err", ce)
			}
		}
		if r.tail >= 0 && last {
			if err := os.Truncate(path, r.tail); err != nil {
				return fmt.Errorf("buffer: truncate segment %d: %w", seq, err)
			}
			q.stats.TruncatedBytes += size - r.tail
			q.m.truncatedBytes.AddInt64(size - r.tail)
			size = r.tail
		}
		if r.chunks == 0 {
			if len(r.corrupt) > 0 && !last && r.end == start {
				// Nothing valid at all: keep the evidence.
				if err := os.Rename(path, path+".bad"); err != nil {
					return fmt.Errorf("buffer: quarantine segment %d: %w", seq, err)
				}
				q.stats.BadSegments++
				q.m.badSegments.Inc()
				q.log.Warn("buffer: segment without a valid frame renamed to .bad", "segment", seq)
			} else if err := os.Remove(path); err != nil {
				return fmt.Errorf("buffer: remove empty segment %d: %w", seq, err)
			}
			q.dirDirty = true
			continue
		}
		// A kill -9 leaves what the last run wrote in the page cache only;
		// make it durable before anything (an input's offsets, resumed
		// from its journal) is committed past it.
		if err := syncPath(path); err != nil {
			return fmt.Errorf("buffer: fsync recovered segment %d: %w", seq, err)
		}
		q.segs = append(q.segs, &segment{
			seq: seq, size: size, end: r.end, skips: r.skips,
			chunks: r.chunks, events: r.events, bytes: r.entryBytes,
		})
		q.total += size
		q.pending += r.chunks
		q.pendingEvents += r.events
	}

	next := max(maxSeq+1, pos.Segment+1)
	switch {
	case len(q.segs) == 0:
		pos = ID{Segment: next}
	case q.segs[0].seq != pos.Segment:
		pos = ID{Segment: q.segs[0].seq}
	}
	f, err := createSegment(q.segPath(next))
	if err != nil {
		return fmt.Errorf("buffer: create segment %d: %w", next, err)
	}
	q.wf = f
	q.segs = append(q.segs, &segment{seq: next})
	q.ackPos, q.readPos = pos, pos
	if err := q.ack.write(pos); err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	if err := syncFile(q.ack.f); err != nil {
		return fmt.Errorf("buffer: fsync ack file: %w", err)
	}
	if err := syncFile(q.dirf); err != nil {
		return fmt.Errorf("buffer: fsync dir: %w", err)
	}
	q.dirDirty = false
	q.gaugesLocked()
	if q.pending > 0 {
		q.log.Info("buffer: recovered pending chunks", "chunks", q.pending, "events", q.pendingEvents, "bytes", q.total, "from", pos.String())
	}
	return nil
}

// listSegments returns the sequences of the segment files in dir in
// ascending order, and the highest sequence seen in any segment or .bad
// file name.
func listSegments(dir string) ([]uint64, uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("read dir: %w", err)
	}
	var seqs []uint64
	var maxSeq uint64
	for _, e := range ents {
		name := e.Name()
		bad := strings.HasSuffix(name, ".seg.bad")
		if bad {
			name = strings.TrimSuffix(name, ".bad")
		}
		num, ok := strings.CutSuffix(name, ".seg")
		if !ok || len(num) != 20 {
			continue
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		maxSeq = max(maxSeq, seq)
		if !bad {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, maxSeq, nil
}

// readSegment reads a segment file from offset start on into *buf (grown
// as needed) and returns the data and the file size.
func readSegment(path string, start int64, buf *[]byte) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	size := fi.Size()
	if size > MaxSegmentBytes {
		return nil, 0, fmt.Errorf("file of %d bytes is larger than any segment", size)
	}
	if start >= size {
		return nil, size, nil
	}
	n := int(size - start)
	*buf = slices.Grow((*buf)[:0], n)[:n]
	if _, err := f.ReadAt(*buf, start); err != nil {
		return nil, 0, err
	}
	return *buf, size, nil
}

// syncPath fsyncs the file at path (through syncFile, like every fsync of
// the queue).
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = syncFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func createSegment(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
}

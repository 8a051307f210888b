package tail

import (
	"bytes"
	"context"
	"io"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// round gives one turn to every dirty source, in round-robin order,
// starting one further each round. It stops early when a flush fails or a
// scan is due. It reports whether a source it served is still dirty: it
// consumed data (there may be more), or finished a file (the next one
// waits), or its flush failed.
func (t *Tail) round(ctx context.Context) (more bool) {
	n := len(t.order)
	for k := 0; k < n && ctx.Err() == nil && !t.stalled && !t.rescan; k++ {
		s := t.order[(t.rr+k)%n]
		if !s.dirty || (s.held && t.held(s)) {
			continue // a held source stays dirty
		}
		f := s.active()
		if f == nil {
			s.dirty, s.wrote = false, false
			continue
		}
		progressed, err := t.turn(ctx, f)
		if err != nil {
			t.flushFailed(err) // stops the round
			more = true        // still dirty: read on once a flush succeeds
			continue
		}
		if progressed || f.f == nil {
			more = true
			continue
		}
		// At the end of the active file. A write event that brought
		// nothing may have been a truncation: let a scan look.
		if s.wrote && f.live && t.shrunk(f) {
			t.scanSoon(s.key)
		}
		s.dirty, s.wrote = false, false
	}
	t.rr++
	return more
}

// held asks s's Holder whether its reads still wait; once released, it
// is not asked again. A wait makes the reader wake within idleSleep. At
// its release the source is filtered again (SourceFilter): what the hold
// waited for may exclude it (CRI: the pod's exclusion annotation), and
// then it is dropped unread.
func (t *Tail) held(s *source) bool {
	now := time.Now()
	if now.Before(s.meta.(Holder).Hold(now)) {
		t.holding = true
		return true
	}
	s.held = false
	if !t.wants(s.key) {
		t.dropUnread(s)
		return true
	}
	return false
}

// dropUnread forgets a source that was never read (held, then excluded):
// its files are closed and their entries dropped, as those of an excluded
// source are at start. Its directory is left alone by the scans while the
// filter excludes it.
func (t *Tail) dropUnread(s *source) {
	for _, f := range s.files {
		t.closeFile(f)
	}
	t.mu.Lock()
	s.files = nil
	if t.sources[s.key] == s {
		delete(t.sources, s.key)
	}
	t.gen++
	t.mu.Unlock()
	s.dirty = false
	t.orderStale = true
	t.log.Debug("source excluded before it was read", "source", s.key)
}

// shrunk reports whether f's file is now shorter than what was read.
func (t *Tail) shrunk(f *file) bool {
	fi, err := f.f.Stat()
	return err == nil && fi.Size() < f.readOff
}

// turn reads up to turnBytes of f, hands the events to the writer and
// flushes. It reports whether it consumed anything; an error means the
// writer holds events that still need a successful Flush.
func (t *Tail) turn(ctx context.Context, f *file) (bool, error) {
	t.now = time.Now()
	t.seal(f) // before the read: what was written before the seal is read now
	start, lines := f.readOff, t.nLines
	eof := t.read(f)
	if !f.live && !f.sealed && (f.readOff > start || f.waitUntil.IsZero()) {
		t.startWait(f) // renamed or deleted, maybe still written to: wait
	}
	finishing := false
	if eof && !f.live && f.sealed {
		// Nothing more will be written. Emit what is pending so the file
		// can be closed.
		t.finish(f)
		finishing = true
	}
	consumed := f.readOff - start
	t.m.bytes.Add(int(consumed))
	t.m.lines.Add(int(t.nLines - lines))
	if consumed > 0 || finishing {
		t.touch(f)
	}
	if consumed > 0 {
		f.lastData = t.now
	}
	if eof && f.live {
		t.fdGen++ // it may be parked now: deferred opens may try again
	}
	if err := t.flush(ctx); err != nil {
		return consumed > 0, err
	}
	if finishing {
		t.closeFile(f)
	}
	return consumed > 0, nil
}

// read consumes f from its read offset, one buffer at a time, until
// turnBytes are used or the end of the file. It reports whether it reached
// the end.
func (t *Tail) read(f *file) (eof bool) {
	headChecked := false
	for budget := turnBytes; budget > 0; {
		n, err := f.f.ReadAt(t.buf, f.readOff)
		if err != nil && err != io.EOF {
			if ok, k := t.warnRead.allow(t.now); ok {
				t.log.Warn("read failed", "path", f.path, "err", err, "suppressed", k)
			}
			return false
		}
		if n == 0 {
			return true
		}
		if f.live && !headChecked && f.readOff > 0 {
			// Read first, then check that the file still starts with its
			// fingerprint: if it does, what was read belongs to it.
			headChecked = true
			if !t.headMatches(f) {
				f.mod = time.Time{} // make the scan re-check the head
				t.scanSoon(f.src.key)
				return false
			}
		}
		short := n < len(t.buf)
		budget -= t.split(f, t.buf[:n], short)
		if short {
			return true
		}
	}
	return false
}

// headMatches reports whether the file behind f's fd still starts with its
// fingerprint (a copytruncate replaces the content behind the same inode).
func (t *Tail) headMatches(f *file) bool {
	head, err := readHead(f.f, &t.head)
	if err != nil {
		return true // a read error is handled by the read path
	}
	return f.fp.matches(head)
}

// split hands the physical lines in data (read at f.readOff) to the format
// and advances f.readOff past what it consumed, which it returns. A line
// with no "\n" in a full buffer is streamed to the format's LongLine; an
// incomplete last line is left for the next read, except at the end of a
// file that is no longer written to. short says data ends at the end of
// the file.
func (t *Tail) split(f *file, data []byte, short bool) int {
	pos := 0
	for pos < len(data) {
		if f.long != nil {
			pos += t.feedLong(f, data[pos:])
			continue
		}
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			if pos == 0 && !short {
				// No newline in a full buffer: stream the line to the
				// format, never holding all of it.
				f.long, f.longStart = t.format.Long(t.maxLine), f.readOff
				continue
			}
			if short && !f.live && f.sealed {
				// The last line of a finished file lacks its "\n".
				t.physical(f, data[pos:], f.readOff, f.readOff+int64(len(data)-pos))
				f.readOff += int64(len(data) - pos)
				pos = len(data)
			}
			break
		}
		t.physical(f, data[pos:pos+i], f.readOff, f.readOff+int64(i+1))
		f.readOff += int64(i + 1)
		pos += i + 1
	}
	return pos
}

// feedLong writes p up to the first "\n" to f's long line, finishing the
// line at the "\n". It returns the bytes consumed.
func (t *Tail) feedLong(f *file, p []byte) int {
	k := bytes.IndexByte(p, '\n')
	if k < 0 {
		f.long.Write(p)
		f.readOff += int64(len(p))
		return len(p)
	}
	f.long.Write(p[:k])
	f.readOff += int64(k + 1)
	t.finishLong(f)
	return k + 1
}

// physical handles one physical line b (without "\n") that started at file
// offset start and ended before end.
func (t *Tail) physical(f *file, b []byte, start, end int64) {
	t.nLines++
	if record.SkipWS(b, 0) == len(b) {
		return // blank line: nothing to keep
	}
	if err := t.format.Parse(b, &t.line); err != nil {
		t.malformed(f, b, false, start, err)
		return
	}
	t.join(f, &t.line, start, end)
}

// finishLong completes the long line of f.
func (t *Tail) finishLong(f *file) {
	ll := f.long
	f.long = nil
	t.nLines++
	var err error
	if t.line, err = ll.End(); err != nil {
		t.malformed(f, t.line.Content, t.line.Truncated, f.longStart, err)
		return
	}
	t.join(f, &t.line, f.longStart, f.readOff)
}

// finish emits what is pending for a file that reached its end and will
// not grow: a long line without its "\n", then the partial groups, then
// the multiline groups (a trace cut by a rotation ends here: the rest,
// in the next file, is a group of its own).
func (t *Tail) finish(f *file) {
	if f.long != nil {
		t.finishLong(f)
	}
	for i := range f.partials {
		if f.partials[i].active {
			t.emitPartial(f, &f.partials[i])
		}
	}
	if len(f.joiners) > 0 {
		t.flushJoiners(f, true)
		t.dropJoiners(f)
	}
}

// DefaultRotateWait is Config.RotateWait's default: as Fluent Bit's
// rotate_wait, long enough for any runtime to reopen its log file.
const DefaultRotateWait = 5 * time.Second

// seal decides, before a read of f, whether f (no longer live) can still
// be written to. The runtime writes to the descriptor it holds until it
// reopens the log file; once the source's newer file has data, it has
// reopened, so everything written to f is there to read now. A rotated
// file whose successor stays empty is sealed RotateWait after its last
// data (or after it was found rotated). A deleted file is sealed at once:
// runtimes delete a log file only after its container stopped writing
// (or, for rotations, long after they reopened). A file no scan found
// that still has a name (renamed out of the listed names, or under a
// racing listing) was not deleted: it waits like a rotated one. Until it
// is sealed, a file's end is not its end: an incomplete last line or
// partial group is kept, and its successor is not read.
func (t *Tail) seal(f *file) {
	if f.live {
		t.stopWait(f)
		return
	}
	if f.sealed {
		return
	}
	waited := !f.waitUntil.IsZero() && !t.now.Before(f.waitUntil)
	var done bool
	if f.gone {
		// Its rank is unknown (maxRank): no other file tells it is done.
		done = !linked(f.f) || waited
	} else {
		done = t.newerHasData(f) || waited
	}
	if done {
		f.sealed = true
		t.stopWait(f)
	}
}

// newerHasData reports whether a newer file of f's source (a lower rank,
// still on disk) holds data: one the last scan of the source saw with
// data (it may not be open: at the open files cap it waits for f), or a
// tracked one that has data now.
func (t *Tail) newerHasData(f *file) bool {
	if f.src.dataRank < f.rank {
		return true
	}
	for _, g := range f.src.files {
		if g == f || g.gone || g.rank >= f.rank {
			continue
		}
		if g.f != nil {
			if fi, err := g.f.Stat(); err == nil && fi.Size() > 0 {
				return true
			}
		} else if g.size > 0 {
			return true
		}
	}
	return false
}

// startWait (re)starts f's wait for its seal: RotateWait from now.
func (t *Tail) startWait(f *file) {
	if f.waitUntil.IsZero() {
		t.rotWaiting++
	}
	f.waitUntil = t.now.Add(t.rotateWait)
}

// stopWait ends f's wait, if any.
func (t *Tail) stopWait(f *file) {
	if !f.waitUntil.IsZero() {
		t.rotWaiting--
		f.waitUntil = time.Time{}
	}
}

// dueRotations makes dirty every source whose active file waits for its
// seal and whose wait is over (a newer file's data makes its source dirty
// through that file's own write events or polling).
func (t *Tail) dueRotations(now time.Time) {
	for _, s := range t.order {
		if f := s.active(); f != nil && !f.live && !f.sealed && !f.waitUntil.IsZero() && !now.Before(f.waitUntil) {
			s.dirty = true
		}
	}
}

package tail

import (
	"context"
	"time"
)

// maxStreams bounds the partial groups of one file.
const maxStreams = 4

// partial is a group of partial lines of one stream being joined.
type partial struct {
	active    bool
	truncated bool
	stream    []byte
	buf       []byte // joined content, at most MaxLineBytes
	start     int64  // file offset of the group's first line
	end       int64  // file offset after its last line
	time      int64  // the first line's
	deadline  time.Time
}

// handoff is the offset that may be committed once what was read is
// flushed: never past the start of an incomplete group (partial or
// multiline) or physical line.
func (f *file) handoff() int64 {
	off := f.parsed()
	for i := range f.partials {
		if f.partials[i].active {
			off = min(off, f.partials[i].start)
		}
	}
	for i := range f.joiners {
		if p, ok := f.joiners[i].j.Pending(); ok {
			off = min(off, p)
		}
	}
	return off
}

// parsed is the offset before which every physical line was parsed and
// handed to join: the read offset, or the start of a long line.
func (f *file) parsed() int64 {
	if f.long != nil {
		return min(f.readOff, f.longStart)
	}
	return f.readOff
}

// partialFor returns the active group of stream, or nil.
func (f *file) partialFor(stream []byte) *partial {
	for i := range f.partials {
		if p := &f.partials[i]; p.active && string(p.stream) == string(stream) {
			return p
		}
	}
	return nil
}

// newPartial returns an inactive slot, or nil if maxStreams groups are
// already pending.
func (f *file) newPartial(stream []byte) *partial {
	for i := range f.partials {
		if p := &f.partials[i]; !p.active {
			p.stream = append(p.stream[:0], stream...)
			return p
		}
	}
	if len(f.partials) == maxStreams {
		return nil
	}
	f.partials = append(f.partials, partial{stream: append([]byte(nil), stream...)})
	return &f.partials[len(f.partials)-1]
}

func (f *file) pendingPartials() bool {
	for i := range f.partials {
		if f.partials[i].active {
			return true
		}
	}
	return false
}

// holding reports whether f holds lines not emitted yet: a partial or a
// multiline group.
func (f *file) holding() bool { return f.pendingPartials() || f.heldGroups() }

// join handles one parsed physical line that started at file offset start
// and ended before end: a partial line opens or extends its stream's
// group, a complete one ends it (or is emitted alone). The group takes the
// first line's time. A line an earlier run already handed off (f.skip) is
// dropped.
func (t *Tail) join(f *file, l *Line, start, end int64) {
	if start < f.skipHi && f.skipped(l.Stream, start) {
		return
	}
	if !l.HasTime {
		l.Time, l.HasTime = t.now.UnixNano(), true
	}
	p := f.partialFor(l.Stream)
	if p == nil {
		if !l.Partial {
			t.emit(f, l, start, end)
			return
		}
		if p = f.newPartial(l.Stream); p == nil {
			// Too many concurrent groups: emit the piece as a line.
			t.emit(f, l, start, end)
			return
		}
		p.active, p.truncated = true, false
		p.start, p.time = start, l.Time
		p.buf = p.buf[:0]
		t.activePartials++
	}
	if room := t.maxLine - len(p.buf); len(l.Content) > room {
		p.buf = append(p.buf, l.Content[:max(room, 0)]...)
		p.truncated = true
	} else {
		p.buf = append(p.buf, l.Content...)
	}
	if l.Truncated {
		p.truncated = true
	}
	p.end = end
	if l.Partial {
		p.deadline = t.now.Add(t.partialTO)
		return
	}
	t.m.joins.Inc()
	t.emitPartial(f, p)
}

// emitPartial emits and clears a partial group.
func (t *Tail) emitPartial(f *file, p *partial) {
	p.active = false
	t.activePartials--
	t.line = Line{Content: p.buf, Stream: p.stream, Time: p.time, HasTime: true, Truncated: p.truncated}
	t.emit(f, &t.line, p.start, p.end)
	if cap(p.buf) > keepBufCap {
		p.buf = nil
	}
}

// expirePartials emits the partial groups that saw no continuation for
// PartialFlushTimeout, lets the multiline joiners emit their idle groups
// (FlushTimeout), then flushes.
func (t *Tail) expirePartials(ctx context.Context) error {
	t.now = time.Now()
	for _, s := range t.order {
		for _, f := range s.files {
			for i := range f.partials {
				if p := &f.partials[i]; p.active && t.now.After(p.deadline) {
					t.touch(f)
					t.emitPartial(f, p)
				}
			}
			if len(f.joiners) > 0 {
				t.flushJoiners(f, false)
			}
		}
	}
	return t.flush(ctx)
}

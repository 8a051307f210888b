package tail

import (
	"slices"

	"github.com/sluice-agent/sluice/internal/multiline"
)

// Multiline joining (Config.Multiline): the lines a Format parsed, after
// partial joining, go through one multiline.Joiner per (file, stream),
// created on the stream's first line. Its events take the place of the
// lines: Source.Event builds each one's record, with the group's lines
// joined by "\n" as Content and the first line's time. The joiner's
// position tags are file offsets (a line's start, a partial group's
// start; the offset after it), so Pending bounds the file's committed
// offset like a pending partial group (handoff).

// joiner is the multiline joiner of one stream of a file.
type joiner struct {
	stream []byte
	j      *multiline.Joiner
	held   bool // Pending was true after the last call: counted in Tail.mlHeld
}

// streamOff is the bound of one stream in a saved entry's Streams: its
// lines from Offset up to Off were handed off, those from Off on were not.
type streamOff struct {
	Stream string `json:"stream"`
	Off    int64  `json:"offset"`
}

// streamBound is a streamOff being computed (commitState's scratch).
type streamBound struct {
	name []byte
	off  int64
}

// heldGroups reports whether a joiner of f holds lines.
func (f *file) heldGroups() bool {
	for i := range f.joiners {
		if f.joiners[i].held {
			return true
		}
	}
	return false
}

// joinerFor returns f's joiner of stream, created on first use; nil past
// maxStreams streams (the line then passes alone).
func (t *Tail) joinerFor(f *file, stream []byte) *joiner {
	for i := range f.joiners {
		if string(f.joiners[i].stream) == string(stream) {
			return &f.joiners[i]
		}
	}
	if len(f.joiners) == maxStreams {
		return nil
	}
	j, err := multiline.New(*t.ml)
	if err != nil {
		return nil // checked by New: not reached
	}
	f.joiners = append(f.joiners, joiner{stream: append([]byte{}, stream...), j: j})
	return &f.joiners[len(f.joiners)-1]
}

// addMultiline feeds one line (cut to MaxLineBytes) to its stream's
// joiner and emits what comes out.
func (t *Tail) addMultiline(f *file, l *Line, start, end int64) {
	jn := t.joinerFor(f, l.Stream)
	if jn == nil {
		t.w.Add(f.src.meta.Event(l))
		return
	}
	t.mlOut = jn.j.Add(t.mlOut[:0], l.Content, start, end, l.Time)
	t.deliver(f, jn)
	t.updateHeld(f, jn)
}

// deliver emits the joiner's events in t.mlOut.
func (t *Tail) deliver(f *file, jn *joiner) {
	for i := range t.mlOut {
		e := &t.mlOut[i]
		if e.Lines > 1 {
			t.m.mlGroups.Inc()
		}
		if e.Truncated {
			t.m.mlTruncated.Inc()
			if ok, n := t.warnTrunc.allow(t.now); ok {
				t.log.Warn("multiline group cut at max_bytes or max_lines; the rest of it dropped", "path", f.path,
					"offset", e.Start, "lines", e.Lines, "suppressed", n)
			}
		}
		t.mlLine = Line{Content: e.Line, Stream: jn.stream, Time: e.Time, HasTime: true, Truncated: e.Truncated}
		t.w.Add(f.src.meta.Event(&t.mlLine))
	}
}

// updateHeld keeps jn.held and Tail.mlHeld in step with jn's Pending;
// a change moves f's handoff offset.
func (t *Tail) updateHeld(f *file, jn *joiner) {
	if _, ok := jn.j.Pending(); ok != jn.held {
		jn.held = ok
		if ok {
			t.mlHeld++
		} else {
			t.mlHeld--
			t.touch(f)
		}
	}
}

// flushJoiners lets f's joiners emit their groups idle for FlushTimeout,
// or every group with force (the file is finished).
func (t *Tail) flushJoiners(f *file, force bool) {
	for i := range f.joiners {
		jn := &f.joiners[i]
		before := jn.j.Stats().Timeouts
		t.mlOut = jn.j.Flush(t.mlOut[:0], t.now, force)
		if len(t.mlOut) > 0 {
			t.touch(f)
			t.deliver(f, jn)
			if n := jn.j.Stats().Timeouts - before; n > 0 {
				t.m.mlTimeouts.Add(int(n))
			}
		}
		t.updateHeld(f, jn)
	}
}

// dropJoiners forgets f's joiners (their buffers with them).
func (t *Tail) dropJoiners(f *file) {
	for i := range f.joiners {
		if f.joiners[i].held {
			t.mlHeld--
		}
	}
	clear(f.joiners)
	f.joiners = nil
}

// skipped reports whether the line of stream starting at start was handed
// off by an earlier run (f.skip, f.skipHi).
func (f *file) skipped(stream []byte, start int64) bool {
	bound := f.skipHi
	for i := range f.skip {
		if f.skip[i].Stream == string(stream) {
			bound = f.skip[i].Off
			break
		}
	}
	return start < bound
}

// clearSkip forgets what an earlier run handed off past the committed
// offset (the file is read again from elsewhere).
func (f *file) clearSkip() {
	f.skipHi, f.skip = 0, nil
}

// commitState returns what a successful flush commits for f: the handoff
// offset and, when lines past it were handed off (a stream holds a
// group while others went on), Read, the offset before which every
// line of a stream not listed was handed off, and per held stream its
// bound. A restart reads from the offset and skips, per stream, what is
// before its bound: held lines are read again, none is emitted twice.
// Streams is a fresh slice whenever it changes (the checkpoint goroutine
// reads the one it copied); unchanged, the saved one is kept.
func (t *Tail) commitState(f *file) committed {
	c := committed{f: f, off: f.handoff()}
	hi := f.parsed()
	if f.skipHi > 0 && f.skipHi <= hi {
		f.clearSkip() // past what the earlier run handed off
	}
	c.read = max(hi, f.skipHi)
	if c.off >= c.read {
		return c
	}
	t.bounds = t.bounds[:0]
	for i := range f.partials {
		if p := &f.partials[i]; p.active {
			t.bounds = addBound(t.bounds, p.stream, p.start)
		}
	}
	for i := range f.joiners {
		if p, ok := f.joiners[i].j.Pending(); ok {
			t.bounds = addBound(t.bounds, f.joiners[i].stream, p)
		}
	}
	if f.skipHi > hi {
		// Still below what the earlier run handed off: a stream it held
		// and this run does not is handed off up to where this run read
		// (or further, if the earlier run went further in it).
		for _, s := range f.skip {
			if !slices.ContainsFunc(t.bounds, func(b streamBound) bool { return string(b.name) == s.Stream }) {
				t.bounds = append(t.bounds, streamBound{name: []byte(s.Stream), off: max(hi, s.Off)})
			}
		}
	}
	if old := f.saved.Streams; old != nil && sameBounds(*old, t.bounds) {
		c.streams = old
		return c
	}
	list := make([]streamOff, len(t.bounds))
	for i, b := range t.bounds {
		list[i] = streamOff{Stream: string(b.name), Off: b.off}
	}
	c.streams = &list
	return c
}

// addBound adds the bound off of stream name to bs (the lower one if it
// is already there).
func addBound(bs []streamBound, name []byte, off int64) []streamBound {
	for i := range bs {
		if string(bs[i].name) == string(name) {
			bs[i].off = min(bs[i].off, off)
			return bs
		}
	}
	return append(bs, streamBound{name: name, off: off})
}

func sameBounds(a []streamOff, b []streamBound) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Stream != string(b[i].name) || a[i].Off != b[i].off {
			return false
		}
	}
	return true
}

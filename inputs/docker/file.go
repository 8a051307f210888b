package docker

import (
	"os"
	"time"
)

// file is one tracked log file, identified by its fingerprint. It is owned
// by the reader goroutine, except saved, which is guarded by Input.mu.
type file struct {
	c    *container
	seq  uint64 // creation order: lower is older
	path string // last path seen (a hint)
	live bool   // path is the container's <id>-json.log
	gone bool   // not found at the last scan (deleted or renamed away)
	rank int    // age within the container: 0 live, N for .N, maxRank gone

	f        *os.File // nil when closed
	dev, ino uint64
	mod      time.Time // at the last stat
	size     int64     // last known size
	fp       fingerprint
	pubFP    fingerprint // fp as last published in saved

	// readOff is the end of the last consumed byte. commit is the
	// handed-off offset: every line before it was accepted by Writer.Flush.
	// It trails readOff while a partial group or a long line is pending.
	readOff int64
	commit  int64

	partials []partial
	long     longLine
	inLong   bool // long holds a line in progress

	lastSeen    time.Time
	lostCounted bool
	truncated   bool // the scan found the content behind the fd replaced
	matched     bool // scratch for the scan
	touched     bool // in Input.touched

	saved savedFile // guarded by Input.mu
}

// maxRank is the rank of a file that disappeared: the oldest of its
// container.
const maxRank = 1 << 30

// maxStreams bounds the partial groups of one file.
const maxStreams = 4

// partial is a partial line group of one stream being joined.
type partial struct {
	active    bool
	truncated bool
	stream    []byte
	buf       []byte // joined content, at most MaxLineBytes
	start     int64  // file offset of the group's first line
	time      int64
	deadline  time.Time
}

// handoff is the offset that may be committed once what was read is
// flushed: never past the start of an incomplete group or line.
func (f *file) handoff() int64 {
	off := f.readOff
	if f.inLong {
		off = min(off, f.long.start)
	}
	for i := range f.partials {
		if f.partials[i].active {
			off = min(off, f.partials[i].start)
		}
	}
	return off
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

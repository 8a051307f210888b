package tail

import (
	"os"
	"time"
)

// source is one source directory with its metadata hook and its tracked
// files. It is owned by the reader goroutine; Tail.sources and
// source.files are written under Tail.mu, which the checkpoint goroutine
// takes to read them.
type source struct {
	key  string // path below the root
	dir  string
	meta Source

	files []*file // tracked files, open and closed

	// dirty: the active file may have data (a write event, a scan that
	// saw it change, a turn that ran out of budget); served next round.
	dirty bool
	// wrote: a write event marked the source dirty; if the turn then finds
	// nothing to read, the file may have been truncated.
	wrote bool
	// watched: the directory has an inotify watch; otherwise the source
	// is polled every idleSleep.
	watched bool
	// held: the metadata hook is a Holder that has not released the
	// source yet; its reads wait (Tail.held).
	held bool
	// dataRank is the lowest rank of a log file the last scan of the
	// source found with data (maxRank if none): whether a rotated file's
	// successor has data (Tail.seal).
	dataRank int
}

// file is one tracked log file, identified by its fingerprint. It is owned
// by the reader goroutine, except saved, which is guarded by Tail.mu.
type file struct {
	src  *source
	seq  uint64 // creation order: lower is older
	path string // last path seen (a hint)
	live bool   // rank 0 at the last scan: may still be written to
	gone bool   // not found at the last scan (deleted or renamed away)
	rank int    // age within the source: 0 live, higher older, maxRank gone

	f        *os.File // nil when closed
	dev, ino uint64
	mod      time.Time // at the last stat
	size     int64     // last known size
	fp       fingerprint
	pubFP    fingerprint // fp as last published in saved

	// readOff is the end of the last consumed byte. commit is the
	// handed-off offset: every line before it was accepted by Writer.Flush.
	// It trails readOff while a partial group, a multiline group or a
	// long line is pending.
	readOff int64
	commit  int64

	partials  []partial
	joiners   []joiner // multiline, one per stream (multiline.go); nil without
	long      LongLine // the physical line being streamed, or nil
	longStart int64    // file offset of long's first byte

	// sealed: the file is no longer live and nothing more will be
	// written to it (see Tail.seal); its end is its end. waitUntil is when
	// an unsealed rotated file is sealed anyway (zero: not waiting).
	sealed    bool
	waitUntil time.Time

	lastSeen    time.Time
	lastData    time.Time // when data was last read (or the file opened): idle order
	lostCounted bool
	// parked: closed while idle at the open files cap; the scan reopens it
	// when it changed (fdcap.go).
	parked    bool
	evictSkip uint64 // parkIdle search that found it not parkable
	truncated bool   // the scan found the content behind the fd replaced
	// skipHi and skip say which lines past the committed offset an
	// earlier run already handed off (restored from the saved entry's
	// Read and Streams): a line of stream s starting before its bound
	// (skip's, else skipHi) is not emitted again. 0: nothing to skip.
	skipHi  int64
	skip    []streamOff
	matched bool // scratch for the scan
	touched bool // in Tail.touched

	saved savedFile // guarded by Tail.mu
}

// maxRank is the rank of a file that disappeared: the oldest of its
// source.
const maxRank = 1 << 30

// active returns the file of s to read now: the oldest open one, so that a
// rotated file is finished before its successor is read.
func (s *source) active() *file {
	var best *file
	for _, f := range s.files {
		if f.f == nil {
			continue
		}
		if best == nil || f.rank > best.rank || (f.rank == best.rank && f.seq < best.seq) {
			best = f
		}
	}
	return best
}

// tracks reports whether path is the last known path of an open file of s.
func (s *source) tracks(path string) bool {
	for _, f := range s.files {
		if f.f != nil && f.path == path {
			return true
		}
	}
	return false
}

// closeFile closes a finished file; its entry stays for fingerprint
// matching until it has been gone for forgetAfter.
func (t *Tail) closeFile(f *file) {
	if f.f == nil {
		return
	}
	if err := f.f.Close(); err != nil {
		t.log.Debug("close", "path", f.path, "err", err)
	}
	f.f = nil
	f.size = max(f.size, f.readOff)
	t.stopWait(f)
	t.releaseFD()
	t.log.Debug("file finished", "path", f.path, "offset", f.readOff)
}

func (t *Tail) closeAll() {
	for _, s := range t.sources {
		for _, f := range s.files {
			if f.f != nil {
				_ = f.f.Close()
				f.f = nil
			}
		}
	}
	if t.openFiles > 0 {
		fds.release(t, t.openFiles)
	}
	t.openFiles = 0
	t.m.files.Set(0)
	t.m.open.Set(0)
}

package tail

import (
	"time"

	"github.com/sluice-agent/sluice/pipeline"
)

// The hooks an input built on tail supplies. All of them are called on the
// reader goroutine only, so they need no locking and may keep scratch
// buffers.

// Format parses the physical lines (the bytes between two "\n") of an
// input's files.
type Format interface {
	// Parse parses one physical line, without its "\n", into l (all of
	// whose fields it sets). l's slices may point into b or into the
	// Format's scratch space; they are valid until the next call of Parse.
	// A line that does not parse is counted, logged and emitted raw (b,
	// with an empty stream and the read time).
	Parse(b []byte, l *Line) error
	// Long starts a physical line that does not fit in the read buffer.
	// The core writes the line to it in pieces as they are read, then
	// calls End; the LongLine must keep at most about max bytes of it.
	// Each call returns a fresh LongLine, dropped after End.
	Long(max int) LongLine
}

// LongLine parses one physical line longer than the read buffer, as a
// stream, never holding all of it.
type LongLine interface {
	// Write adds the next piece of the line. A piece never contains "\n".
	Write(piece []byte)
	// End finishes the line. On error the line is emitted raw: the Line's
	// Content then holds the first bytes of the physical line (at most
	// max) and Truncated says whether there were more.
	End() (Line, error)
}

// Line is one physical line as a Format parsed it.
type Line struct {
	// Content is the message, without the format's end-of-line marker
	// (json-file's trailing "\n" in "log").
	Content []byte
	// Stream is "stdout" or "stderr"; partial lines are joined per stream.
	Stream []byte
	// Time is the line's time in nanoseconds since the epoch, if HasTime;
	// otherwise the read time is used.
	Time    int64
	HasTime bool
	// Partial says the message continues in the next line of the same
	// stream (json-file: "log" lacks its "\n"; CRI: the tag P).
	Partial bool
	// Truncated says Content was cut to max by a LongLine.
	Truncated bool
}

// Layout says where an input's files are. Source directories sit Depth
// levels below the root; each holds the log files of one source (Docker:
// a container, <root>/<id>/; CRI: a container of a pod,
// <root>/<ns>_<pod>_<uid>/<container>/), which are read oldest first.
type Layout interface {
	// Depth is the number of directory levels between the root and a
	// source directory: 1 for Docker, 2 for CRI.
	Depth() int
	// Logs picks the log files among the entry names of one source
	// directory (in no particular order) and appends them to dst with
	// their rank. Everything else (metadata, compressed or temporary
	// rotations) is left out.
	Logs(dst []Log, names []string) []Log
	// Source returns the metadata hook of a newly found source. key is the
	// directory's path below the root ("<id>", "<pod dir>/<container>"),
	// dir its full path. key is also what the offsets file stores.
	Source(key, dir string) Source
}

// SourceFilter is optionally implemented by a Layout that reads only some
// of its sources (CRI: include and exclude namespaces). A source directory
// whose key Wants rejects is never watched, listed or read, and entries of
// the offsets file for such a source are dropped at start (so a source
// excluded, then included again, is read from its start). Wants is asked
// at every scan of the directory; it should be cheap (or cache).
type SourceFilter interface {
	Wants(key string) bool
}

// Log is one log file of a source directory.
type Log struct {
	Name string
	// Rank orders the files of a source: 0 is the live file (the one
	// written to), higher ranks are older and read first. A file whose
	// rank is not 0 is finished at its end (its pending partial line is
	// emitted and it is closed), so only the live file may be written to.
	Rank int
}

// Source is the metadata of one source: it builds the records of its lines.
type Source interface {
	// Refresh re-reads the source's metadata if it changed. It is called
	// at every scan of the source's directory; an error is logged.
	Refresh() error
	// Event builds the event of one line: record and tag. l.Content is
	// already cut to MaxLineBytes and l.Time is set (HasTime is true); a
	// malformed line has the raw line as Content and no Stream. The event
	// and its slices need only stay valid until the next call.
	Event(l *Line) *pipeline.Event
}

// Holder is optionally implemented by a Source whose lines should wait a
// while before they are read (CRI: the lines of a pod the API cache does
// not know yet wait, at most metadata_wait, for its metadata). Hold is
// asked before each turn of the source until it first returns a time not
// after now; from then on the source is read as any other. Only reading
// waits: the source's files are tracked, opened and checkpointed as usual,
// and the other sources are read meanwhile.
type Holder interface {
	Hold(now time.Time) (until time.Time)
}

package cri

import (
	"bytes"
	"errors"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
)

// Parse errors. They are sentinels so that the hot path never allocates,
// even for bad input.
var (
	errNoStream  = errors.New("no stream field after the timestamp")
	errBadTime   = errors.New("timestamp is not RFC 3339")
	errBadStream = errors.New(`stream is not "stdout" or "stderr"`)
)

// headMax bounds the header ("<time> <stream> <tags> ") a longLine keeps
// besides max bytes of content: a 35-byte RFC3339Nano time with an offset,
// the stream and tags with room for future ones.
const headMax = 256

// parser parses CRI log lines (formats.md §4.1):
//
//	<RFC3339Nano time> SP <stdout|stderr> SP <tags> SP <content>
//
// Its time cache is reused, so a parser is not safe for concurrent use
// (tail calls it on its reader goroutine only).
type parser struct {
	tp tail.TimeParser
}

// Parse implements tail.Format. The first tag (the tags are ":"-separated,
// the rest ignored for forward compatibility) is P for a partial line, F
// for a full one (or the last piece of one). A tags field whose first tag
// is neither is taken for a line of the older untagged format
// "<time> <stream> <content>" and kept whole as a full line's content
// (kubelet would drop its first word). A full line's trailing "\r" (a
// CRLF file) is dropped; a partial line's is content. Content is a view
// into b.
func (p *parser) Parse(b []byte, l *tail.Line) error { return p.parse(b, l, true) }

// parse is Parse; whole says b ends where the physical line ends (false
// for the kept head of a longer line: its last byte is not the line's).
func (p *parser) parse(b []byte, l *tail.Line, whole bool) error {
	*l = tail.Line{}
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return errNoStream
	}
	t, ok := p.tp.Parse(b[:sp])
	if !ok {
		return errBadTime
	}
	rest := b[sp+1:]
	if len(rest) < 6 || (string(rest[:6]) != "stdout" && string(rest[:6]) != "stderr") ||
		(len(rest) > 6 && rest[6] != ' ') {
		return errBadStream
	}
	l.Stream, l.Time, l.HasTime = rest[:6], t, true
	if len(rest) == 6 {
		return nil // "<time> <stream>": an empty untagged line
	}
	rest = rest[7:]
	tags, content := rest, rest[len(rest):]
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		tags, content = rest[:i], rest[i+1:]
	}
	if i := bytes.IndexByte(tags, ':'); i >= 0 {
		tags = tags[:i]
	}
	switch string(tags) {
	case "P":
		l.Partial = true
	case "F":
	default:
		content = rest // untagged (older CRI): all of it is the message
	}
	if whole && !l.Partial && len(content) > 0 && content[len(content)-1] == '\r' {
		content = content[:len(content)-1]
	}
	l.Content = content
	return nil
}

// Long implements tail.Format: a line longer than the read buffer keeps
// its header and the first max bytes of its content.
func (p *parser) Long(max int) tail.LongLine {
	return &longLine{p: p, max: max}
}

// longLine is one physical line longer than the read buffer, kept up to
// headMax+max bytes: CRI's fields all come before the content, so that is
// enough to parse it.
type longLine struct {
	p   *parser
	max int
	buf []byte
	n   int64 // bytes written in all
}

// Write implements tail.LongLine.
func (ll *longLine) Write(piece []byte) {
	if room := headMax + ll.max - len(ll.buf); room > 0 {
		ll.buf = append(ll.buf, piece[:min(room, len(piece))]...)
	}
	ll.n += int64(len(piece))
}

// End implements tail.LongLine. A line whose header does not parse is
// returned raw (its first max bytes) with the error.
func (ll *longLine) End() (tail.Line, error) {
	var l tail.Line
	dropped := ll.n > int64(len(ll.buf))
	if err := ll.p.parse(ll.buf, &l, !dropped); err != nil {
		raw := ll.buf[:min(len(ll.buf), ll.max)]
		return tail.Line{Content: raw, Truncated: ll.n > int64(len(raw))}, err
	}
	if len(l.Content) > ll.max {
		l.Content, dropped = l.Content[:ll.max], true
	}
	l.Truncated = dropped
	return l, nil
}

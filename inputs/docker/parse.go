package docker

import (
	"bytes"
	"errors"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/internal/record"
)

// Parse errors. They are sentinels so that the hot path never allocates,
// even for bad input.
var (
	errNotObject    = errors.New("line is not a JSON object")
	errSyntax       = errors.New("invalid JSON syntax")
	errUnterminated = record.ErrUnterminated
	errBadEscape    = record.ErrBadEscape
	errNoLog        = errors.New(`no string "log" field`)
	errBadStream    = errors.New(`"stream" is not a short string`)
	errBadTime      = errors.New(`"time" is not an RFC 3339 timestamp`)
	errTooDeep      = errors.New("JSON nested too deeply")
)

// maxStreamLen bounds the "stream" value; Docker writes "stdout" or "stderr".
const maxStreamLen = 64

// line is one parsed json-file line. log and stream point into the parser's
// scratch buffers or into the input line and are valid until the next parse.
type line struct {
	log     []byte // unescaped "log", with Docker's trailing "\n" if any
	stream  []byte
	time    int64 // ns since the epoch, valid if hasTime
	hasTime bool
}

// parser parses json-file lines. Its scratch buffers are reused, so a
// parser is not safe for concurrent use.
type parser struct {
	logBuf    []byte
	streamBuf []byte
	keyBuf    []byte

	// Cache of the last timestamp's "2006-01-02T15:04:05" part.
	timeKey  [19]byte
	timeBase int64
	timeOK   bool
}

// Parse implements tail.Format for json-file lines: a "log" ending in
// "\n" is a complete line (the "\n" is dropped), any other is a partial
// chunk.
func (p *parser) Parse(b []byte, l *tail.Line) error {
	if err := p.parseInto(b, l); err != nil {
		return err
	}
	complete := len(l.Content) > 0 && l.Content[len(l.Content)-1] == '\n'
	if complete {
		l.Content = l.Content[:len(l.Content)-1]
	}
	l.Partial = !complete
	return nil
}

// parse is parseInto returning a line, as the streaming parser does.
func (p *parser) parse(b []byte) (line, error) {
	var tl tail.Line
	err := p.parseInto(b, &tl)
	return line{log: tl.Content, stream: tl.Stream, time: tl.Time, hasTime: tl.HasTime}, err
}

// Long implements tail.Format: a line longer than the read buffer is
// parsed as a stream by a longLine.
func (p *parser) Long(max int) tail.LongLine {
	ll := &longLine{}
	ll.reset(max)
	return ll
}

// fill sets out from l: a "log" ending in "\n" is a complete line (the
// "\n" is dropped), any other is a partial chunk.
func (l *line) fill(out *tail.Line) {
	complete := len(l.log) > 0 && l.log[len(l.log)-1] == '\n'
	content := l.log
	if complete {
		content = content[:len(content)-1]
	}
	*out = tail.Line{Content: content, Stream: l.stream, Time: l.time, HasTime: l.hasTime, Partial: !complete}
}

// parseInto parses one line (without its "\n") into l, with the raw "log"
// value (its "\n" included) as Content:
//
//	{"log":"...","stream":"stdout","attrs":{...},"time":"2024-01-02T03:04:05.1Z"}
//
// Keys may come in any order, unknown keys (attrs) are skipped, whitespace
// between tokens is allowed. "log" must be present and a string; "stream"
// and "time", if present, must be strings.
func (p *parser) parseInto(b []byte, l *tail.Line) error {
	*l = tail.Line{}
	i := record.SkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i = record.SkipWS(b, i+1)
	if i >= len(b) {
		return errSyntax
	}
	sawLog := false
	if b[i] == '}' {
		return errNoLog
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errSyntax
		}
		// Key: raw bytes unless it contains an escape.
		ks := i + 1
		k := record.ScanSpecial(b, ks)
		if k >= len(b) {
			return errUnterminated
		}
		key := b[ks:k]
		if b[k] == '\\' {
			var err error
			p.keyBuf, i, err = record.AppendUnescaped(p.keyBuf[:0], b, ks)
			if err != nil {
				return err
			}
			key = p.keyBuf
		} else {
			i = k + 1
		}
		i = record.SkipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return errSyntax
		}
		i = record.SkipWS(b, i+1)
		if i >= len(b) {
			return errSyntax
		}
		switch string(key) {
		case "log":
			if b[i] != '"' {
				return errNoLog
			}
			var err error
			p.logBuf, i, err = record.AppendUnescaped(p.logBuf[:0], b, i+1)
			if err != nil {
				return err
			}
			l.Content = p.logBuf
			sawLog = true
		case "stream":
			if b[i] != '"' {
				return errBadStream
			}
			s, end, err := p.rawOrUnescaped(b, i+1)
			if err != nil {
				return err
			}
			if len(s) > maxStreamLen {
				return errBadStream
			}
			l.Stream, i = s, end
		case "time":
			if b[i] != '"' {
				return errBadTime
			}
			k := record.ScanSpecial(b, i+1)
			if k >= len(b) {
				return errUnterminated
			}
			if b[k] != '"' {
				return errBadTime
			}
			t, ok := p.parseTime(b[i+1 : k])
			if !ok {
				return errBadTime
			}
			l.Time, l.HasTime = t, true
			i = k + 1
		default:
			var err error
			if i, err = skipValue(b, i, 0); err != nil {
				return err
			}
		}
		i = record.SkipWS(b, i)
		if i >= len(b) {
			return errSyntax
		}
		if b[i] == ',' {
			i = record.SkipWS(b, i+1)
			continue
		}
		if b[i] != '}' {
			return errSyntax
		}
		if record.SkipWS(b, i+1) != len(b) {
			return errSyntax
		}
		break
	}
	if !sawLog {
		return errNoLog
	}
	return nil
}

// rawOrUnescaped returns the string starting after the quote at s[i:], as a
// view into s when it has no escapes, else unescaped into p.streamBuf.
func (p *parser) rawOrUnescaped(s []byte, i int) ([]byte, int, error) {
	k := record.ScanSpecial(s, i)
	if k >= len(s) {
		return nil, i, errUnterminated
	}
	if s[k] == '"' {
		return s[i:k], k + 1, nil
	}
	var err error
	p.streamBuf, i, err = record.AppendUnescaped(p.streamBuf[:0], s, i)
	return p.streamBuf, i, err
}

// maxDepth bounds nesting in skipped values, as in parsed payloads.
const maxDepth = record.MaxDepth

// skipValue returns the index just past the JSON value at s[i]. It checks
// structure (brackets, strings, escapes) but not the grammar of literals.
func skipValue(s []byte, i, depth int) (int, error) {
	if i >= len(s) {
		return i, errSyntax
	}
	switch c := s[i]; c {
	case '"':
		return skipString(s, i+1)
	case '{', '[':
		if depth >= maxDepth {
			return i, errTooDeep
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = record.SkipWS(s, i+1)
		if i < len(s) && s[i] == closing {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(s) || s[i] != '"' {
					return i, errSyntax
				}
				if i, err = skipString(s, i+1); err != nil {
					return i, err
				}
				i = record.SkipWS(s, i)
				if i >= len(s) || s[i] != ':' {
					return i, errSyntax
				}
				i = record.SkipWS(s, i+1)
			}
			if i, err = skipValue(s, i, depth+1); err != nil {
				return i, err
			}
			i = record.SkipWS(s, i)
			if i >= len(s) {
				return i, errSyntax
			}
			if s[i] == closing {
				return i + 1, nil
			}
			if s[i] != ',' {
				return i, errSyntax
			}
			i = record.SkipWS(s, i+1)
		}
	default:
		if !scalarStart(s[i]) {
			return i, errSyntax
		}
		for i < len(s) && scalarByte(s[i]) {
			i++
		}
		return i, nil
	}
}

// scalarStart reports whether c can start a number or a literal.
func scalarStart(c byte) bool {
	return c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n'
}

// scalarByte reports whether c can appear in a number or a literal.
func scalarByte(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		c == '-' || c == '+' || c == '.'
}

// skipString returns the index just past the closing quote of the string
// whose content starts at s[i].
func skipString(s []byte, i int) (int, error) {
	for {
		k := bytes.IndexByte(s[i:], '"')
		if k < 0 {
			return len(s), errUnterminated
		}
		// The quote is escaped if preceded by an odd number of backslashes.
		n := 0
		for j := i + k - 1; j >= i && s[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i + k + 1, nil
		}
		i += k + 1
	}
}

// parseTime is parseTimeUncached with the date and time of day of the
// last timestamp remembered: lines of one burst share them.
func (p *parser) parseTime(b []byte) (int64, bool) {
	if len(b) >= 20 && p.timeOK && string(b[:19]) == string(p.timeKey[:]) {
		return parseTimeRest(b[19:], p.timeBase)
	}
	base, ok := parseTimeBase(b)
	if !ok {
		return 0, false
	}
	t, ok := parseTimeRest(b[19:], base)
	if ok {
		copy(p.timeKey[:], b[:19])
		p.timeBase, p.timeOK = base, true
	}
	return t, ok
}

// parseTime parses an RFC 3339 timestamp with optional fraction (1 to 9
// digits, as Go's RFC3339Nano trims zeros) and a Z or ±hh:mm offset into
// nanoseconds since the epoch, without allocating.
func parseTime(b []byte) (int64, bool) {
	base, ok := parseTimeBase(b)
	if !ok {
		return 0, false
	}
	return parseTimeRest(b[19:], base)
}

// parseTimeBase parses "2006-01-02T15:04:05" (the first 19 bytes of b, of
// which there must be at least 20) into seconds since the epoch, as ns.
func parseTimeBase(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') ||
		b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	days := daysFromCivil(year, month, day)
	return (days*86400 + int64(hour*3600+minute*60+sec)) * 1e9, true
}

// parseTimeRest parses "[.999999999](Z|±07:00)" and adds it to base.
func parseTimeRest(b []byte, base int64) (int64, bool) {
	i := 0
	var nsec int64
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 9 {
				nsec = nsec*10 + int64(b[i]-'0')
			}
			i++
		}
		n := i - start
		if n == 0 || n > 9 {
			return 0, false
		}
		for ; n < 9; n++ {
			nsec *= 10
		}
	}
	if i >= len(b) {
		return 0, false
	}
	var offset int64
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, false
		}
		oh, ok1 := digits(b[i+1 : i+3])
		om, ok2 := digits(b[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600+om*60) * 1e9
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(b) {
		return 0, false
	}
	return base + nsec - offset, true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

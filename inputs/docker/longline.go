package docker

import (
	"unicode/utf8"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/internal/record"
)

// longLine parses one physical line that does not fit in the read buffer,
// piece by piece, as the pieces are read. It keeps at most max bytes of the
// unescaped "log" value and at most max bytes of the raw line (the fallback
// record if the line turns out malformed); everything past that is parsed
// (to find "stream" and "time" and the end of the line) but not stored.
//
// It accepts the same grammar as parser.parse, and implements
// tail.LongLine.
type longLine struct {
	max int

	raw     []byte // first max bytes of the raw line
	rawLen  int64
	log     []byte // first max bytes of the unescaped "log"
	logLen  int64  // full unescaped length
	logLast byte   // last unescaped byte of "log"
	sawLog  bool
	stream  []byte
	timeRaw []byte
	sawTime bool

	st     llState
	target llTarget // what the current string is decoded into
	key    []byte   // current key, at most 8 bytes kept
	keyLen int
	esc    [6]byte // escape sequence being collected, starting with '\\'
	escN   int
	high   rune // pending high surrogate
	depth  int  // nesting inside a skipped value
	inStr  bool // inside a string of a skipped nested value
	strEsc bool // after a backslash in a skipped string
	err    error
}

type llState uint8

const (
	llBegin      llState = iota // expect '{'
	llKeyOrEnd                  // after '{': '"' or '}'
	llKeyStart                  // after ',': '"'
	llString                    // inside a key or decoded string value
	llColon                     // expect ':'
	llValue                     // expect a value
	llSkipString                // inside a skipped top-level string
	llNested                    // inside a skipped object or array
	llScalar                    // inside a skipped literal or number
	llAfter                     // expect ',' or '}'
	llEnd                       // after the closing '}': whitespace only
	llBad                       // malformed; skip to the end of the line
)

type llTarget uint8

const (
	tKey llTarget = iota
	tLog
	tStream
	tTime
)

const keyKeep = 8

func (ll *longLine) reset(max int) {
	*ll = longLine{
		max: max,
		raw: ll.raw[:0], log: ll.log[:0], stream: ll.stream[:0],
		timeRaw: ll.timeRaw[:0], key: ll.key[:0],
	}
}

// Write implements tail.LongLine: it consumes the next piece of the line
// (never containing "\n").
func (ll *longLine) Write(piece []byte) {
	if room := ll.max - len(ll.raw); room > 0 {
		ll.raw = append(ll.raw, piece[:min(room, len(piece))]...)
	}
	ll.rawLen += int64(len(piece))
	for i := 0; i < len(piece); i++ {
		if ll.st == llBad {
			break
		}
		// Bulk copy of plain bytes of the log value.
		if ll.st == llString && ll.target == tLog && ll.escN == 0 && ll.high == 0 {
			j := i
			for j < len(piece) && piece[j] != '"' && piece[j] != '\\' {
				j++
			}
			if j > i {
				ll.appendLog(piece[i:j])
				i = j
				if i == len(piece) {
					break
				}
			}
		}
		ll.step(piece[i])
	}
}

// End implements tail.LongLine. A cut "log" lost its "\n", so whether the
// line is complete comes from the full value's last byte.
func (ll *longLine) End() (tail.Line, error) {
	l, ok := ll.result()
	if !ok {
		err := ll.err
		if err == nil {
			err = errSyntax
		}
		return tail.Line{Content: ll.raw, Truncated: ll.rawLen > int64(len(ll.raw))}, err
	}
	if ll.logTruncated() {
		return tail.Line{
			Content: l.log, Stream: l.stream, Time: l.time, HasTime: l.hasTime,
			Partial: ll.logLast != '\n', Truncated: true,
		}, nil
	}
	var out tail.Line
	l.fill(&out)
	return out, nil
}

// result finishes the line. It reports ok=false for a malformed line, whose
// raw bytes are in ll.raw.
func (ll *longLine) result() (l line, ok bool) {
	if ll.st != llEnd || !ll.sawLog {
		return l, false
	}
	l.log = ll.log
	l.stream = ll.stream
	if ll.sawTime {
		t, ok := parseTime(ll.timeRaw)
		if !ok {
			return l, false
		}
		l.time, l.hasTime = t, true
	}
	return l, true
}

// logTruncated reports whether the "log" value was longer than max.
func (ll *longLine) logTruncated() bool { return ll.logLen > int64(len(ll.log)) }

func (ll *longLine) fail(err error) {
	ll.st = llBad
	ll.err = err
}

// step advances the state machine by one byte.
func (ll *longLine) step(c byte) {
	switch ll.st {
	case llBegin:
		ll.expect(c, '{', llKeyOrEnd, errNotObject)
	case llKeyOrEnd, llKeyStart:
		ll.keyStart(c)
	case llString:
		ll.stringByte(c)
	case llColon:
		ll.expect(c, ':', llValue, errSyntax)
	case llValue:
		if !isWS(c) {
			ll.value(c)
		}
	case llSkipString:
		switch {
		case ll.strEsc:
			ll.strEsc = false
		case c == '\\':
			ll.strEsc = true
		case c == '"':
			ll.st = llAfter
		}
	case llNested:
		ll.nested(c)
	case llScalar, llAfter:
		ll.between(c)
	case llEnd:
		if !isWS(c) {
			ll.fail(errSyntax)
		}
	}
}

// expect moves to next on want, skips whitespace and fails on anything
// else.
func (ll *longLine) expect(c, want byte, next llState, err error) {
	switch {
	case c == want:
		ll.st = next
	case !isWS(c):
		ll.fail(err)
	}
}

// keyStart expects the quote that opens a key (or, right after '{', the
// '}' of an empty object).
func (ll *longLine) keyStart(c byte) {
	switch {
	case isWS(c):
	case c == '}' && ll.st == llKeyOrEnd:
		ll.st = llEnd
	case c != '"':
		ll.fail(errSyntax)
	default:
		ll.key = ll.key[:0]
		ll.keyLen = 0
		ll.target = tKey
		ll.st = llString
	}
}

// value handles the first byte of a value: the strings of "log", "stream"
// and "time" are decoded, anything else is skipped.
func (ll *longLine) value(c byte) {
	field := ll.keyLen == len(ll.key) // key fully kept
	switch k := string(ll.key); {
	case field && (k == "log" || k == "stream" || k == "time"):
		ll.field(c, k)
	case c == '"':
		ll.st, ll.strEsc = llSkipString, false
	case c == '{' || c == '[':
		ll.st, ll.depth, ll.inStr, ll.strEsc = llNested, 1, false, false
	case scalarStart(c):
		ll.st = llScalar
	default:
		ll.fail(errSyntax)
	}
}

// field starts decoding the string value of key k, which must be a string.
func (ll *longLine) field(c byte, k string) {
	switch k {
	case "log":
		if c != '"' {
			ll.fail(errNoLog)
			return
		}
		ll.log, ll.logLen, ll.sawLog = ll.log[:0], 0, true
		ll.target = tLog
	case "stream":
		if c != '"' {
			ll.fail(errBadStream)
			return
		}
		ll.stream = ll.stream[:0]
		ll.target = tStream
	default:
		if c != '"' {
			ll.fail(errBadTime)
			return
		}
		ll.timeRaw, ll.sawTime = ll.timeRaw[:0], true
		ll.target = tTime
	}
	ll.st = llString
}

// nested skips one byte inside a skipped object or array.
func (ll *longLine) nested(c byte) {
	switch {
	case ll.inStr && ll.strEsc:
		ll.strEsc = false
	case ll.inStr && c == '\\':
		ll.strEsc = true
	case ll.inStr && c == '"':
		ll.inStr = false
	case ll.inStr:
	case c == '"':
		ll.inStr = true
	case c == '{' || c == '[':
		ll.depth++
		if ll.depth > maxDepth {
			ll.fail(errTooDeep)
		}
	case c == '}' || c == ']':
		ll.depth--
		if ll.depth == 0 {
			ll.st = llAfter
		}
	}
}

// between handles a byte inside a skipped scalar or after a value: ','
// or '}' end the value.
func (ll *longLine) between(c byte) {
	switch {
	case ll.st == llScalar && scalarByte(c):
	case isWS(c):
		ll.st = llAfter
	case c == ',':
		ll.st = llKeyStart
	case c == '}':
		ll.st = llEnd
	default:
		ll.fail(errSyntax)
	}
}

// stringByte handles one byte inside a decoded string (key, log, stream,
// time), decoding escapes across piece boundaries.
func (ll *longLine) stringByte(c byte) {
	if ll.escN > 0 {
		ll.escapeByte(c)
		return
	}
	if c == '\\' {
		ll.esc[0] = c
		ll.escN = 1
		return
	}
	ll.flushHigh()
	if c != '"' {
		ll.emit(c)
		return
	}
	switch ll.target {
	case tKey:
		ll.st = llColon
	case tStream:
		if len(ll.stream) > maxStreamLen {
			ll.fail(errBadStream)
			return
		}
		ll.st = llAfter
	default:
		ll.st = llAfter
	}
}

// escapeByte collects one byte of an escape sequence and decodes the
// sequence once complete: \n and the like, or \uXXXX (surrogate pairs
// joined, lone surrogates as U+FFFD).
func (ll *longLine) escapeByte(c byte) {
	ll.esc[ll.escN] = c
	ll.escN++
	if ll.escN == 2 && c != 'u' {
		ll.escN = 0
		b, ok := record.UnescapeByte(c)
		if !ok {
			ll.fail(errBadEscape)
			return
		}
		ll.flushHigh()
		ll.emit(b)
		return
	}
	if ll.escN < 6 {
		return
	}
	ll.escN = 0
	r, ok := record.Hex4(ll.esc[2:6])
	if !ok {
		ll.fail(errBadEscape)
		return
	}
	if ll.high != 0 {
		h := ll.high
		ll.high = 0
		if r >= 0xDC00 && r < 0xE000 {
			ll.emitRune(0x10000 + (h-0xD800)<<10 + (r - 0xDC00))
			return
		}
		ll.emitRune(utf8.RuneError)
	}
	switch {
	case r >= 0xD800 && r < 0xDC00:
		ll.high = r
	case r >= 0xDC00 && r < 0xE000:
		ll.emitRune(utf8.RuneError)
	default:
		ll.emitRune(r)
	}
}

func (ll *longLine) flushHigh() {
	if ll.high != 0 {
		ll.high = 0
		ll.emitRune(utf8.RuneError)
	}
}

func (ll *longLine) emitRune(r rune) {
	var b [utf8.UTFMax]byte
	n := utf8.EncodeRune(b[:], r)
	for _, c := range b[:n] {
		ll.emit(c)
	}
}

func (ll *longLine) emit(c byte) {
	switch ll.target {
	case tKey:
		if len(ll.key) < keyKeep {
			ll.key = append(ll.key, c)
		}
		ll.keyLen++
	case tLog:
		ll.appendLog([]byte{c})
	case tStream:
		if len(ll.stream) <= maxStreamLen {
			ll.stream = append(ll.stream, c)
		}
	case tTime:
		if len(ll.timeRaw) < 64 {
			ll.timeRaw = append(ll.timeRaw, c)
		}
	}
}

func (ll *longLine) appendLog(b []byte) {
	if room := ll.max - len(ll.log); room > 0 {
		ll.log = append(ll.log, b[:min(room, len(b))]...)
	}
	ll.logLen += int64(len(b))
	ll.logLast = b[len(b)-1]
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

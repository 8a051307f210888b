package parse

import (
	"bytes"
	"time"
	"unicode/utf8"

	"github.com/sluice-agent/sluice/internal/record"
)

// logfmt parses key=value pairs separated by spaces or tabs: the output
// of Go's slog.TextHandler, logrus' TextFormatter, go-kit and others.
type logfmt struct {
	o        out
	convs    map[string]conv
	timeKeys [][]byte // the first member with one of these keys holds the time
	tf       timeFmt
	keep     bool
	kbuf     []byte // an unquoted key
	vbuf     []byte // an unquoted value
}

func newLogfmt(c Config, loc *time.Location, now func() time.Time) (*logfmt, error) {
	tf, err := newTimeFmt(c.TimeLayout, loc, now)
	if err != nil {
		return nil, err
	}
	convs, err := newConvs(c.Types, loc, now)
	if err != nil {
		return nil, err
	}
	p := &logfmt{convs: convs, tf: tf, keep: c.KeepTimeKey}
	if c.TimeKey != "" {
		p.timeKeys = [][]byte{[]byte(c.TimeKey)}
	} else {
		p.timeKeys = [][]byte{[]byte("time"), []byte("ts")}
	}
	return p, nil
}

func (p *logfmt) Pairs() []byte                   { return p.o.Pairs() }
func (p *logfmt) Len() int                        { return p.o.Len() }
func (p *logfmt) Value(key []byte) ([]byte, bool) { return p.o.Value(key) }
func (p *logfmt) Time() (int64, bool)             { return p.o.Time() }

func (p *logfmt) Parse(s []byte, skip *record.Keys) bool {
	p.o.reset(skip)
	var timeKey []byte // the key of the member that held the time, once met
	taken := false     // and that member was consumed as the event time
	pairs := 0
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		if pairs++; pairs > MaxFields {
			return p.o.fail()
		}
		var key, val []byte
		var ok bool
		if s[i] == '"' {
			if p.kbuf, key, i, ok = unquoteGo(p.kbuf[:0], s, i+1); !ok {
				return p.o.fail()
			}
		} else {
			start := i
			for i < len(s) && s[i] > ' ' && s[i] != '=' && s[i] != '"' {
				i++
			}
			key = s[start:i]
		}
		if len(key) == 0 || i >= len(s) || s[i] != '=' {
			return p.o.fail()
		}
		i++
		if i < len(s) && s[i] == '"' {
			if p.vbuf, val, i, ok = unquoteGo(p.vbuf[:0], s, i+1); !ok {
				return p.o.fail()
			}
			if i < len(s) && s[i] != ' ' && s[i] != '\t' {
				return p.o.fail()
			}
		} else {
			start := i
			for i < len(s) && s[i] != ' ' && s[i] != '\t' {
				i++
			}
			val = s[start:i]
		}
		if timeKey == nil {
			for _, tk := range p.timeKeys {
				if string(key) == string(tk) {
					timeKey = tk
					if t, ok := p.tf.parse(val); ok {
						p.o.setTime(t)
						taken = !p.keep
					}
					break
				}
			}
			if taken {
				continue
			}
		} else if taken && string(key) == string(timeKey) {
			continue // a repeat of the consumed time member
		}
		if p.convs != nil && string(key) != string(timeKey) {
			if c, ok := p.convs[string(key)]; ok {
				if p.o.key(key) {
					p.o.buf = c.append(p.o.buf, val)
					p.o.end()
				}
				continue
			}
		}
		p.o.str(key, val)
	}
	if pairs == 0 {
		return p.o.fail()
	}
	return true
}

// unquoteGo decodes the Go-quoted string (strconv.Quote, fmt's %q) whose
// content starts at s[i]: a view into s if it has no escape, else decoded
// into buf. It returns buf, the string and the index just past the closing
// quote; false if there is none. An escape Go would not write is kept as
// it is.
func unquoteGo(buf, s []byte, i int) (_, str []byte, next int, ok bool) {
	q := bytes.IndexByte(s[i:], '"')
	if q < 0 {
		return buf, nil, len(s), false
	}
	b := bytes.IndexByte(s[i:i+q], '\\')
	if b < 0 {
		return buf, s[i : i+q], i + q + 1, true
	}
	buf = append(buf, s[i:i+b]...)
	i += b
	for i < len(s) {
		c := s[i]
		if c == '"' {
			return buf, buf, i + 1, true
		}
		if c != '\\' {
			k := i + 1
			for k < len(s) && s[k] != '"' && s[k] != '\\' {
				k++
			}
			buf = append(buf, s[i:k]...)
			i = k
			continue
		}
		if i+1 >= len(s) {
			break
		}
		e := s[i+1]
		switch e {
		case 'a', 'b', 'f', 'n', 'r', 't', 'v', '\\', '"', '\'':
			buf = append(buf, simpleEscape[e])
			i += 2
			continue
		case 'x', 'u', 'U':
			n := 2
			if e == 'u' {
				n = 4
			} else if e == 'U' {
				n = 8
			}
			if r, ok := hexRune(s, i+2, n); ok {
				if e == 'x' {
					buf = append(buf, byte(r))
				} else {
					buf = utf8.AppendRune(buf, r)
				}
				i += 2 + n
				continue
			}
		case '0', '1', '2', '3':
			if i+3 < len(s) && s[i+2]-'0' < 8 && s[i+3]-'0' < 8 {
				buf = append(buf, (e-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
				i += 4
				continue
			}
		}
		buf = append(buf, '\\', e) // not an escape Go writes: as it is
		i += 2
	}
	return buf, nil, len(s), false
}

var simpleEscape = [256]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v', '\\': '\\', '"': '"', '\'': '\''}

// hexRune parses n hex digits at s[i].
func hexRune(s []byte, i, n int) (rune, bool) {
	if i+n > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+n] {
		switch {
		case c-'0' < 10:
			r = r<<4 | rune(c-'0')
		case c|0x20-'a' < 6:
			r = r<<4 | rune(c|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

package forward

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

// maxJSONDepth bounds the nesting of a parsed JSON log payload; deeper
// payloads are left unparsed (the record keeps its log string).
const maxJSONDepth = 64

// jsonParser converts one JSON object (a log payload) to msgpack key/value
// pairs, appending to a caller's buffer without allocating. Containers and
// strings are written with a 5-byte placeholder header that is shrunk in
// place once the size is known.
type jsonParser struct {
	b     []byte
	i     int
	depth int
}

// maxDedupFields bounds the quadratic check for keys repeated inside one
// JSON payload (the first wins); past it, later members are only checked
// against the record's own keys. The docker input uses the same bound.
const maxDedupFields = 256

// appendJSONFields parses js as one JSON object and appends its members to
// dst as msgpack key/value pairs, skipping members whose key is in taken
// (the record's own keys) or repeats an earlier member. The kept keys are
// added to taken. It returns dst unchanged and ok=false if js is not exactly
// one JSON object (surrounding whitespace allowed).
func appendJSONFields(dst, js []byte, taken *keySet) (out []byte, pairs int, ok bool) {
	base := len(taken.keys)
	defer func() {
		if !ok {
			taken.keys = taken.keys[:base]
		}
	}()
	p := jsonParser{b: js}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return dst, 0, false
	}
	p.i++
	start := len(dst)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
	} else {
		for {
			p.ws()
			kpos := len(dst)
			var good bool
			if dst, good = p.str(dst); !good {
				return dst[:start], 0, false
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return dst[:start], 0, false
			}
			p.i++
			p.ws()
			key, _, _ := readStrBin(dst[kpos:])
			var skip bool
			if pairs < maxDedupFields {
				skip = taken.has(key)
			} else {
				skip = taken.hasIn(key, base)
			}
			if dst, good = p.value(dst); !good {
				return dst[:start], 0, false
			}
			if skip {
				dst = dst[:kpos]
			} else {
				if pairs < maxDedupFields {
					// A view into dst stays valid: bytes before kpos are
					// never moved, and an outgrown array is left as is.
					taken.add(key)
				}
				pairs++
			}
			p.ws()
			if p.i >= len(p.b) {
				return dst[:start], 0, false
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == '}' {
				p.i++
				break
			}
			return dst[:start], 0, false
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return dst[:start], 0, false
	}
	return dst, pairs, true
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value appends one JSON value as msgpack.
func (p *jsonParser) value(dst []byte) ([]byte, bool) {
	if p.i >= len(p.b) {
		return dst, false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str(dst)
	case c == '{':
		return p.object(dst)
	case c == '[':
		return p.array(dst)
	case c == 't':
		if p.lit("true") {
			return append(dst, 0xc3), true
		}
	case c == 'f':
		if p.lit("false") {
			return append(dst, 0xc2), true
		}
	case c == 'n':
		if p.lit("null") {
			return append(dst, 0xc0), true
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	}
	return dst, false
}

func (p *jsonParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *jsonParser) object(dst []byte) ([]byte, bool) {
	if p.depth >= maxJSONDepth {
		return dst, false
	}
	p.depth++
	defer func() { p.depth-- }()
	p.i++ // {
	pos := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0)
	n := 0
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return closeContainer(dst, pos, n, true), true
	}
	for {
		p.ws()
		var ok bool
		if dst, ok = p.str(dst); !ok {
			return dst, false
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return dst, false
		}
		p.i++
		p.ws()
		if dst, ok = p.value(dst); !ok {
			return dst, false
		}
		n++
		p.ws()
		if p.i >= len(p.b) {
			return dst, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			continue
		case '}':
			p.i++
			return closeContainer(dst, pos, n, true), true
		}
		return dst, false
	}
}

func (p *jsonParser) array(dst []byte) ([]byte, bool) {
	if p.depth >= maxJSONDepth {
		return dst, false
	}
	p.depth++
	defer func() { p.depth-- }()
	p.i++ // [
	pos := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0)
	n := 0
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return closeContainer(dst, pos, n, false), true
	}
	for {
		p.ws()
		var ok bool
		if dst, ok = p.value(dst); !ok {
			return dst, false
		}
		n++
		p.ws()
		if p.i >= len(p.b) {
			return dst, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			continue
		case ']':
			p.i++
			return closeContainer(dst, pos, n, false), true
		}
		return dst, false
	}
}

// closeContainer writes the header of a map (pairs) or array at pos, where
// 5 placeholder bytes were reserved, shrinking the placeholder to the
// shortest header.
func closeContainer(dst []byte, pos, n int, isMap bool) []byte {
	var hdr [5]byte
	var h []byte
	switch {
	case n < 16:
		if isMap {
			hdr[0] = 0x80 | byte(n)
		} else {
			hdr[0] = 0x90 | byte(n)
		}
		h = hdr[:1]
	case n <= math.MaxUint16:
		hdr[0] = 0xdc
		if isMap {
			hdr[0] = 0xde
		}
		hdr[1], hdr[2] = byte(n>>8), byte(n)
		h = hdr[:3]
	default:
		hdr[0] = 0xdd
		if isMap {
			hdr[0] = 0xdf
		}
		hdr[1], hdr[2], hdr[3], hdr[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		h = hdr[:5]
	}
	return shrinkHeader(dst, pos, h)
}

// shrinkHeader replaces the 5-byte placeholder at dst[pos:pos+5] by h,
// moving the payload after it left.
func shrinkHeader(dst []byte, pos int, h []byte) []byte {
	copy(dst[pos:], h)
	if d := 5 - len(h); d > 0 {
		copy(dst[pos+len(h):], dst[pos+5:])
		dst = dst[:len(dst)-d]
	}
	return dst
}

// str appends a JSON string as a msgpack str, unescaping it.
func (p *jsonParser) str(dst []byte) ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return dst, false
	}
	p.i++
	pos := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0)
	for {
		// Copy the run of plain bytes at once.
		j := p.i
		for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' && p.b[j] >= 0x20 {
			j++
		}
		dst = append(dst, p.b[p.i:j]...)
		p.i = j
		if p.i >= len(p.b) || p.b[p.i] < 0x20 {
			return dst, false
		}
		if p.b[p.i] == '"' {
			p.i++
			break
		}
		// Backslash escape.
		if p.i+1 >= len(p.b) {
			return dst, false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return dst, false
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					var ok2 bool
					if r2, ok2 = p.hex4(); !ok2 {
						return dst, false
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
					} else {
						p.i = save // not a pair: the second escape is decoded on its own
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	n := len(dst) - pos - 5
	var hdr [5]byte
	var h []byte
	switch {
	case n < 32:
		hdr[0] = 0xa0 | byte(n)
		h = hdr[:1]
	case n <= math.MaxUint8:
		hdr[0], hdr[1] = 0xd9, byte(n)
		h = hdr[:2]
	case n <= math.MaxUint16:
		hdr[0], hdr[1], hdr[2] = 0xda, byte(n>>8), byte(n)
		h = hdr[:3]
	default:
		hdr[0], hdr[1], hdr[2], hdr[3], hdr[4] = 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		h = hdr[:5]
	}
	return shrinkHeader(dst, pos, h), true
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// number appends a JSON number: an int64 when it is an integer that fits,
// a float64 otherwise.
func (p *jsonParser) number(dst []byte) ([]byte, bool) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		s := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		return p.i - s
	}
	nd := digits()
	if nd == 0 || (nd > 1 && p.b[p.i-nd] == '0') {
		return dst, false
	}
	isInt := true
	if p.i < len(p.b) && p.b[p.i] == '.' {
		isInt = false
		p.i++
		if digits() == 0 {
			return dst, false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		isInt = false
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return dst, false
		}
	}
	num := p.b[start:p.i]
	if isInt {
		if v, ok := parseInt64(num); ok {
			return msgp.AppendInt64(dst, v), true
		}
	}
	// The grammar was checked above, so the only possible error is a range
	// error, for which ParseFloat returns the nearest value (±Inf, 0).
	f, _ := strconv.ParseFloat(string(num), 64)
	return msgp.AppendFloat64(dst, f), true
}

// parseInt64 parses a JSON integer (already validated) without allocating.
func parseInt64(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var u uint64
	for _, c := range b {
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// keySet is a small set of keys (views), used to keep parsed JSON fields
// from duplicating keys a record already has.
type keySet struct{ keys [][]byte }

func (s *keySet) reset()            { s.keys = s.keys[:0] }
func (s *keySet) add(k []byte)      { s.keys = append(s.keys, k) }
func (s *keySet) has(k []byte) bool { return s.hasIn(k, len(s.keys)) }

// hasIn reports whether k is among the first n keys.
func (s *keySet) hasIn(k []byte, n int) bool {
	for _, x := range s.keys[:n] {
		if string(x) == string(k) {
			return true
		}
	}
	return false
}

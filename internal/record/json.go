package record

import (
	"bytes"
	"math"
	"strconv"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// MaxDepth bounds the nesting of containers below the top-level object of
// a payload; a deeper payload is rejected.
const MaxDepth = 64

// maxDedupFields bounds the check for repeated top-level keys: a member is
// compared with the kept ones only while at most this many were kept.
const maxDedupFields = 256

// Fields holds top-level members of one JSON object as msgpack key/value
// pairs: Parse converts them all, Find only the members asked for. The
// zero value is ready to use; its buffers are reused, so a Fields is not
// safe for concurrent use, and what it returns is valid until the next
// Parse or Find.
type Fields struct {
	buf   []byte // msgpack: key, value, key, value ... (no map header)
	spans []span // one per kept member, in order
	mask  uint64 // keyBit of every kept key
	str   []byte // scratch for unescaping
}

// span locates one kept member in Fields.buf.
type span struct {
	key      [2]int // the key's bytes: buf[key[0]:key[1]]
	val, end int    // the msgpack value: buf[val:end]
}

// Parse converts js, which must be exactly one JSON object (surrounding
// whitespace allowed), keeping every top-level member whose key is not in
// skip (may be nil) and does not repeat an earlier member's. It reports
// false, and holds no fields, if js is not accepted (see the package doc).
func (f *Fields) Parse(js []byte, skip *Keys) bool {
	return f.scan(js, nil, skip, false)
}

// Find is Parse for the members named in keys only: the values of the
// other members are checked but not converted. It accepts exactly what
// Parse accepts, and Value returns for each key found what it would after
// Parse. It is the cheap path for {field:KEY} when the payload's fields
// are not stored.
func (f *Fields) Find(js []byte, keys [][]byte, skip *Keys) bool {
	return f.scan(js, keys, skip, true)
}

// Len returns the number of members held.
func (f *Fields) Len() int { return len(f.spans) }

// Pairs returns the members held as msgpack key/value pairs, Len of them,
// without a map header.
func (f *Fields) Pairs() []byte { return f.buf }

// Value returns the msgpack value of the member key, if it is held.
func (f *Fields) Value(key []byte) ([]byte, bool) {
	if i := f.index(key); i >= 0 {
		return f.buf[f.spans[i].val:f.spans[i].end], true
	}
	return nil, false
}

// index returns the position in f.spans of key, or -1.
func (f *Fields) index(key []byte) int {
	if f.mask&keyBit(key) == 0 {
		return -1
	}
	for i, s := range f.spans {
		if string(f.buf[s.key[0]:s.key[1]]) == string(key) {
			return i
		}
	}
	return -1
}

func (f *Fields) fail() bool {
	f.buf = f.buf[:0]
	f.spans = f.spans[:0]
	f.mask = 0
	return false
}

// scan walks the top-level members of js. With find, a member is kept if
// its key is in keys and not yet kept; otherwise if it does not repeat a
// kept key (checked while at most maxDedupFields were kept). Either way a
// key in skip is dropped. A dropped member's value is only checked.
func (f *Fields) scan(js []byte, keys [][]byte, skip *Keys, find bool) bool {
	f.buf = f.buf[:0]
	f.spans = f.spans[:0]
	f.mask = 0
	s := js
	i := SkipWS(s, 0)
	if n := skipWSBack(s); i >= n || s[i] != '{' || s[n-1] != '}' {
		return false
	}
	i = SkipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return SkipWS(s, i+1) == len(s)
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return f.fail()
		}
		key, next, ok := f.unquote(s, i+1)
		if !ok {
			return f.fail()
		}
		i = SkipWS(s, next)
		if i >= len(s) || s[i] != ':' {
			return f.fail()
		}
		i = SkipWS(s, i+1)
		var keep bool
		if find {
			keep = wanted(keys, key) && !skip.Has(key) && f.index(key) < 0
		} else {
			keep = !skip.Has(key) && (len(f.spans) > maxDedupFields || f.index(key) < 0)
		}
		if keep {
			// key may be f.str, which the value may reuse: take what is
			// needed of it now.
			f.buf = msgp.AppendStringFromBytes(f.buf, key)
			f.mask |= keyBit(key)
		}
		vStart, kStart := len(f.buf), len(f.buf)-len(key)
		if f.buf, i, ok = f.value(f.buf, s, i, 0, keep); !ok {
			return f.fail()
		}
		if keep {
			f.spans = append(f.spans, span{key: [2]int{kStart, vStart}, val: vStart, end: len(f.buf)})
		}
		i = SkipWS(s, i)
		if i >= len(s) {
			return f.fail()
		}
		if s[i] == ',' {
			i = SkipWS(s, i+1)
			continue
		}
		if s[i] != '}' || SkipWS(s, i+1) != len(s) {
			return f.fail()
		}
		return true
	}
}

func wanted(keys [][]byte, key []byte) bool {
	for _, k := range keys {
		if string(k) == string(key) {
			return true
		}
	}
	return false
}

// value converts the JSON value at s[i] to msgpack appended to dst, or
// with emit false only checks it, leaving dst alone. It returns the index
// just past the value; ok is false if the value is not accepted.
func (f *Fields) value(dst, s []byte, i, depth int, emit bool) (_ []byte, _ int, ok bool) {
	if i >= len(s) {
		return dst, i, false
	}
	switch c := s[i]; {
	case c == '"':
		if emit {
			return f.appendString(dst, s, i+1)
		}
		i, ok = skipString(s, i+1)
		return dst, i, ok
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return dst, i, false
		}
		isMap := c == '{'
		closing := byte(']')
		if isMap {
			closing = '}'
		}
		// Reserve a 5-byte header, fill it in and compact once the count
		// is known.
		hdr := len(dst)
		if emit {
			dst = append(dst, 0, 0, 0, 0, 0)
		}
		n := uint32(0)
		i = SkipWS(s, i+1)
		if i < len(s) && s[i] == closing {
			if emit {
				dst = finishHeader(dst, hdr, n, isMap)
			}
			return dst, i + 1, true
		}
		for {
			if isMap {
				if i >= len(s) || s[i] != '"' {
					return dst, i, false
				}
				if emit {
					dst, i, ok = f.appendString(dst, s, i+1)
				} else {
					i, ok = skipString(s, i+1)
				}
				if !ok {
					return dst, i, false
				}
				i = SkipWS(s, i)
				if i >= len(s) || s[i] != ':' {
					return dst, i, false
				}
				i = SkipWS(s, i+1)
			}
			if dst, i, ok = f.value(dst, s, i, depth+1, emit); !ok {
				return dst, i, false
			}
			n++
			i = SkipWS(s, i)
			if i >= len(s) {
				return dst, i, false
			}
			if s[i] == closing {
				if emit {
					dst = finishHeader(dst, hdr, n, isMap)
				}
				return dst, i + 1, true
			}
			if s[i] != ',' {
				return dst, i, false
			}
			i = SkipWS(s, i+1)
		}
	case c == 't':
		if bytes.HasPrefix(s[i:], []byte("true")) {
			if emit {
				dst = msgp.AppendBool(dst, true)
			}
			return dst, i + 4, true
		}
	case c == 'f':
		if bytes.HasPrefix(s[i:], []byte("false")) {
			if emit {
				dst = msgp.AppendBool(dst, false)
			}
			return dst, i + 5, true
		}
	case c == 'n':
		if bytes.HasPrefix(s[i:], []byte("null")) {
			if emit {
				dst = msgp.AppendNil(dst)
			}
			return dst, i + 4, true
		}
	case c == '-' || (c >= '0' && c <= '9'):
		end, isInt, ok := scanNumber(s, i)
		if ok && emit {
			dst = appendNumber(dst, s[i:end], isInt)
		}
		return dst, end, ok
	}
	return dst, i, false
}

// finishHeader writes the smallest map or array header for n at dst[hdr:]
// (where 5 bytes were reserved) and moves the elements down.
func finishHeader(dst []byte, hdr int, n uint32, isMap bool) []byte {
	var h [5]byte
	var enc []byte
	if isMap {
		enc = msgp.AppendMapHeader(h[:0], n)
	} else {
		enc = msgp.AppendArrayHeader(h[:0], n)
	}
	copy(dst[hdr:], enc)
	if d := 5 - len(enc); d > 0 {
		copy(dst[hdr+len(enc):], dst[hdr+5:])
		dst = dst[:len(dst)-d]
	}
	return dst
}

// appendString decodes the JSON string whose content starts at s[i] and
// appends it as a msgpack str.
func (f *Fields) appendString(dst, s []byte, i int) ([]byte, int, bool) {
	v, i, ok := f.unquote(s, i)
	if !ok {
		return dst, i, false
	}
	return msgp.AppendStringFromBytes(dst, v), i, true
}

// unquote returns the JSON string whose content starts at s[i]: a view into
// s if it has no escapes, else decoded into f.str (valid until the next
// call), and the index just past its closing quote.
func (f *Fields) unquote(s []byte, i int) ([]byte, int, bool) {
	if k := findSpecial(s, i); k < len(s) && s[k] == '"' {
		return s[i:k], k + 1, true
	}
	var err error
	if f.str, i, err = AppendUnescaped(f.str[:0], s, i); err != nil {
		return nil, i, false
	}
	return f.str, i, true
}

// scanNumber checks the JSON number at s[i] and returns the index just past
// it; isInt is true if it has neither fraction nor exponent.
func scanNumber(s []byte, i int) (end int, isInt, ok bool) {
	if s[i] == '-' {
		i++
	}
	intStart := i
	i = skipDigits(s, i)
	if i == intStart || (s[intStart] == '0' && i-intStart > 1) {
		return i, false, false
	}
	isInt = true
	if i < len(s) && s[i] == '.' {
		isInt = false
		f := i + 1
		if i = skipDigits(s, f); i == f {
			return i, false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		isInt = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		e := i
		if i = skipDigits(s, e); i == e {
			return i, false, false
		}
	}
	return i, isInt, true
}

// skipDigits returns the index of the first byte at or after i that is not
// an ASCII digit.
func skipDigits(s []byte, i int) int {
	for i < len(s) && s[i]-'0' < 10 {
		i++
	}
	return i
}

// appendNumber appends a number scanNumber accepted: an int64 if it is an
// integer that fits, else a float64.
func appendNumber(dst, num []byte, isInt bool) []byte {
	if isInt {
		if n, ok := parseInt64(num); ok {
			return msgp.AppendInt64(dst, n)
		}
	}
	// The grammar was checked, so ParseFloat can only fail on range, and
	// then returns ±Inf. The string view does not outlive the call.
	v, _ := strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 64)
	return msgp.AppendFloat64(dst, v)
}

// parseInt64 parses a JSON integer scanNumber accepted.
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

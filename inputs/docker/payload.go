package docker

import (
	"bytes"
	"math"
	"strconv"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// payload converts a log payload that is a JSON object into msgpack
// key/value pairs, for parse_json and {field:KEY}. Its buffers are reused.
type payload struct {
	buf    []byte      // msgpack: key, value, key, value ... (no map header)
	fields []fieldSpan // one per kept top-level field, in order
	str    []byte      // scratch for unescaping
}

// fieldSpan locates one top-level field in payload.buf.
type fieldSpan struct {
	key      [2]int // raw key bytes: buf[key[0]:key[1]]
	val, end int    // msgpack value: buf[val:end]
}

// maxDedupFields bounds the quadratic check for repeated keys; objects with
// more top-level fields are converted without it.
const maxDedupFields = 256

// reservedKey reports whether k is one of the record keys the input sets
// itself; a payload field with such a name is not merged (its data is still
// in "log").
func reservedKey(k []byte) bool {
	switch string(k) {
	case "log", "stream", "container_id", "container_name", "labels":
		return true
	}
	return false
}

// convert parses s as a JSON object. It reports false, leaving no fields,
// if s is not exactly one JSON object (surrounding whitespace allowed).
// Reserved keys and repeated keys (the first one wins) are dropped.
func (p *payload) convert(s []byte) bool {
	p.buf = p.buf[:0]
	p.fields = p.fields[:0]
	i := skipWS(s, 0)
	if n := skipWSBack(s); i >= n || s[i] != '{' || s[n-1] != '}' {
		return false
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return skipWS(s, i+1) == len(s)
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return p.fail()
		}
		kStart := len(p.buf)
		var err error
		p.buf, i, err = appendMsgpString(p.buf, s, i+1, &p.str)
		if err != nil {
			return p.fail()
		}
		keyRaw := strPayload(p.buf[kStart:])
		i = skipWS(s, i)
		if i >= len(s) || s[i] != ':' {
			return p.fail()
		}
		i = skipWS(s, i+1)
		vStart := len(p.buf)
		if p.buf, i, err = p.value(p.buf, s, i, 0); err != nil {
			return p.fail()
		}
		ks := len(p.buf[:vStart]) - len(keyRaw)
		if reservedKey(keyRaw) || (len(p.fields) <= maxDedupFields && p.lookup(keyRaw) >= 0) {
			p.buf = p.buf[:kStart] // drop the field
		} else {
			p.fields = append(p.fields, fieldSpan{key: [2]int{ks, vStart}, val: vStart, end: len(p.buf)})
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return p.fail()
		}
		if s[i] == ',' {
			i = skipWS(s, i+1)
			continue
		}
		if s[i] != '}' {
			return p.fail()
		}
		if skipWS(s, i+1) != len(s) {
			return p.fail()
		}
		return true
	}
}

func (p *payload) fail() bool {
	p.buf = p.buf[:0]
	p.fields = p.fields[:0]
	return false
}

// skipWSBack returns the length of s without trailing whitespace.
func skipWSBack(s []byte) int {
	n := len(s)
	for n > 0 && isWS(s[n-1]) {
		n--
	}
	return n
}

// lookup returns the index in p.fields of key, or -1.
func (p *payload) lookup(key []byte) int {
	for i, f := range p.fields {
		if bytes.Equal(p.buf[f.key[0]:f.key[1]], key) {
			return i
		}
	}
	return -1
}

// appendField appends the value of field key rendered as text (strings as
// is, numbers and booleans in JSON form) and reports whether it could.
func (p *payload) appendField(dst, key []byte) ([]byte, bool) {
	i := p.lookup(key)
	if i < 0 {
		return dst, false
	}
	v := p.buf[p.fields[i].val:p.fields[i].end]
	switch msgp.NextType(v) {
	case msgp.StrType:
		s, _, err := msgp.ReadStringZC(v)
		if err != nil || len(s) == 0 {
			return dst, false
		}
		return append(dst, s...), true
	case msgp.IntType:
		n, _, err := msgp.ReadInt64Bytes(v)
		return strconv.AppendInt(dst, n, 10), err == nil
	case msgp.UintType:
		n, _, err := msgp.ReadUint64Bytes(v)
		return strconv.AppendUint(dst, n, 10), err == nil
	case msgp.Float64Type:
		f, _, err := msgp.ReadFloat64Bytes(v)
		return strconv.AppendFloat(dst, f, 'g', -1, 64), err == nil
	case msgp.BoolType:
		b, _, err := msgp.ReadBoolBytes(v)
		return strconv.AppendBool(dst, b), err == nil
	}
	return dst, false
}

// strPayload returns the bytes of the msgpack str at the start of b.
func strPayload(b []byte) []byte {
	s, _, err := msgp.ReadStringZC(b)
	if err != nil {
		return nil
	}
	return s
}

// value converts the JSON value at s[i] to msgpack.
func (p *payload) value(dst, s []byte, i, depth int) ([]byte, int, error) {
	if i >= len(s) {
		return dst, i, errSyntax
	}
	switch c := s[i]; {
	case c == '"':
		return appendMsgpString(dst, s, i+1, &p.str)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return dst, i, errTooDeep
		}
		isMap := c == '{'
		closing := byte(']')
		if isMap {
			closing = '}'
		}
		// Reserve a 5-byte header, fill it in and compact once the count
		// is known.
		hdr := len(dst)
		dst = append(dst, 0, 0, 0, 0, 0)
		n := uint32(0)
		i = skipWS(s, i+1)
		if i < len(s) && s[i] == closing {
			return finishHeader(dst, hdr, n, isMap), i + 1, nil
		}
		for {
			var err error
			if isMap {
				if i >= len(s) || s[i] != '"' {
					return dst, i, errSyntax
				}
				if dst, i, err = appendMsgpString(dst, s, i+1, &p.str); err != nil {
					return dst, i, err
				}
				i = skipWS(s, i)
				if i >= len(s) || s[i] != ':' {
					return dst, i, errSyntax
				}
				i = skipWS(s, i+1)
			}
			if dst, i, err = p.value(dst, s, i, depth+1); err != nil {
				return dst, i, err
			}
			n++
			i = skipWS(s, i)
			if i >= len(s) {
				return dst, i, errSyntax
			}
			if s[i] == closing {
				return finishHeader(dst, hdr, n, isMap), i + 1, nil
			}
			if s[i] != ',' {
				return dst, i, errSyntax
			}
			i = skipWS(s, i+1)
		}
	case c == 't':
		if bytes.HasPrefix(s[i:], []byte("true")) {
			return msgp.AppendBool(dst, true), i + 4, nil
		}
	case c == 'f':
		if bytes.HasPrefix(s[i:], []byte("false")) {
			return msgp.AppendBool(dst, false), i + 5, nil
		}
	case c == 'n':
		if bytes.HasPrefix(s[i:], []byte("null")) {
			return msgp.AppendNil(dst), i + 4, nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return appendNumber(dst, s, i)
	}
	return dst, i, errSyntax
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

// appendMsgpString decodes the JSON string whose content starts at s[i]
// and appends it as a msgpack str.
func appendMsgpString(dst, s []byte, i int, scratch *[]byte) ([]byte, int, error) {
	k := bytes.IndexByte(s[i:], '"')
	if k >= 0 && bytes.IndexByte(s[i:i+k], '\\') < 0 {
		return msgp.AppendStringFromBytes(dst, s[i:i+k]), i + k + 1, nil
	}
	var err error
	*scratch, i, err = appendUnescaped((*scratch)[:0], s, i)
	if err != nil {
		return dst, i, err
	}
	return msgp.AppendStringFromBytes(dst, *scratch), i, nil
}

// appendNumber converts the JSON number at s[i]: an int64 if it is an
// integer that fits, else a float64.
func appendNumber(dst, s []byte, i int) ([]byte, int, error) {
	start := i
	if s[i] == '-' {
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == intStart || (s[intStart] == '0' && i-intStart > 1) {
		return dst, i, errSyntax
	}
	isInt := true
	if i < len(s) && s[i] == '.' {
		isInt = false
		i++
		f := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == f {
			return dst, i, errSyntax
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		isInt = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		e := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == e {
			return dst, i, errSyntax
		}
	}
	num := s[start:i]
	// The grammar is checked above, so strconv only fails on range; the
	// string view does not outlive the call.
	str := unsafe.String(unsafe.SliceData(num), len(num))
	if isInt {
		if n, err := strconv.ParseInt(str, 10, 64); err == nil {
			return msgp.AppendInt64(dst, n), i, nil
		}
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil && !math.IsInf(f, 0) {
		return dst, i, errSyntax
	}
	return msgp.AppendFloat64(dst, f), i, nil
}

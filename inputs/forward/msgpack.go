package forward

import "encoding/binary"

// Small zero-allocation msgpack readers for records. They never allocate,
// not even an error on a type mismatch (msgp's readers do), because records
// come from untrusted clients on the hot path.

// valueLen returns the length of the complete msgpack value at the front of
// b, or ok=false if b does not start with one. It is iterative, so deep
// nesting costs no stack.
func valueLen(b []byte) (int, bool) {
	var f framer
	n, ok, err := f.next(b, len(b))
	return n, ok && err == nil
}

// readStrBin reads a str or bin value as a view into b.
func readStrBin(b []byte) (v, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, b, false
	}
	c := b[0]
	var hdr, size int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		hdr, size = 1, int(c&0x1f)
	case c == 0xd9 || c == 0xc4:
		if len(b) < 2 {
			return nil, b, false
		}
		hdr, size = 2, int(b[1])
	case c == 0xda || c == 0xc5:
		if len(b) < 3 {
			return nil, b, false
		}
		hdr, size = 3, int(binary.BigEndian.Uint16(b[1:]))
	case c == 0xdb || c == 0xc6:
		if len(b) < 5 {
			return nil, b, false
		}
		u := binary.BigEndian.Uint32(b[1:])
		if uint64(u) > uint64(len(b)-5) {
			return nil, b, false
		}
		hdr, size = 5, int(u)
	default:
		return nil, b, false
	}
	if size > len(b)-hdr {
		return nil, b, false
	}
	return b[hdr : hdr+size : hdr+size], b[hdr+size:], true
}

// readMapHeader reads a map header; n is the number of key/value pairs.
func readMapHeader(b []byte) (n int, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	switch c := b[0]; {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), b[1:], true
	case c == 0xde:
		if len(b) < 3 {
			return 0, b, false
		}
		return int(binary.BigEndian.Uint16(b[1:])), b[3:], true
	case c == 0xdf:
		if len(b) < 5 {
			return 0, b, false
		}
		u := binary.BigEndian.Uint32(b[1:])
		if uint64(u) > uint64(len(b)-5)/2 { // each pair takes two bytes at least
			return 0, b, false
		}
		return int(u), b[5:], true
	}
	return 0, b, false
}

// mapIter walks the key/value pairs of a msgpack map without allocating.
type mapIter struct {
	rest []byte
	left int
}

func newMapIter(m []byte) (mapIter, bool) {
	n, rest, ok := readMapHeader(m)
	return mapIter{rest: rest, left: n}, ok
}

// next returns the next pair: key is the key's bytes if it is a str or bin
// (keyOK false otherwise), val the raw value. ok is false at the end or on
// malformed input.
func (it *mapIter) next() (key []byte, keyOK bool, val []byte, ok bool) {
	if it.left <= 0 {
		return nil, false, nil, false
	}
	it.left--
	var rest []byte
	if key, rest, keyOK = readStrBin(it.rest); !keyOK {
		kl, ok := valueLen(it.rest)
		if !ok {
			it.left = 0
			return nil, false, nil, false
		}
		rest = it.rest[kl:]
	}
	// Fast paths for the usual values: str/bin and fixints.
	if len(rest) > 0 && (rest[0] <= 0x7f || rest[0] >= 0xe0) {
		it.rest = rest[1:]
		return key, keyOK, rest[:1:1], true
	}
	if _, after, sok := readStrBin(rest); sok {
		n := len(rest) - len(after)
		it.rest = after
		return key, keyOK, rest[:n:n], true
	}
	vl, ok := valueLen(rest)
	if !ok {
		it.left = 0
		return nil, false, nil, false
	}
	val = rest[:vl:vl]
	it.rest = rest[vl:]
	return key, keyOK, val, true
}

// lookupRaw returns the raw value of the first top-level key equal to key.
func lookupRaw(m, key []byte) ([]byte, bool) {
	it, ok := newMapIter(m)
	if !ok {
		return nil, false
	}
	for {
		k, kok, v, ok := it.next()
		if !ok {
			return nil, false
		}
		if kok && string(k) == string(key) {
			return v, true
		}
	}
}

// lookupStr returns the str/bin value of the first top-level key equal to key.
func lookupStr(m, key []byte) ([]byte, bool) {
	v, ok := lookupRaw(m, key)
	if !ok {
		return nil, false
	}
	s, _, ok := readStrBin(v)
	return s, ok
}

// appendMapHeader appends a map header for n pairs (msgp's encoding).
func appendMapHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x80|byte(n))
	case n <= 0xffff:
		return append(dst, 0xde, byte(n>>8), byte(n))
	}
	return append(dst, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendStr appends s as a msgpack str.
func appendStr(dst, s []byte) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= 0xff:
		dst = append(dst, 0xd9, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

// appendStrString is appendStr for a string.
func appendStrString(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= 0xff:
		dst = append(dst, 0xd9, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

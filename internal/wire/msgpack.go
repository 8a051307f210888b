package wire

import (
	"encoding/binary"
	"math"
)

// This file holds the few msgpack primitives the codec needs beyond
// tinylib/msgp: a bounded, non-recursive value scanner that tells "need more
// bytes" from "too large" from "malformed", and type-checked zero-copy
// readers that never allocate an error on a type mismatch. Skip,
// ReadStrBin and ReadMapHeader are exported for the forward input, which
// walks the records of events this package decoded.

// msgpack type bytes used by name.
const (
	mNil     = 0xc0
	mFalse   = 0xc2
	mTrue    = 0xc3
	mBin8    = 0xc4
	mBin16   = 0xc5
	mBin32   = 0xc6
	mExt8    = 0xc7
	mExt16   = 0xc8
	mExt32   = 0xc9
	mUint8   = 0xcc
	mUint16  = 0xcd
	mUint32  = 0xce
	mUint64  = 0xcf
	mInt8    = 0xd0
	mInt16   = 0xd1
	mInt32   = 0xd2
	mInt64   = 0xd3
	mFixExt8 = 0xd7
	mStr8    = 0xd9
	mStr16   = 0xda
	mStr32   = 0xdb
	mArray16 = 0xdc
	mArray32 = 0xdd
	mMap16   = 0xde
	mMap32   = 0xdf
)

// valueLen returns the encoded length of the first msgpack value in b,
// walking nested arrays and maps iteratively (no recursion, so nesting depth
// costs no stack). limit > 0 caps the length: as soon as a header announces
// more than limit bytes in all (a str32, bin32 or array32 length, or more
// elements than bytes left under the cap), it returns ErrTooLarge without
// needing those bytes. It returns ErrShort if b ends inside the value and
// ErrMalformed for the reserved prefix 0xc1.
func valueLen(b []byte, limit int) (int, error) {
	var (
		p       uint64     // offset of the next value's first byte
		pending uint64 = 1 // values still to walk
		n              = uint64(len(b))
		lim     uint64 = math.MaxUint64
	)
	if limit > 0 {
		lim = uint64(limit)
	}
	for pending > 0 {
		// Each pending value takes at least one byte.
		if p+pending > lim {
			return 0, ErrTooLarge
		}
		if p >= n {
			return 0, ErrShort
		}
		c := b[p]
		pending--
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
			p++
			continue
		case c <= 0x8f: // fixmap
			p++
			pending += 2 * uint64(c&0x0f)
			continue
		case c <= 0x9f: // fixarray
			p++
			pending += uint64(c & 0x0f)
			continue
		case c <= 0xbf: // fixstr
			p += 1 + uint64(c&0x1f)
			continue
		}
		var lenBytes, hdr uint64 // size of the length field; bytes before the payload
		switch c {
		case mNil, mFalse, mTrue:
			p++
			continue
		case 0xca, mUint32, mInt32: // float32, uint32, int32
			p += 5
			continue
		case 0xcb, mUint64, mInt64: // float64, uint64, int64
			p += 9
			continue
		case mUint8, mInt8:
			p += 2
			continue
		case mUint16, mInt16:
			p += 3
			continue
		case 0xd4: // fixext1
			p += 3
			continue
		case 0xd5: // fixext2
			p += 4
			continue
		case 0xd6: // fixext4
			p += 6
			continue
		case mFixExt8:
			p += 10
			continue
		case 0xd8: // fixext16
			p += 18
			continue
		case mBin8, mStr8:
			lenBytes, hdr = 1, 2
		case mBin16, mStr16, mArray16, mMap16:
			lenBytes, hdr = 2, 3
		case mBin32, mStr32, mArray32, mMap32:
			lenBytes, hdr = 4, 5
		case mExt8:
			lenBytes, hdr = 1, 3
		case mExt16:
			lenBytes, hdr = 2, 4
		case mExt32:
			lenBytes, hdr = 4, 6
		default: // 0xc1
			return 0, ErrMalformed
		}
		if p+1+lenBytes > lim {
			return 0, ErrTooLarge
		}
		if p+1+lenBytes > n {
			return 0, ErrShort
		}
		var size uint64
		switch lenBytes {
		case 1:
			size = uint64(b[p+1])
		case 2:
			size = uint64(binary.BigEndian.Uint16(b[p+1:]))
		default:
			size = uint64(binary.BigEndian.Uint32(b[p+1:]))
		}
		p += hdr
		switch c {
		case mArray16, mArray32:
			pending += size
		case mMap16, mMap32:
			pending += 2 * size
		default:
			p += size
		}
	}
	if p > lim {
		return 0, ErrTooLarge
	}
	if p > n {
		return 0, ErrShort
	}
	return int(p), nil
}

// Skip returns b without its first value, or ok=false if b does not hold a
// complete, well-formed value (nesting costs no stack). It never allocates.
func Skip(b []byte) (rest []byte, ok bool) {
	n, err := valueLen(b, 0)
	if err != nil {
		return b, false
	}
	return b[n:], true
}

// isStrBin reports whether c starts a str or bin value.
func isStrBin(c byte) bool {
	return (c >= 0xa0 && c <= 0xbf) || c == mStr8 || c == mStr16 || c == mStr32 ||
		c == mBin8 || c == mBin16 || c == mBin32
}

// isArray reports whether c starts an array.
func isArray(c byte) bool { return (c >= 0x90 && c <= 0x9f) || c == mArray16 || c == mArray32 }

// isMap reports whether c starts a map.
func isMap(c byte) bool { return (c >= 0x80 && c <= 0x8f) || c == mMap16 || c == mMap32 }

// ReadStrBin reads a str or bin value at the start of b as a view into b
// (capacity capped at its length) and returns the bytes after it. ok is
// false, without allocating, if b does not start with a complete str or
// bin.
func ReadStrBin(b []byte) (v, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, b, false
	}
	c := b[0]
	var hdr, size int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		hdr, size = 1, int(c&0x1f)
	case c == mStr8 || c == mBin8:
		if len(b) < 2 {
			return nil, b, false
		}
		hdr, size = 2, int(b[1])
	case c == mStr16 || c == mBin16:
		if len(b) < 3 {
			return nil, b, false
		}
		hdr, size = 3, int(binary.BigEndian.Uint16(b[1:]))
	case c == mStr32 || c == mBin32:
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

// readContainer reads an array (wantMap false) or map (wantMap true) header. For a map, n is
// the number of key/value pairs.
func readContainer(b []byte, wantMap bool) (n int, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	c := b[0]
	fix, c16, c32 := byte(0x90), byte(mArray16), byte(mArray32)
	if wantMap {
		fix, c16, c32 = 0x80, mMap16, mMap32
	}
	switch {
	case c >= fix && c <= fix+0x0f:
		return int(c & 0x0f), b[1:], true
	case c == c16:
		if len(b) < 3 {
			return 0, b, false
		}
		return int(binary.BigEndian.Uint16(b[1:])), b[3:], true
	case c == c32:
		if len(b) < 5 {
			return 0, b, false
		}
		u := binary.BigEndian.Uint32(b[1:])
		if uint64(u) > uint64(len(b)-5) { // each element takes at least one byte
			return 0, b, false
		}
		return int(u), b[5:], true
	}
	return 0, b, false
}

func readArrayHeader(b []byte) (int, []byte, bool) { return readContainer(b, false) }

// ReadMapHeader reads the header of a map at the start of b: n is its
// number of key/value pairs, rest the bytes after the header. ok is false,
// without allocating, if b does not start with a map header (a map32
// announcing more pairs than bytes follow is refused).
func ReadMapHeader(b []byte) (n int, rest []byte, ok bool) { return readContainer(b, true) }

// readInt reads any msgpack integer (positive/negative fixint, int8..int64,
// uint8..uint64). ok is false for other types and for a uint64 above
// math.MaxInt64.
func readInt(b []byte) (v int64, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	c := b[0]
	if c <= 0x7f {
		return int64(c), b[1:], true
	}
	if c >= 0xe0 {
		return int64(int8(c)), b[1:], true
	}
	var size int
	switch c {
	case mUint8, mInt8:
		size = 1
	case mUint16, mInt16:
		size = 2
	case mUint32, mInt32:
		size = 4
	case mUint64, mInt64:
		size = 8
	default:
		return 0, b, false
	}
	if len(b) < 1+size {
		return 0, b, false
	}
	d := b[1 : 1+size]
	switch c {
	case mUint8:
		v = int64(d[0])
	case mInt8:
		v = int64(int8(d[0]))
	case mUint16:
		v = int64(binary.BigEndian.Uint16(d))
	case mInt16:
		v = int64(int16(binary.BigEndian.Uint16(d)))
	case mUint32:
		v = int64(binary.BigEndian.Uint32(d))
	case mInt32:
		v = int64(int32(binary.BigEndian.Uint32(d)))
	case mUint64:
		u := binary.BigEndian.Uint64(d)
		if u > math.MaxInt64 {
			return 0, b, false
		}
		v = int64(u)
	case mInt64:
		v = int64(binary.BigEndian.Uint64(d))
	}
	return v, b[1+size:], true
}

// eachStrKey calls fn for every entry of the map m whose key is a str or
// bin (other entries are skipped). m must be a complete value, already
// measured. It reports false if m is not a map.
func eachStrKey(m []byte, fn func(k, v []byte)) bool {
	cnt, rest, ok := ReadMapHeader(m)
	if !ok {
		return false
	}
	for range cnt {
		k, after, isStr := ReadStrBin(rest)
		if !isStr {
			after, _ = Skip(rest)
		}
		l, _ := valueLen(after, 0)
		val := after[:l:l]
		rest = after[l:]
		if isStr {
			fn(k, val)
		}
	}
	return true
}

// WithinDepth reports whether the first msgpack value of b is complete and
// nests arrays and maps at most max levels deep (a scalar is at depth 0, a
// map of scalars at 1). It walks iteratively, with a stack of at most max
// entries, and stops at the first level past max, so a hostile value
// nested 100,000 deep costs no more than one max deep.
func WithinDepth(b []byte, max int) bool {
	var stackBuf [80]uint64
	stack := stackBuf[:0] // elements still to read, per open container
	for {
		if len(b) == 0 {
			return false
		}
		n, rest, ok := readContainer(b, false)
		isMap := false
		if !ok {
			n, rest, ok = readContainer(b, true)
			isMap = ok
		}
		if ok {
			if len(stack) >= max {
				return false
			}
			elems := uint64(n)
			if isMap {
				elems *= 2
			}
			b = rest
			if elems > 0 {
				stack = append(stack, elems)
				continue
			}
		} else {
			l, err := valueLen(b, 0)
			if err != nil {
				return false
			}
			b = b[l:]
		}
		// One value done: count it against the containers it closes.
		for {
			if len(stack) == 0 {
				return true
			}
			stack[len(stack)-1]--
			if stack[len(stack)-1] > 0 {
				break
			}
			stack = stack[:len(stack)-1]
		}
	}
}

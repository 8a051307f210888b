package jsonl

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

// MaxDepth is how deep arrays and maps may nest in a record, the record's
// own map counting as level 1 (as in wire.WithinDepth).
const MaxDepth = 64

// codecError is a sentinel error that may also match an error of another
// package with errors.Is.
type codecError struct {
	msg string
	is  error
}

func (e *codecError) Error() string        { return e.msg }
func (e *codecError) Is(target error) bool { return e.is != nil && target == e.is }

// The errors AppendRecord and friends return, as they are (never wrapped,
// never allocated): compare with errors.Is.
var (
	// ErrNotMap: the record is not a msgpack map.
	ErrNotMap error = &codecError{msg: "jsonl: record is not a msgpack map"}
	// ErrTruncated: the record ends inside a value.
	ErrTruncated error = &codecError{msg: "jsonl: truncated msgpack value"}
	// ErrMalformed: the record holds the reserved msgpack byte 0xc1.
	ErrMalformed error = &codecError{msg: "jsonl: malformed msgpack (byte 0xc1)", is: wire.ErrMalformed}
	// ErrDepth: arrays and maps nest deeper than MaxDepth. It also
	// matches msgp.ErrRecursion, which the msgp-based AppendLine returned.
	ErrDepth error = &codecError{msg: "jsonl: record nested deeper than 64 levels", is: msgp.ErrRecursion}
	// ErrKeyType: a map key is not a str, bin, integer or boolean.
	ErrKeyType error = &codecError{msg: "jsonl: map key is not a string, integer or boolean"}
	// ErrTrailing: bytes follow the record's map.
	ErrTrailing error = &codecError{msg: "jsonl: bytes after the record map"}
)

// frame is one open array or map of the value being transcoded.
type frame struct {
	left  uint64 // elements still to read; a map's keys and values both count
	isMap bool
}

// transcodeMembers transcodes the members of a map whose header announced
// pairs key/value pairs and whose '{' is already in dst; b starts at the
// first key. comma says whether members were written before (so the first
// one needs a ','). It writes the closing '}' and returns the bytes after
// the map. trim selects AppendLine's RFC 3339 layout for nested times.
// With added non-nil, found reports which of the fields added reads the
// same as one of the map's own keys (foundTime, foundTag). It walks
// iteratively with a fixed stack of MaxDepth frames.
func transcodeMembers(dst, b []byte, pairs int, comma, trim bool, added *Encoder) (_, _ []byte, found uint8, err error) {
	var stack [MaxDepth]frame
	stack[0] = frame{left: 2 * uint64(pairs), isMap: true}
	sp := 1
	for {
		f := &stack[sp-1]
		if f.left == 0 {
			if f.isMap {
				dst = append(dst, '}')
			} else {
				dst = append(dst, ']')
			}
			sp--
			if sp == 0 {
				return dst, b, found, nil
			}
			comma = true
			continue
		}
		isKey := f.isMap && f.left&1 == 0
		f.left--
		if len(b) == 0 {
			return dst, b, 0, ErrTruncated
		}
		if comma {
			dst = append(dst, ',')
		}
		c := b[0]
		if isKey {
			keyStart, key := len(dst), b
			if dst, b, err = appendKey(dst, b); err != nil {
				return dst, b, 0, err
			}
			if sp == 1 && added != nil {
				found |= added.collides(dst[keyStart:], key)
			}
			dst = append(dst, ':')
			comma = false
			continue
		}
		comma = true
		switch {
		case c <= 0x7f: // positive fixint
			if c < 10 {
				dst = append(dst, '0'+c)
			} else {
				dst = strconv.AppendUint(dst, uint64(c), 10)
			}
			b = b[1:]
			continue
		case c >= 0xe0: // negative fixint
			dst = strconv.AppendInt(dst, int64(int8(c)), 10)
			b = b[1:]
			continue
		case c >= 0xa0 && c <= 0xbf: // fixstr
			n := int(c & 0x1f)
			if len(b) < 1+n {
				return dst, b, 0, ErrTruncated
			}
			dst = AppendString(dst, b[1:1+n])
			b = b[1+n:]
			continue
		case c <= 0x9f: // fixmap, fixarray
			if sp == MaxDepth {
				return dst, b, 0, ErrDepth
			}
			n := uint64(c & 0x0f)
			isMap := c <= 0x8f
			if isMap {
				dst = append(dst, '{')
				n *= 2
			} else {
				dst = append(dst, '[')
			}
			stack[sp] = frame{left: n, isMap: isMap}
			sp++
			b = b[1:]
			comma = false
			continue
		}
		switch c {
		case 0xc0:
			dst = append(dst, "null"...)
			b = b[1:]
		case 0xc2:
			dst = append(dst, "false"...)
			b = b[1:]
		case 0xc3:
			dst = append(dst, "true"...)
			b = b[1:]
		case 0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb: // bin, str
			s, rest, ok := wire.ReadStrBin(b)
			if !ok {
				return dst, b, 0, ErrTruncated
			}
			dst = AppendString(dst, s)
			b = rest
		case 0xca: // float32
			if len(b) < 5 {
				return dst, b, 0, ErrTruncated
			}
			dst = appendFloat(dst, float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:]))), 32)
			b = b[5:]
		case 0xcb: // float64
			if len(b) < 9 {
				return dst, b, 0, ErrTruncated
			}
			dst = appendFloat(dst, math.Float64frombits(binary.BigEndian.Uint64(b[1:])), 64)
			b = b[9:]
		case 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
			if dst, b, err = appendInt(dst, b); err != nil {
				return dst, b, 0, err
			}
		case 0xdc, 0xdd, 0xde, 0xdf: // array16/32, map16/32
			if sp == MaxDepth {
				return dst, b, 0, ErrDepth
			}
			var n uint64
			if c == 0xdc || c == 0xde {
				if len(b) < 3 {
					return dst, b, 0, ErrTruncated
				}
				n = uint64(binary.BigEndian.Uint16(b[1:]))
				b = b[3:]
			} else {
				if len(b) < 5 {
					return dst, b, 0, ErrTruncated
				}
				n = uint64(binary.BigEndian.Uint32(b[1:]))
				b = b[5:]
			}
			isMap := c >= 0xde
			if isMap {
				dst = append(dst, '{')
				n *= 2
			} else {
				dst = append(dst, '[')
			}
			if n > uint64(len(b)) { // each element takes at least a byte
				return dst, b, 0, ErrTruncated
			}
			stack[sp] = frame{left: n, isMap: isMap}
			sp++
			comma = false
		case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // ext
			typ, data, rest, ok := readExt(b)
			if !ok {
				return dst, b, 0, ErrTruncated
			}
			dst = appendExt(dst, typ, data, trim)
			b = rest
		default: // 0xc1
			return dst, b, 0, ErrMalformed
		}
	}
}

// appendKey appends the map key at the start of b as a JSON string: str
// and bin as strings, integers in decimal, booleans as "true"/"false".
func appendKey(dst, b []byte) ([]byte, []byte, error) {
	c := b[0]
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n := int(c & 0x1f)
		if len(b) < 1+n {
			return dst, b, ErrTruncated
		}
		return AppendString(dst, b[1:1+n]), b[1+n:], nil
	case c == 0xc4 || c == 0xc5 || c == 0xc6 || c == 0xd9 || c == 0xda || c == 0xdb:
		s, rest, ok := wire.ReadStrBin(b)
		if !ok {
			return dst, b, ErrTruncated
		}
		return AppendString(dst, s), rest, nil
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		dst = append(dst, '"')
		dst, b, err := appendInt(dst, b)
		if err != nil {
			return dst, b, err
		}
		return append(dst, '"'), b, nil
	case c == 0xc2:
		return append(dst, `"false"`...), b[1:], nil
	case c == 0xc3:
		return append(dst, `"true"`...), b[1:], nil
	case c == 0xc1:
		return dst, b, ErrMalformed
	}
	return dst, b, ErrKeyType
}

// appendInt appends the msgpack integer at the start of b (any of fixint,
// uint8..64, int8..64) in decimal.
func appendInt(dst, b []byte) ([]byte, []byte, error) {
	c := b[0]
	if c <= 0x7f {
		return strconv.AppendUint(dst, uint64(c), 10), b[1:], nil
	}
	if c >= 0xe0 {
		return strconv.AppendInt(dst, int64(int8(c)), 10), b[1:], nil
	}
	size := 1 << ((c - 0xcc) & 3) // cc..cf: uint8..64, d0..d3: int8..64
	if len(b) < 1+size {
		return dst, b, ErrTruncated
	}
	d := b[1 : 1+size]
	switch c {
	case 0xcc:
		dst = strconv.AppendUint(dst, uint64(d[0]), 10)
	case 0xcd:
		dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint16(d)), 10)
	case 0xce:
		dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint32(d)), 10)
	case 0xcf:
		dst = strconv.AppendUint(dst, binary.BigEndian.Uint64(d), 10)
	case 0xd0:
		dst = strconv.AppendInt(dst, int64(int8(d[0])), 10)
	case 0xd1:
		dst = strconv.AppendInt(dst, int64(int16(binary.BigEndian.Uint16(d))), 10)
	case 0xd2:
		dst = strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(d))), 10)
	case 0xd3:
		dst = strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(d)), 10)
	}
	return dst, b[1+size:], nil
}

// appendFloat appends f as encoding/json does (the shortest text that
// reads back as the same float of that size; exponent form below 1e-6 and
// from 1e21), and null for NaN and the infinities, which JSON lacks.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 -> 1e-7, as encoding/json.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// readExt reads the ext value at the start of b (fixext1..16, ext8..32).
func readExt(b []byte) (typ int8, data, rest []byte, ok bool) {
	var hdr, size uint64
	switch c := b[0]; c {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
		hdr, size = 2, 1<<(c-0xd4)
	case 0xc7:
		if len(b) < 3 {
			return 0, nil, b, false
		}
		hdr, size = 3, uint64(b[1])
	case 0xc8:
		if len(b) < 4 {
			return 0, nil, b, false
		}
		hdr, size = 4, uint64(binary.BigEndian.Uint16(b[1:]))
	case 0xc9:
		if len(b) < 6 {
			return 0, nil, b, false
		}
		hdr, size = 6, uint64(binary.BigEndian.Uint32(b[1:]))
	default:
		return 0, nil, b, false
	}
	if uint64(len(b)) < hdr+size {
		return 0, nil, b, false
	}
	return int8(b[hdr-1]), b[hdr : hdr+size], b[hdr+size:], true
}

// appendExt appends an ext value: a time string for a Forward EventTime
// (type 0, 8 bytes) or a msgpack timestamp (type -1, 4, 8 or 12 bytes)
// whose nanoseconds are below 1e9, otherwise the payload as a padded
// standard base64 string.
func appendExt(dst []byte, typ int8, data []byte, trim bool) []byte {
	var (
		sec  int64
		nsec uint32
		ok   bool
	)
	switch {
	case typ == 0 && len(data) == 8:
		sec, nsec, ok = int64(binary.BigEndian.Uint32(data)), binary.BigEndian.Uint32(data[4:]), true
	case typ == -1 && len(data) == 4:
		sec, ok = int64(binary.BigEndian.Uint32(data)), true
	case typ == -1 && len(data) == 8:
		v := binary.BigEndian.Uint64(data)
		sec, nsec, ok = int64(v&(1<<34-1)), uint32(v>>34), true
	case typ == -1 && len(data) == 12:
		nsec, sec, ok = binary.BigEndian.Uint32(data), int64(binary.BigEndian.Uint64(data[4:])), true
	}
	dst = append(dst, '"')
	if ok && nsec < 1e9 {
		dst = appendRFC3339(dst, sec, nsec, trim)
	} else {
		dst = base64.StdEncoding.AppendEncode(dst, data)
	}
	return append(dst, '"')
}

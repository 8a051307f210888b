package forward

import (
	"encoding/binary"
	"errors"
)

// errFrameTooLarge and errFrameMalformed are the framer's verdicts; the
// connection handler turns them into logged, counted closes.
var (
	errFrameTooLarge  = errors.New("forward: request too large")
	errFrameMalformed = errors.New("forward: malformed msgpack")
)

// framer finds the end of the next top-level msgpack value in a stream
// buffer. It is resumable: after a "need more bytes" answer it keeps how far
// it got, so a large request that trickles in is scanned once, not once per
// read (wire.ReadRequest rescans from the start, which would be quadratic).
//
// State is two numbers: p, the offset of the next value header still to
// walk (it may point past the end of the buffer inside a str/bin payload),
// and pending, the number of values still to walk. An array of n elements
// adds n, a map 2n; nesting therefore costs no memory.
type framer struct {
	p, pending uint64
}

// next returns the length of the top-level value starting at b[0] once it is
// complete. It returns (0, false, nil) when more bytes are needed; call it
// again with the same start and more bytes. limit caps the value's length:
// as soon as a header announces more, it fails with errFrameTooLarge,
// without waiting for the bytes. After a complete value or an error the
// framer is reset for the next value.
func (f *framer) next(b []byte, limit int) (n int, ok bool, err error) {
	if f.pending == 0 && f.p == 0 {
		f.pending = 1
	}
	lim, size := uint64(limit), uint64(len(b))
	for f.pending > 0 {
		if f.p+f.pending > lim { // each pending value takes a byte at least
			f.reset()
			return 0, false, errFrameTooLarge
		}
		if f.p >= size {
			return 0, false, nil
		}
		c := b[f.p]
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
			f.p++
			f.pending--
			continue
		case c <= 0x8f: // fixmap
			f.p++
			f.pending = f.pending - 1 + 2*uint64(c&0x0f)
			continue
		case c <= 0x9f: // fixarray
			f.p++
			f.pending = f.pending - 1 + uint64(c&0x0f)
			continue
		case c <= 0xbf: // fixstr
			f.p += 1 + uint64(c&0x1f)
			f.pending--
			continue
		}
		var fixed, hdr uint64
		switch c {
		case 0xc0, 0xc2, 0xc3: // nil, false, true
			fixed = 1
		case 0xcc, 0xd0: // uint8, int8
			fixed = 2
		case 0xcd, 0xd1: // uint16, int16
			fixed = 3
		case 0xca, 0xce, 0xd2: // float32, uint32, int32
			fixed = 5
		case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
			fixed = 9
		case 0xd4: // fixext1
			fixed = 3
		case 0xd5: // fixext2
			fixed = 4
		case 0xd6: // fixext4
			fixed = 6
		case 0xd7: // fixext8
			fixed = 10
		case 0xd8: // fixext16
			fixed = 18
		case 0xc4, 0xd9, 0xc7: // bin8, str8, ext8 (ext adds its type byte below)
			hdr = 2
		case 0xc5, 0xda, 0xdc, 0xde, 0xc8: // bin16, str16, array16, map16, ext16
			hdr = 3
		case 0xc6, 0xdb, 0xdd, 0xdf, 0xc9: // bin32, str32, array32, map32, ext32
			hdr = 5
		default: // 0xc1, never used
			f.reset()
			return 0, false, errFrameMalformed
		}
		if fixed > 0 {
			f.p += fixed
			f.pending--
			continue
		}
		if f.p+hdr > lim {
			f.reset()
			return 0, false, errFrameTooLarge
		}
		if f.p+hdr > size {
			return 0, false, nil
		}
		var l uint64
		switch hdr {
		case 2:
			l = uint64(b[f.p+1])
		case 3:
			l = uint64(binary.BigEndian.Uint16(b[f.p+1:]))
		default:
			l = uint64(binary.BigEndian.Uint32(b[f.p+1:]))
		}
		f.p += hdr
		f.pending--
		switch c {
		case 0xdc, 0xdd: // array
			f.pending += l
		case 0xde, 0xdf: // map
			f.pending += 2 * l
		case 0xc7, 0xc8, 0xc9: // ext: type byte then payload
			f.p += 1 + l
		default:
			f.p += l
		}
	}
	if f.p > lim {
		f.reset()
		return 0, false, errFrameTooLarge
	}
	if f.p > size {
		return 0, false, nil
	}
	n = int(f.p)
	f.reset()
	return n, true, nil
}

func (f *framer) reset() { f.p, f.pending = 0, 0 }

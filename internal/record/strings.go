package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// JSON string decoding, shared with the docker input's json-file line
// parser. Errors are sentinels so that bad input never allocates.
var (
	ErrUnterminated = errors.New("unterminated string")
	ErrBadEscape    = errors.New("invalid escape sequence")
)

// SkipWS returns the index of the first byte at or after i that is not
// JSON whitespace (space, tab, CR, LF), or len(b).
func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// ScanSpecial returns the index of the first '"' or '\\' in s at or after
// i, or len(s). It tests eight bytes at a time (SWAR). It suits short
// strings (keys, timestamps); see findSpecial for strings of any length.
func ScanSpecial(s []byte, i int) int {
	for ; i+8 <= len(s); i += 8 {
		if t := specialBytes(binary.LittleEndian.Uint64(s[i:])); t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			return i
		}
	}
	return len(s)
}

// specialBytes returns a mask with the high bit set in the byte lanes of x
// (little endian) up to and including the first '"' or '\\'; for the first
// such byte the zero-byte test is exact.
func specialBytes(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	b := x ^ (lo * '\\')
	return ((q-lo)&^q | (b-lo)&^b) & hi
}

// findSpecial is ScanSpecial for strings of any length: SWAR over the
// first 32 bytes, which beats a SIMD call on the short strings of log
// records, then two SIMD scans (the quote, then a backslash before it).
func findSpecial(s []byte, i int) int {
	for end := min(len(s), i+32); i+8 <= end; i += 8 {
		if t := specialBytes(binary.LittleEndian.Uint64(s[i:])); t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	if len(s)-i < 8 {
		return ScanSpecial(s, i)
	}
	q := bytes.IndexByte(s[i:], '"')
	if q < 0 {
		q = len(s) - i
	}
	if b := bytes.IndexByte(s[i:i+q], '\\'); b >= 0 {
		return i + b
	}
	return i + q
}

// skipWSBack returns the length of b without trailing whitespace.
func skipWSBack(b []byte) int {
	n := len(b)
	for n > 0 {
		switch b[n-1] {
		case ' ', '\t', '\r', '\n':
			n--
		default:
			return n
		}
	}
	return n
}

// AppendUnescaped decodes the JSON string whose content starts at s[i]
// (just after the opening quote), appends it to dst and returns the index
// just past the closing quote. Raw control characters and invalid UTF-8 are
// passed through; escapes are decoded as encoding/json does (lone
// surrogates become U+FFFD).
func AppendUnescaped(dst, s []byte, i int) ([]byte, int, error) {
	// Long values: two SIMD scans (closing quote, then backslashes before
	// it) beat one SWAR scan for both.
	q := -1 // index of the next '"' at or after i, once known
	start := i
	for {
		if q < i {
			k := bytes.IndexByte(s[i:], '"')
			if k < 0 {
				if bytes.IndexByte(s[i:], '\\') >= 0 {
					q = len(s) // decode the escapes to report the right error
				} else {
					return dst, len(s), ErrUnterminated
				}
			} else {
				q = i + k
			}
		}
		j := -1
		if i > start {
			// After an escape the next one is often close: a short loop
			// costs less than a SIMD call.
			for k, lim := i, min(q, i+16); k < lim; k++ {
				if s[k] == '\\' {
					j = k
					break
				}
			}
			if j < 0 && i+16 < q {
				if k := bytes.IndexByte(s[i+16:q], '\\'); k >= 0 {
					j = i + 16 + k
				}
			}
		} else if k := bytes.IndexByte(s[i:q], '\\'); k >= 0 {
			j = i + k
		}
		if j < 0 {
			if q >= len(s) {
				return append(dst, s[i:]...), len(s), ErrUnterminated
			}
			return append(dst, s[i:q]...), q + 1, nil
		}
		dst = append(dst, s[i:j]...)
		// Inline fast path for \u00XX (Docker's <, >, &, tab, control
		// bytes), the most frequent escape after \n.
		if j+5 < len(s) && s[j+1] == 'u' && s[j+2] == '0' && s[j+3] == '0' {
			if h, l := unhex(s[j+4]), unhex(s[j+5]); h < 8 && l < 16 {
				dst = append(dst, h<<4|l)
				i = j + 6
				continue
			}
		}
		var err error
		if dst, i, err = appendEscape(dst, s, j); err != nil {
			return dst, i, err
		}
	}
}

// appendEscape decodes the escape sequence at s[i] == '\\'.
func appendEscape(dst, s []byte, i int) ([]byte, int, error) {
	if i+1 >= len(s) {
		return dst, i, ErrUnterminated
	}
	c := s[i+1]
	if c == 'u' && i+5 < len(s) && s[i+2] == '0' && s[i+3] == '0' {
		// \u00XX: Docker's escapes of <, >, &, tab and control bytes.
		if h, l := unhex(s[i+4]), unhex(s[i+5]); h|l < 16 {
			if r := h<<4 | l; r < utf8.RuneSelf {
				return append(dst, r), i + 6, nil
			}
		}
	}
	if c, ok := UnescapeByte(c); ok {
		return append(dst, c), i + 2, nil
	}
	if c != 'u' {
		return dst, i, ErrBadEscape
	}
	r, ok := Hex4(s[i+2:])
	if !ok {
		return dst, i, ErrBadEscape
	}
	i += 6
	if r >= 0xD800 && r < 0xE000 {
		// A high surrogate followed by an escaped low surrogate forms one
		// code point; anything else is a lone surrogate.
		if r < 0xDC00 && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
			if r2, ok := Hex4(s[i+2:]); ok && r2 >= 0xDC00 && r2 < 0xE000 {
				return utf8.AppendRune(dst, 0x10000+(r-0xD800)<<10+(r2-0xDC00)), i + 6, nil
			}
		}
		r = utf8.RuneError
	}
	return utf8.AppendRune(dst, r), i, nil
}

// unhex returns the value of a hex digit, or 16.
func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 16
}

// UnescapeByte returns the byte a one-character escape stands for: c is
// the byte after the backslash (n, t, r, b, f, ", \ or /). ok is false for
// any other byte, including u.
// (It maps the byte after '\\' of a one-character escape.
func UnescapeByte(c byte) (byte, bool) {
	switch c {
	case 'n':
		return '\n', true
	case '"', '\\', '/':
		return c, true
	case 't':
		return '\t', true
	case 'r':
		return '\r', true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	}
	return 0, false
}

// Hex4 decodes the four hex digits of a \uXXXX escape at the start of b.
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		v := unhex(c)
		if v > 15 {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// skipString returns the index just past the closing quote of the JSON
// string whose content starts at s[i], checking each escape as
// AppendUnescaped would decode it, without decoding. ok is false where
// AppendUnescaped fails.
func skipString(s []byte, i int) (int, bool) {
	for {
		i = findSpecial(s, i)
		if i >= len(s) {
			return len(s), false
		}
		if s[i] == '"' {
			return i + 1, true
		}
		if i+1 >= len(s) {
			return len(s), false
		}
		if _, ok := UnescapeByte(s[i+1]); ok {
			i += 2
		} else if _, ok := Hex4(s[i+2:]); ok && s[i+1] == 'u' {
			i += 6
		} else {
			return i, false
		}
	}
}

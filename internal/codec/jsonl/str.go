package jsonl

import (
	"encoding/binary"
	"unicode/utf8"
)

// plain[c] is true for the bytes a JSON string takes as they are without
// looking further: printable ASCII other than '"' and '\\'. DEL (0x7f) is
// valid unescaped JSON and is plain.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// SWAR constants: one bit or value per byte of a little-endian uint64.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// needsLook reports whether the 8 bytes of w may hold a byte that is not
// plain: a control byte (< 0x20), '"', '\\' or a byte >= 0x80. It has no
// false negatives; a false positive only costs the byte loop.
func needsLook(w uint64) bool {
	ctl := (w - 0x20*lsb) &^ w         // high bit set where a byte < 0x20 (or >= 0x80 after a borrow)
	q := w ^ ('"' * lsb)               // zero bytes where '"'
	bs := w ^ ('\\' * lsb)             // zero bytes where '\\'
	quote := (q - lsb) &^ q            // high bit where a byte of q is 0
	back := (bs - lsb) &^ bs           // same for '\\'
	return (ctl|quote|back|w)&msb != 0 // w&msb: bytes >= 0x80
}

// AppendString appends s to dst as a quoted JSON string, with the
// package's escaping rules: '"', '\\' and every byte below 0x20 escaped
// (\b \f \n \r \t short, the others \u00XX), each byte that is not part of
// a valid UTF-8 sequence replaced by \ufffd, everything else (including
// DEL, U+2028 and U+2029) copied as is. The result is always valid JSON
// and valid UTF-8. It never allocates when dst has room.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is plain and not yet copied
	i := 0
	for i < len(s) {
		for i+8 <= len(s) && !needsLook(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
		}
		for i < len(s) && plain[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size // valid sequence: copied with the run
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// sanitizedEqual reports whether s, with each invalid UTF-8 byte read as
// U+FFFD (as AppendString writes it), spells want. want is valid UTF-8.
func sanitizedEqual(s []byte, want string) bool {
	for len(s) > 0 && len(want) > 0 {
		r, n := utf8.DecodeRune(s)
		w, m := utf8.DecodeRuneInString(want)
		if r != w {
			return false
		}
		s, want = s[n:], want[m:]
	}
	return len(s) == 0 && len(want) == 0
}

package processors

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"

	"github.com/sluice-agent/sluice/internal/cond"
)

// Builtins are the redact patterns known by name. Each is a hand-written
// scanner (no regexp):
//
//	email           local@domain.tld (local: letters, digits, ._%+-; a
//	                domain with a dot and a TLD of 2+ letters)
//	ipv4            four dot-separated numbers 0-255, not part of a longer
//	                number or dotted sequence
//	credit_card     13-19 digits, optionally grouped by single spaces or
//	                dashes, passing the Luhn check
//	aws_access_key  AKIA or ASIA followed by 16 upper-case letters or digits
//	bearer_token    the token after "Bearer " (any case; the word is kept)
//	jwt             eyJ... three base64url segments separated by dots
var Builtins = []string{"email", "ipv4", "credit_card", "aws_access_key", "bearer_token", "jwt"}

// DefaultMask replaces what redact finds.
const DefaultMask = "[REDACTED]"

type scanner func(s []byte, out []match) []match

type match struct{ start, end int }

var scanners = map[string]scanner{
	"email": scanEmail, "ipv4": scanIPv4, "credit_card": scanCard,
	"aws_access_key": scanAWSKey, "bearer_token": scanBearer, "jwt": scanJWT,
}

type redactor struct {
	scan   []scanner
	custom []*regexp.Regexp
	mask   []byte
}

// redactScratch is a Runner's reusable match list.
type redactScratch struct{ ms []match }

func newRedactor(patterns, custom []string, mask string) (*redactor, error) {
	r := &redactor{mask: []byte(mask)}
	if mask == "" {
		r.mask = []byte(DefaultMask)
	}
	if len(patterns) == 0 && len(custom) == 0 {
		patterns = Builtins
	}
	for i, p := range patterns {
		s, ok := scanners[p]
		if !ok {
			return nil, fmt.Errorf("patterns[%d]: unknown pattern %q (want %v)", i, p, Builtins)
		}
		r.scan = append(r.scan, s)
	}
	for i, c := range custom {
		re, _, _, err := cond.CompileRegex(c)
		if err != nil {
			err.Path = fmt.Sprintf("custom[%d]", i)
			return nil, err
		}
		r.custom = append(r.custom, re)
	}
	return r, nil
}

// redact appends s with every match replaced by the mask to dst; changed
// is false (dst unchanged) when nothing matched.
func (r *redactor) redact(dst, s []byte, scr *redactScratch) (_ []byte, changed bool) {
	ms := scr.ms[:0]
	for _, f := range r.scan {
		ms = f(s, ms)
	}
	for _, re := range r.custom {
		for _, m := range re.FindAllIndex(s, -1) {
			if m[1] > m[0] {
				ms = append(ms, match{m[0], m[1]})
			}
		}
	}
	scr.ms = ms
	if len(ms) == 0 {
		return dst, false
	}
	slices.SortFunc(ms, func(a, b match) int { return a.start - b.start })
	at := 0
	for _, m := range ms {
		if m.start < at { // overlaps the previous match: one mask for both
			at = max(at, m.end)
			continue
		}
		dst = append(append(dst, s[at:m.start]...), r.mask...)
		at = m.end
	}
	return append(dst, s[at:]...), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool {
	return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')
}
func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}
func isB64URL(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

func scanEmail(s []byte, out []match) []match {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '@')
		if j < 0 {
			break
		}
		at := i + j
		start := at
		for start > 0 && isEmailLocal(s[start-1]) {
			start--
		}
		end, lastDot := at+1, -1
		for end < len(s) && (isAlnum(s[end]) || s[end] == '-' || s[end] == '.') {
			if s[end] == '.' {
				lastDot = end
			}
			end++
		}
		for end > at+1 && s[end-1] == '.' { // a trailing full stop
			end--
		}
		if lastDot >= end {
			lastDot = bytes.LastIndexByte(s[at+1:end], '.')
			if lastDot >= 0 {
				lastDot += at + 1
			}
		}
		if start < at && lastDot > at+1 && end-lastDot-1 >= 2 && allLetters(s[lastDot+1:end]) {
			out = append(out, match{start, end})
			i = end
			continue
		}
		i = at + 1
	}
	return out
}

func allLetters(b []byte) bool {
	for _, c := range b {
		if c|0x20 < 'a' || c|0x20 > 'z' {
			return false
		}
	}
	return true
}

func scanIPv4(s []byte, out []match) []match {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || (i > 0 && (isDigit(s[i-1]) || s[i-1] == '.')) {
			continue
		}
		j, ok := i, true
		for part := 0; part < 4 && ok; part++ {
			if part > 0 {
				if j >= len(s) || s[j] != '.' {
					ok = false
					break
				}
				j++
			}
			n, d := 0, 0
			for j < len(s) && isDigit(s[j]) && d < 4 {
				n = n*10 + int(s[j]-'0')
				j++
				d++
			}
			ok = d > 0 && d <= 3 && n <= 255
		}
		if ok && (j >= len(s) || !(isDigit(s[j]) || (s[j] == '.' && j+1 < len(s) && isDigit(s[j+1])))) {
			out = append(out, match{i, j})
			i = j
		}
	}
	return out
}

func scanCard(s []byte, out []match) []match {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || (i > 0 && isDigit(s[i-1])) {
			continue
		}
		// A run of digits, single spaces or dashes between them allowed.
		j, digits, sum := i, 0, 0
		last := i
		for j < len(s) && digits < 20 {
			if isDigit(s[j]) {
				digits++
				last = j + 1
				j++
				continue
			}
			if (s[j] == ' ' || s[j] == '-') && j+1 < len(s) && isDigit(s[j+1]) && isDigit(s[j-1]) {
				j++
				continue
			}
			break
		}
		if digits < 13 || digits > 19 || (last < len(s) && isDigit(s[last])) {
			i = last - 1
			continue
		}
		// Luhn from the rightmost digit.
		dbl := false
		for k := last - 1; k >= i; k-- {
			if !isDigit(s[k]) {
				continue
			}
			d := int(s[k] - '0')
			if dbl {
				if d *= 2; d > 9 {
					d -= 9
				}
			}
			sum += d
			dbl = !dbl
		}
		if sum%10 == 0 {
			out = append(out, match{i, last})
		}
		i = last - 1
	}
	return out
}

func scanAWSKey(s []byte, out []match) []match {
	for i := 0; i+20 <= len(s); i++ {
		if s[i] != 'A' || !(s[i+1] == 'K' || s[i+1] == 'S') || s[i+2] != 'I' || s[i+3] != 'A' {
			continue
		}
		if i > 0 && isAlnum(s[i-1]) {
			continue
		}
		ok := true
		for _, c := range s[i+4 : i+20] {
			if !(isDigit(c) || (c >= 'A' && c <= 'Z')) {
				ok = false
				break
			}
		}
		if ok && (i+20 == len(s) || !isAlnum(s[i+20])) {
			out = append(out, match{i, i + 20})
			i += 19
		}
	}
	return out
}

var (
	bearer   = []byte("bearer ")
	jwtStart = []byte("eyJ")
)

func scanBearer(s []byte, out []match) []match {
	for i := 0; i+len(bearer) < len(s); i++ {
		if s[i]|0x20 != 'b' || (i > 0 && isAlnum(s[i-1])) {
			continue
		}
		if !bytes.EqualFold(s[i:i+len(bearer)], bearer) {
			continue
		}
		j := i + len(bearer)
		for j < len(s) && s[j] == ' ' {
			j++
		}
		k := j
		for k < len(s) && (isB64URL(s[k]) || s[k] == '.' || s[k] == '~' || s[k] == '+' || s[k] == '/' || s[k] == '=') {
			k++
		}
		if k-j >= 8 {
			out = append(out, match{j, k})
			i = k
		}
	}
	return out
}

func scanJWT(s []byte, out []match) []match {
	for i := 0; i < len(s); {
		j := bytes.Index(s[i:], jwtStart)
		if j < 0 {
			break
		}
		start := i + j
		if start > 0 && isB64URL(s[start-1]) {
			i = start + 3
			continue
		}
		k, segs := start, 0
		for segs < 3 {
			n := k
			for k < len(s) && isB64URL(s[k]) {
				k++
			}
			if k-n < 2 {
				break
			}
			segs++
			if segs < 3 && k < len(s) && s[k] == '.' {
				k++
				continue
			}
			break
		}
		if segs == 3 {
			out = append(out, match{start, k})
			i = k
			continue
		}
		i = start + 3
	}
	return out
}

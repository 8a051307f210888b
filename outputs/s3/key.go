package s3

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// Markers stand for the placeholders rendered only when an object is
// uploaded; template text and sanitized values never hold a NUL byte.
const (
	markUnique = "\x00u"
	markIndex  = "\x00i"
)

// keyTemplate is a parsed key template, fixed for one output.
type keyTemplate struct {
	parts    []config.S3KeyPart
	hostname string // sanitized
	ext      string
	usesTag  bool
	// span is the time granularity of the template's finest directive:
	// spanNone (no time directive), spanSecond ... spanYear.
	span int
}

const (
	spanNone = iota
	spanYear
	spanMonth
	spanDay
	spanHour
	spanMinute
	spanSecond
)

func newKeyTemplate(tmpl, hostname, ext string) (*keyTemplate, error) {
	parts, err := config.ParseS3Key(tmpl)
	if err != nil {
		return nil, err
	}
	k := &keyTemplate{parts: parts, hostname: string(appendSanitized(nil, []byte(hostname))), ext: ext}
	if k.hostname == "" {
		k.hostname = "unknown"
	}
	for _, p := range parts {
		switch p.Kind {
		case config.S3Tag:
			k.usesTag = true
		case config.S3Time:
			s := spanNone
			switch p.Text[0] {
			case 'Y', 'y':
				s = spanYear
			case 'm':
				s = spanMonth
			case 'd', 'j':
				s = spanDay
			case 'H':
				s = spanHour
			case 'M':
				s = spanMinute
			case 'S':
				s = spanSecond
			}
			k.span = max(k.span, s)
		}
	}
	return k, nil
}

// bucket returns the time range [lo, hi) in unix nanoseconds of the time
// partition holding ns: every time in it renders the same key.
func (k *keyTemplate) bucket(ns int64) (lo, hi int64) {
	if k.span == spanNone {
		return -1 << 63, 1<<63 - 1
	}
	t := time.Unix(0, ns).UTC()
	var a, b time.Time
	y, m, d := t.Date()
	switch k.span {
	case spanYear:
		a = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		b = a.AddDate(1, 0, 0)
	case spanMonth:
		a = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		b = a.AddDate(0, 1, 0)
	case spanDay:
		a = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		b = a.AddDate(0, 0, 1)
	case spanHour:
		a = t.Truncate(time.Hour)
		b = a.Add(time.Hour)
	case spanMinute:
		a = t.Truncate(time.Minute)
		b = a.Add(time.Minute)
	default:
		a = t.Truncate(time.Second)
		b = a.Add(time.Second)
	}
	return a.UnixNano(), b.UnixNano()
}

// appendPartition appends the key of an event with tag and time ns, with
// markers for {unique} and {index}: events with equal partitions go to
// one object.
func (k *keyTemplate) appendPartition(dst, tag []byte, ns int64) []byte {
	var t time.Time
	if k.span != spanNone {
		t = time.Unix(0, ns).UTC()
	}
	for _, p := range k.parts {
		switch p.Kind {
		case config.S3Text:
			dst = append(dst, p.Text...)
		case config.S3Tag:
			v := tag
			if p.N >= 0 {
				v = tagPart(tag, p.N)
			}
			if len(v) == 0 {
				dst = append(dst, '_')
			} else {
				dst = appendSanitized(dst, v)
			}
		case config.S3Hostname:
			dst = append(dst, k.hostname...)
		case config.S3Unique:
			dst = append(dst, markUnique...)
		case config.S3Index:
			dst = append(dst, markIndex...)
		case config.S3Ext:
			dst = append(dst, k.ext...)
		case config.S3Time:
			dst = appendTimeField(dst, t, p.Text[0])
		}
	}
	return dst
}

func appendTimeField(dst []byte, t time.Time, d byte) []byte {
	pad := func(dst []byte, v, width int) []byte {
		s := strconv.Itoa(v)
		for i := len(s); i < width; i++ {
			dst = append(dst, '0')
		}
		return append(dst, s...)
	}
	switch d {
	case 'Y':
		return pad(dst, t.Year(), 4)
	case 'y':
		return pad(dst, t.Year()%100, 2)
	case 'm':
		return pad(dst, int(t.Month()), 2)
	case 'd':
		return pad(dst, t.Day(), 2)
	case 'j':
		return pad(dst, t.YearDay(), 3)
	case 'H':
		return pad(dst, t.Hour(), 2)
	case 'M':
		return pad(dst, t.Minute(), 2)
	case 'S':
		return pad(dst, t.Second(), 2)
	}
	return dst
}

// tagPart returns the n-th dot-separated part of tag, nil if it has fewer.
func tagPart(tag []byte, n int) []byte {
	for i := 0; ; i++ {
		j := bytes.IndexByte(tag, '.')
		if i == n {
			if j < 0 {
				return tag
			}
			return tag[:j]
		}
		if j < 0 {
			return nil
		}
		tag = tag[j+1:]
	}
}

// safeKeyByte reports the characters S3 documents as safe in keys
// (letters, digits, !-_.*'()); others are replaced in tags and hostnames.
func safeKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!-_.*'()", c) >= 0
}

func appendSanitized(dst, v []byte) []byte {
	for _, c := range v {
		if !safeKeyByte(c) {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// finalKey renders a partition into an object key with a fresh unique id
// and the object's index.
func finalKey(partition string, index uint64, now time.Time) string {
	if !strings.Contains(partition, "\x00") {
		return partition
	}
	var u [26]byte
	s := strings.ReplaceAll(partition, markUnique, string(appendULID(u[:0], now)))
	return strings.ReplaceAll(s, markIndex, strconv.FormatUint(index, 10))
}

// crockford is the alphabet of {unique}: Crockford's base32 (no I L O U),
// which sorts as the numbers it encodes.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// appendULID appends a ULID-like id: 48 bits of milliseconds since 1970
// then 80 random bits, as 26 base32 characters (time-ordered, unique
// without coordination across hosts and restarts).
func appendULID(dst []byte, now time.Time) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	// 128 bits as 26 five-bit groups, the first holding 3 bits.
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return append(dst, out[:]...)
}

// staticPrefix is the template's text before its first placeholder: the
// prefix listing calls use.
func (k *keyTemplate) staticPrefix() string {
	if len(k.parts) > 0 && k.parts[0].Kind == config.S3Text {
		return k.parts[0].Text
	}
	return ""
}

// matcher returns a regexp matching every key this template renders on
// this host, whatever the extension (format and compression may have
// changed since a crash).
func (k *keyTemplate) matcher() *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, p := range k.parts {
		switch p.Kind {
		case config.S3Text:
			b.WriteString(regexp.QuoteMeta(p.Text))
		case config.S3Tag:
			b.WriteString(`[A-Za-z0-9!_.*'()-]+`)
		case config.S3Hostname:
			b.WriteString(regexp.QuoteMeta(k.hostname))
		case config.S3Unique:
			b.WriteString(`[0-9A-HJKMNP-TV-Z]{26}`)
		case config.S3Index:
			b.WriteString(`[0-9]+`)
		case config.S3Ext:
			b.WriteString(`\.(json|log)(\.gz|\.zst)?`)
		case config.S3Time:
			switch p.Text[0] {
			case 'Y':
				b.WriteString(`[0-9]{4}`)
			case 'j':
				b.WriteString(`[0-9]{3}`)
			default:
				b.WriteString(`[0-9]{2}`)
			}
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

package jsonl

import (
	"strconv"
	"time"
)

// TimeFormat says how the time field an Encoder adds is written.
type TimeFormat uint8

const (
	// RFC3339Nano writes a JSON string in UTC with exactly nine fraction
	// digits, 2024-01-02T03:04:05.120000000Z: fixed width, so it sorts as
	// text, and Elasticsearch's date and date_nanos types parse it. (This
	// is not the trimmed layout of time.RFC3339Nano; AppendLine keeps that
	// one.)
	RFC3339Nano TimeFormat = iota
	// EpochSeconds writes a JSON number, the seconds since 1970 with
	// exactly nine fraction digits: 1704164645.120000000. It is exact as
	// text; a decoder reading it into a float64 keeps about microseconds.
	EpochSeconds
	// EpochMillis writes an integer, the milliseconds since 1970 rounded
	// down (towards the past, also before 1970).
	EpochMillis
	// EpochNanos writes an integer, the nanoseconds since 1970.
	EpochNanos

	numTimeFormats
)

func (f TimeFormat) String() string {
	switch f {
	case RFC3339Nano:
		return "rfc3339nano"
	case EpochSeconds:
		return "epoch_seconds"
	case EpochMillis:
		return "epoch_millis"
	case EpochNanos:
		return "epoch_nanos"
	}
	return "TimeFormat(" + strconv.Itoa(int(f)) + ")"
}

// splitNano returns unixNano as seconds and nanoseconds in [0, 1e9).
func splitNano(unixNano int64) (sec int64, nsec uint32) {
	sec, ns := unixNano/1e9, unixNano%1e9
	if ns < 0 {
		sec--
		ns += 1e9
	}
	return sec, uint32(ns)
}

// appendNanoDigits appends v (< 1e9) as exactly nine digits.
func appendNanoDigits(dst []byte, v uint32) []byte {
	var b [9]byte
	for i := 8; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:]...)
}

func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }

// appendRFC3339 appends sec.nsec (nsec < 1e9) in UTC, without quotes, as
// 2006-01-02T15:04:05.000000000Z, or with trim as time.RFC3339Nano does
// (trailing fraction zeros dropped, and the dot with them). Years outside
// 0000..9999 (only reachable from a msgpack timestamp nested in a record)
// are left to package time.
func appendRFC3339(dst []byte, sec int64, nsec uint32, trim bool) []byte {
	days := sec / 86400
	rem := sec % 86400
	if rem < 0 {
		days--
		rem += 86400
	}
	// Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
	z := days + 719468
	era := z
	if era < 0 {
		era -= 146096
	}
	era /= 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	if y < 0 || y > 9999 {
		layout := "2006-01-02T15:04:05.000000000Z07:00"
		if trim {
			layout = time.RFC3339Nano
		}
		return time.Unix(sec, int64(nsec)).UTC().AppendFormat(dst, layout)
	}
	yy := int(y)
	dst = append2(dst, yy/100)
	dst = append2(dst, yy%100)
	dst = append(dst, '-')
	dst = append2(dst, int(m))
	dst = append(dst, '-')
	dst = append2(dst, int(d))
	dst = append(dst, 'T')
	r := int(rem)
	dst = append2(dst, r/3600)
	dst = append(dst, ':')
	dst = append2(dst, r/60%60)
	dst = append(dst, ':')
	dst = append2(dst, r%60)
	if !trim || nsec != 0 {
		dst = append(dst, '.')
		dst = appendNanoDigits(dst, nsec)
		if trim {
			for dst[len(dst)-1] == '0' {
				dst = dst[:len(dst)-1]
			}
		}
	}
	return append(dst, 'Z')
}

// appendTime appends unixNano in format f (a JSON value: quoted for
// RFC3339Nano).
func appendTime(dst []byte, unixNano int64, f TimeFormat, trim bool) []byte {
	switch f {
	case EpochSeconds:
		u := uint64(unixNano)
		if unixNano < 0 {
			dst = append(dst, '-')
			u = -u // two's complement: right for math.MinInt64 too
		}
		dst = strconv.AppendUint(dst, u/1e9, 10)
		dst = append(dst, '.')
		return appendNanoDigits(dst, uint32(u%1e9))
	case EpochMillis:
		ms := unixNano / 1e6
		if unixNano%1e6 < 0 {
			ms--
		}
		return strconv.AppendInt(dst, ms, 10)
	case EpochNanos:
		return strconv.AppendInt(dst, unixNano, 10)
	}
	sec, nsec := splitNano(unixNano)
	dst = append(dst, '"')
	dst = appendRFC3339(dst, sec, nsec, trim)
	return append(dst, '"')
}

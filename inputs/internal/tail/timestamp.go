package tail

// Timestamps of log lines, for the Formats: RFC 3339 parsed without
// allocating, as Go's time.RFC3339Nano writes it (Docker json-file
// "time", CRI's leading timestamp) and leniently past that.

// TimeParser parses RFC 3339 timestamps (ParseTime), remembering the date
// and time of day of the last one: lines of one burst share them, so most
// lines only parse their fraction and offset. Its zero value is ready; it
// is not safe for concurrent use (a Format keeps one, on the reader
// goroutine).
type TimeParser struct {
	key  [19]byte // "2006-01-02T15:04:05" of the last timestamp
	base int64
	ok   bool
}

// Parse is ParseTime through the cache.
func (p *TimeParser) Parse(b []byte) (int64, bool) {
	if len(b) >= 20 && p.ok && string(b[:19]) == string(p.key[:]) {
		return parseTimeRest(b[19:], p.base)
	}
	base, ok := parseTimeBase(b)
	if !ok {
		return 0, false
	}
	t, ok := parseTimeRest(b[19:], base)
	if ok {
		copy(p.key[:], b[:19])
		p.base, p.ok = base, true
	}
	return t, ok
}

// ParseTime parses an RFC 3339 timestamp, "2006-01-02T15:04:05" with an
// optional fraction of 1 to 9 digits (Go's RFC3339Nano trims zeros) and a
// "Z" or ±hh:mm offset (any zone: containerd writes the node's local one),
// into nanoseconds since the epoch (UTC), without allocating. "t" or " "
// may stand for "T" and "z" for "Z". Leap seconds do not parse, nor do
// times int64 nanoseconds cannot hold (before 1677-09-23 or after
// 2262-04-09, a day short of the limits so that no offset overflows).
func ParseTime(b []byte) (int64, bool) {
	base, ok := parseTimeBase(b)
	if !ok {
		return 0, false
	}
	return parseTimeRest(b[19:], base)
}

// parseTimeBase parses "2006-01-02T15:04:05" (the first 19 bytes of b, of
// which there must be at least 20) into seconds since the epoch, as ns.
func parseTimeBase(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') ||
		b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	if secs < -maxSecs || secs > maxSecs {
		return 0, false
	}
	return secs * 1e9, true
}

// maxSecs bounds the seconds of a timestamp: int64 nanoseconds hold
// ±9223372036.85 s; two days are kept as a margin for the fraction and
// the offset.
const maxSecs = 9223372036 - 2*86400

// parseTimeRest parses "[.999999999](Z|±07:00)" and adds it to base.
func parseTimeRest(b []byte, base int64) (int64, bool) {
	i := 0
	var nsec int64
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 9 {
				nsec = nsec*10 + int64(b[i]-'0')
			}
			i++
		}
		n := i - start
		if n == 0 || n > 9 {
			return 0, false
		}
		for ; n < 9; n++ {
			nsec *= 10
		}
	}
	if i >= len(b) {
		return 0, false
	}
	var offset int64
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, false
		}
		oh, ok1 := digits(b[i+1 : i+3])
		om, ok2 := digits(b[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600+om*60) * 1e9
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(b) {
		return 0, false
	}
	return base + nsec - offset, true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

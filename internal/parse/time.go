package parse

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Kinds of time format.
const (
	tfAuto    = iota // RFC 3339 text, or a number of seconds
	tfRFC3339        // RFC 3339, any fraction; without an offset: in loc
	tfUnix           // a number of units since the epoch (unit in ns)
	tfCLF            // 02/Jan/2006:15:04:05 -0700 (access logs)
	tfLayout         // a Go layout (time.ParseInLocation)
)

// timeFmt converts time text (or a number) to Unix ns. The fast paths do
// not allocate; a Go layout other than RFC 3339 and the access log's goes
// through time.ParseInLocation, which allocates on failure and for a
// numeric zone offset.
type timeFmt struct {
	kind   int
	unit   int64 // tfUnix, tfAuto: ns per unit of a number
	layout string
	noYear bool // tfLayout without a year: dated by guessYear
	loc    *time.Location
	now    func() time.Time
}

// clfLayout is the access log time ($time_local, %t).
const clfLayout = "02/Jan/2006:15:04:05 -0700"

func newTimeFmt(layout string, loc *time.Location, now func() time.Time) (timeFmt, error) {
	f := timeFmt{unit: 1e9, loc: loc, now: now}
	switch layout {
	case "":
		f.kind = tfAuto
	case "rfc3339", "rfc3339nano", time.RFC3339, time.RFC3339Nano:
		f.kind = tfRFC3339
	case "unix":
		f.kind = tfUnix
	case "unix_ms":
		f.kind, f.unit = tfUnix, 1e6
	case "unix_us":
		f.kind, f.unit = tfUnix, 1e3
	case "unix_ns":
		f.kind, f.unit = tfUnix, 1
	case clfLayout:
		f.kind = tfCLF
	default:
		// A layout that formats some other time as itself has no
		// element in it: a typo, not a layout.
		other := time.Date(1999, 12, 31, 23, 59, 58, 0, time.UTC)
		if other.Format(layout) == layout {
			return f, fmt.Errorf("time layout %q: no time element", layout)
		}
		f.kind, f.layout = tfLayout, layout
		f.noYear = !strings.Contains(layout, "2006") && !strings.Contains(layout, "06")
	}
	return f, nil
}

// parse converts time text.
func (f *timeFmt) parse(b []byte) (int64, bool) {
	switch f.kind {
	case tfAuto:
		if len(b) > 0 && (b[0] == '-' || b[0] == '+' || len(b) < 11 || b[4] != '-') {
			return parseUnix(b, f.unit)
		}
		return parseRFC3339(b, f.loc)
	case tfRFC3339:
		return parseRFC3339(b, f.loc)
	case tfUnix:
		return parseUnix(b, f.unit)
	case tfCLF:
		return parseCLF(b)
	}
	t, err := time.ParseInLocation(f.layout, view(b), f.loc)
	if err != nil {
		return 0, false
	}
	if f.noYear {
		_, mo, d := t.Date()
		h, mi, s := t.Clock()
		return guessYear(f.now(), f.loc, int(mo), d, h, mi, s, t.Nanosecond())
	}
	return unixNano(t)
}

// value converts a msgpack value: a str as text, a number (auto and unix
// kinds only) as units since the epoch.
func (f *timeFmt) value(v []byte) (int64, bool) {
	switch msgp.NextType(v) {
	case msgp.StrType:
		s, _, err := msgp.ReadStringZC(v)
		if err != nil {
			return 0, false
		}
		return f.parse(s)
	case msgp.IntType, msgp.UintType, msgp.Float64Type, msgp.Float32Type:
		if f.kind != tfAuto && f.kind != tfUnix {
			return 0, false
		}
		if n, _, err := msgp.ReadInt64Bytes(v); err == nil {
			if n > math.MaxInt64/f.unit || n < math.MinInt64/f.unit {
				return 0, false
			}
			return n * f.unit, true
		}
		x, _, err := msgp.ReadFloat64Bytes(v)
		if err != nil {
			return 0, false
		}
		// Whole units and the fraction apart: x*unit would round 0.25 s
		// to 249999872 ns.
		whole, frac := math.Modf(x)
		if math.IsNaN(x) || math.Abs(whole) >= float64(math.MaxInt64/f.unit) {
			return 0, false
		}
		return int64(whole)*f.unit + int64(math.Round(frac*float64(f.unit))), true
	}
	return 0, false
}

// unixNano returns t in Unix ns if it is within int64's range.
func unixNano(t time.Time) (int64, bool) {
	if y := t.Year(); y < 1678 || y > 2261 {
		return 0, false
	}
	return t.UnixNano(), true
}

// parseUnix parses [-]digits[.digits] as a number of units (ns per unit:
// 1e9, 1e6, 1e3 or 1) since the epoch; fraction digits past ns precision
// are dropped.
func parseUnix(b []byte, unit int64) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	i := 0
	var n int64
	for ; i < len(b) && b[i]-'0' <= 9; i++ {
		if n > (math.MaxInt64-9)/10 {
			return 0, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 || n > math.MaxInt64/unit {
		return 0, false
	}
	n *= unit
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		var frac, scale int64 = 0, 1
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			if scale < 1e9 {
				frac, scale = frac*10+int64(b[i]-'0'), scale*10
			}
		}
		if i == start {
			return 0, false
		}
		f := frac * unit / scale
		if n > math.MaxInt64-f {
			return 0, false
		}
		n += f
	}
	if i != len(b) {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// parseRFC3339 parses YYYY-MM-DD[T ]hh:mm:ss[.frac](Z|±hh:mm|±hhmm),
// 't' and 'z' allowed; without an offset the time is in loc.
func parseRFC3339(b []byte, loc *time.Location) (int64, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	if c := b[10]; c != 'T' && c != 't' && c != ' ' {
		return 0, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	h, mi, s, ns, n, ok := parseClock(b[11:])
	if !ok {
		return 0, false
	}
	rest := b[11+n:]
	if len(rest) == 0 {
		return civil(y, mo, d, h, mi, s, ns, loc)
	}
	off, ok := parseOffset(rest)
	if !ok {
		return 0, false
	}
	t, ok := civil(y, mo, d, h, mi, s, ns, time.UTC)
	return t - off*1e9, ok
}

// parseClock parses hh:mm:ss[.frac] at the start of b and returns how many
// bytes it took.
func parseClock(b []byte) (h, mi, s, ns, n int, ok bool) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return
	}
	h, ok1 := digits(b[0:2])
	mi, ok2 := digits(b[3:5])
	s, ok3 := digits(b[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || mi > 59 || s > 59 {
		return 0, 0, 0, 0, 0, false
	}
	n = 8
	if n < len(b) && (b[n] == '.' || b[n] == ',') {
		n++
		start, scale := n, 1000000000
		for ; n < len(b) && b[n]-'0' <= 9; n++ {
			if scale > 1 {
				scale /= 10
				ns += int(b[n]-'0') * int(scale)
			}
		}
		if n == start {
			return 0, 0, 0, 0, 0, false
		}
	}
	return h, mi, s, ns, n, true
}

// parseOffset parses the whole of b as Z, ±hh:mm or ±hhmm, in seconds.
func parseOffset(b []byte) (int64, bool) {
	if len(b) == 1 && (b[0] == 'Z' || b[0] == 'z') {
		return 0, true
	}
	if len(b) != 5 && len(b) != 6 || b[0] != '+' && b[0] != '-' {
		return 0, false
	}
	m := b[3:]
	if len(b) == 6 {
		if b[3] != ':' {
			return 0, false
		}
		m = b[4:]
	}
	h, ok1 := digits(b[1:3])
	mi, ok2 := digits(m)
	if !ok1 || !ok2 || h > 23 || mi > 59 {
		return 0, false
	}
	off := int64(h*3600 + mi*60)
	if b[0] == '-' {
		off = -off
	}
	return off, true
}

// parseCLF parses the access log time 10/Oct/2000:13:55:36 -0700.
func parseCLF(b []byte) (int64, bool) {
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[20] != ' ' {
		return 0, false
	}
	d, ok1 := digits(b[0:2])
	mo := month(b[3:6])
	y, ok2 := digits(b[7:11])
	h, mi, s, ns, n, ok3 := parseClock(b[12:20])
	off, ok4 := parseOffset(b[21:])
	if !ok1 || mo == 0 || !ok2 || !ok3 || n != 8 || !ok4 {
		return 0, false
	}
	t, ok := civil(y, mo, d, h, mi, s, ns, time.UTC)
	return t - off*1e9, ok
}

// parseStamp parses the RFC 3164 time "Oct 11 22:14:15" (the day padded
// with a space or a zero, or one space and one digit; a fraction allowed)
// at the start of b and returns its parts and how many bytes it took.
func parseStamp(b []byte) (mo, d, h, mi, s, ns, n int, ok bool) {
	if len(b) < 14 || b[3] != ' ' {
		return
	}
	if mo = month(b[0:3]); mo == 0 {
		return
	}
	i := 4
	if b[i] == ' ' {
		i++
	}
	if b[i]-'0' > 9 {
		return 0, 0, 0, 0, 0, 0, 0, false
	}
	d = int(b[i] - '0')
	i++
	if b[i]-'0' <= 9 {
		d = d*10 + int(b[i]-'0')
		i++
	}
	if i >= len(b) || b[i] != ' ' || d == 0 || d > 31 {
		return 0, 0, 0, 0, 0, 0, 0, false
	}
	h, mi, s, ns, c, ok := parseClock(b[i+1:])
	if !ok {
		return 0, 0, 0, 0, 0, 0, 0, false
	}
	return mo, d, h, mi, s, ns, i + 1 + c, true
}

var months = [12]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// month returns 1 to 12 for a three-letter English month name (any
// case), else 0.
func month(b []byte) int {
	if len(b) != 3 {
		return 0
	}
	m := [3]byte{b[0] | 0x20, b[1] | 0x20, b[2] | 0x20}
	for i, name := range months {
		if string(m[:]) == name {
			return i + 1
		}
	}
	return 0
}

// digits parses b, all ASCII digits, as an int.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c-'0' > 9 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

// civil returns the Unix ns of a date and clock in loc (nil: UTC), false
// if the date does not exist or is out of int64's range.
func civil(y, mo, d, h, mi, s, ns int, loc *time.Location) (int64, bool) {
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || y < 1678 || y > 2261 {
		return 0, false
	}
	if loc != nil && loc != time.UTC {
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, loc).UnixNano(), true
	}
	// Days since 1970-01-01 (H. Hinnant's days_from_civil).
	if mo <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	m := mo + 9
	if mo > 2 {
		m = mo - 3
	}
	doy := (153*m+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := int64(era*146097 + doe - 719468)
	return (days*86400+int64(h*3600+mi*60+s))*1e9 + int64(ns), true
}

func daysIn(y, mo int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// yearSlack is how far in the future a time without a year may be (clock
// skew between the writer and this node).
const yearSlack = 7 * 24 * time.Hour

// guessYear dates a time written without a year (RFC 3164, klog) in loc:
// the latest of next year, this year and last year (this year in loc at
// now) that is at most yearSlack in the future. So a December line read
// in January is last year's, and a January line read on 31 December (the
// writer's clock ahead) next year's.
func guessYear(now time.Time, loc *time.Location, mo, d, h, mi, s, ns int) (int64, bool) {
	y := now.In(loc).Year()
	limit := now.Add(yearSlack).UnixNano()
	for yy := y + 1; yy >= y-1; yy-- {
		if t, ok := civil(yy, mo, d, h, mi, s, ns, loc); ok && (t <= limit || yy == y-1) {
			return t, true
		}
	}
	// 29 February in none of the three years: no such date near now.
	return 0, false
}

// appendTimestamp appends t (Unix ns) as a msgpack timestamp (ext -1):
// the 64-bit form from 1970 on (every int64 ns fits its 34-bit seconds),
// the 96-bit one before.
func appendTimestamp(dst []byte, t int64) []byte {
	sec, nsec := t/1e9, t%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	if sec >= 0 && sec < 1<<34 {
		v := uint64(nsec)<<34 | uint64(sec)
		dst = append(dst, 0xd7, 0xff)
		return append(dst, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	dst = append(dst, 0xc7, 12, 0xff, byte(nsec>>24), byte(nsec>>16), byte(nsec>>8), byte(nsec))
	u := uint64(sec)
	return append(dst, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

package parse

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
	"github.com/tinylib/msgp/msgp"

	_ "time/tzdata" // the zone tests must not depend on the host's zoneinfo
)

func TestNewErrors(t *testing.T) {
	var many strings.Builder
	for i := range MaxFields + 1 {
		fmt.Fprintf(&many, "(?P<g%d>x)", i)
	}
	tests := map[string]struct {
		c    Config
		want string
	}{
		"no type":          {Config{}, "type: missing"},
		"unknown type":     {Config{Type: "csv"}, `type: unknown parser "csv"`},
		"no pattern":       {Config{Type: "regex"}, "pattern: missing"},
		"bad pattern":      {Config{Type: "regex", Pattern: `(?P<a>x`}, "pattern: error parsing regexp"},
		"no named group":   {Config{Type: "regex", Pattern: `(x) (y)`}, "pattern: no named group"},
		"too many groups":  {Config{Type: "regex", Pattern: many.String()}, "pattern: 257 named groups, at most 256"},
		"time key group":   {Config{Type: "regex", Pattern: `(?P<a>x)`, TimeKey: "t"}, `time_key: no group named "t"`},
		"types group":      {Config{Type: "regex", Pattern: `(?P<a>x)`, Types: map[string]string{"b": "int"}}, `types: no group named "b"`},
		"unknown conv":     {Config{Type: "logfmt", Types: map[string]string{"a": "integer"}}, `types: a: unknown type "integer"`},
		"bad conv layout":  {Config{Type: "logfmt", Types: map[string]string{"a": "time:yesterday"}}, `types: a: time layout "yesterday": no time element`},
		"types on builtin": {Config{Type: "nginx", Types: map[string]string{"code": "int"}}, "types: not supported by nginx"},
		"types on json":    {Config{Type: "json", Types: map[string]string{"n": "int"}}, "types: not supported by json"},
		"builtin key":      {Config{Type: "syslog", TimeKey: "timestamp"}, "time_key: syslog has a fixed time field"},
		"builtin layout":   {Config{Type: "klog", TimeLayout: "rfc3339"}, "time_layout: klog has a fixed time format"},
		"bad layout":       {Config{Type: "json", TimeKey: "t", TimeLayout: "when"}, `time layout "when": no time element`},
		"bad zone":         {Config{Type: "klog", TimeZone: "Mars/Olympus"}, "time_zone: unknown time zone Mars/Olympus"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	for _, typ := range typeNames {
		c := Config{Type: typ, TimeKey: "time"}
		if typ == "regex" {
			c.Pattern = `(?P<time>\S+)`
		}
		if _, err := New(c); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

// fields parses line with c and returns the result as a golden line.
func fields(t *testing.T, c Config, line string, skip *record.Keys) string {
	t.Helper()
	if c.now == nil {
		c.now = func() time.Time { return goldenNow }
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ok := p.Parse([]byte(line), skip)
	checkContract(t, p, []byte(line), ok, skip)
	return resultJSON(t, p, ok)
}

func TestSkipAndRepeats(t *testing.T) {
	skip := record.NewKeys("log", "stream", "host", "time")
	tests := []struct {
		c          Config
		line, want string
	}{
		{Config{Type: "logfmt"}, `a=1 log=x a=2 b=3 stream=y b=4`,
			`{"ok":true,"fields":{"a":"1","b":"3"}}`},
		// The time is still taken from a member in the skip set.
		{Config{Type: "logfmt"}, `time=2025-01-01T00:00:00Z msg=x`,
			`{"ok":true,"time":"2025-01-01T00:00:00Z","fields":{"msg":"x"}}`},
		{Config{Type: "logfmt", KeepTimeKey: true}, `time=2025-01-01T00:00:00Z msg=x`,
			`{"ok":true,"time":"2025-01-01T00:00:00Z","fields":{"msg":"x"}}`},
		{Config{Type: "json"}, `{"a":1,"log":"x","a":2}`, `{"ok":true,"fields":{"a":1}}`},
		{Config{Type: "regex", Pattern: `(?P<a>\w+) (?P<host>\w+) (?P<a>\w+)`}, `x y z`,
			`{"ok":true,"fields":{"a":"x"}}`},
		// A duplicate group that did not match leaves the name free.
		{Config{Type: "regex", Pattern: `(?:(?P<a>\d+)|(?P<a>\w+))`}, `xyz`,
			`{"ok":true,"fields":{"a":"xyz"}}`},
		{Config{Type: "nginx"}, `1.2.3.4 h - [07/Dec/2016:11:05:07 +0100] "GET / HTTP/1.1" 200 1 "-" "-"`,
			`{"ok":true,"time":"2016-12-07T10:05:07Z","fields":{"remote":"1.2.3.4","method":"GET","path":"/","protocol":"HTTP/1.1","code":200,"size":1}}`},
		{Config{Type: "syslog"}, `<13>Oct 11 22:14:15 mymachine su: hi`,
			`{"ok":true,"time":"2024-10-11T22:14:15Z","fields":{"pri":13,"ident":"su","message":"hi"}}`},
		{Config{Type: "klog", KeepTimeKey: true}, `I1207 01:52:16.123456 1 a.go:1] m`,
			`{"ok":true,"time":"2024-12-07T01:52:16.123456Z","fields":{"severity":"I","pid":1,"source":"a.go:1","message":"m"}}`},
	}
	for _, tt := range tests {
		if got := fields(t, tt.c, tt.line, skip); got != tt.want {
			t.Errorf("%s %q:\ngot  %s\nwant %s", tt.c.Type, tt.line, got, tt.want)
		}
	}
}

func TestMaxFields(t *testing.T) {
	p, _ := New(Config{Type: "logfmt"})
	var b strings.Builder
	for i := range MaxFields {
		fmt.Fprintf(&b, "k%d=v ", i)
	}
	if !p.Parse([]byte(b.String()), nil) || p.Len() != MaxFields {
		t.Fatalf("%d pairs: not parsed (%d)", MaxFields, p.Len())
	}
	b.WriteString("one=more")
	if p.Parse([]byte(b.String()), nil) {
		t.Fatalf("%d pairs parsed", MaxFields+1)
	}
	checkContract(t, p, nil, false, nil)
}

func TestRegexGroups(t *testing.T) {
	c := Config{Type: "regex", Pattern: `^(\w+) (?P<n>\d+)?(?P<rest>.*)$`, Types: map[string]string{"n": "int"}}
	for line, want := range map[string]string{
		"abc 12 x": `{"ok":true,"fields":{"n":12,"rest":" x"}}`,
		"abc x":    `{"ok":true,"fields":{"rest":"x"}}`, // n did not take part
		"abc ":     `{"ok":true,"fields":{"rest":""}}`,
		"":         `{"ok":false}`,
	} {
		if got := fields(t, c, line, nil); got != want {
			t.Errorf("%q: got %s, want %s", line, got, want)
		}
	}
}

func TestJSONTime(t *testing.T) {
	c := Config{Type: "json", TimeKey: "t"}
	p, _ := New(c)
	line := []byte(`{"a":1,"t":"2025-06-15T10:00:00Z","b":{"c":[1,"x"]}}`)
	if !p.Parse(line, nil) {
		t.Fatal("not parsed")
	}
	checkContract(t, p, line, true, nil)
	if ts, ok := p.Time(); !ok || ts != time.Date(2025, 6, 15, 10, 0, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("time %d %v", ts, ok)
	}
	if _, ok := p.Value([]byte("t")); ok || p.Len() != 2 {
		t.Fatalf("time member kept: %d members", p.Len())
	}
	if v, ok := p.Value([]byte("b")); !ok || msgp.NextType(v) != msgp.MapType {
		t.Fatalf("b: %x %v", v, ok)
	}
	// The next line without a time member uses record.Fields directly.
	if !p.Parse([]byte(`{"x":"y"}`), nil) || p.Len() != 1 {
		t.Fatal("second line")
	}
	if _, ok := p.Time(); ok {
		t.Fatal("time of the previous line held")
	}
}

func TestTimeLayouts(t *testing.T) {
	utc := func(y, mo, d, h, mi, s, ns int) int64 {
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC).UnixNano()
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		layout, zone, in string
		want             int64
		ok               bool
	}{
		{"rfc3339", "", "2025-06-15T10:00:00Z", utc(2025, 6, 15, 10, 0, 0, 0), true},
		{"rfc3339", "", "2025-06-15T10:00:00.5+02:00", utc(2025, 6, 15, 8, 0, 0, 5e8), true},
		{"rfc3339nano", "", "2025-06-15t10:00:00.123456789z", utc(2025, 6, 15, 10, 0, 0, 123456789), true},
		{"rfc3339", "", "2025-06-15 10:00:00,25-0130", utc(2025, 6, 15, 11, 30, 0, 25e7), true},
		{"rfc3339", "", "2025-06-15T10:00:00.1234567891Z", utc(2025, 6, 15, 10, 0, 0, 123456789), true},
		{"rfc3339", "America/New_York", "2025-01-15T10:00:00", utc(2025, 1, 15, 15, 0, 0, 0), true},
		{time.RFC3339, "", "2024-02-29T00:00:00Z", utc(2024, 2, 29, 0, 0, 0, 0), true},
		{"rfc3339", "", "2025-02-29T00:00:00Z", 0, false},
		{"rfc3339", "", "2025-06-15T24:00:00Z", 0, false},
		{"rfc3339", "", "2025-06-15T10:00:00+25:00", 0, false},
		{"rfc3339", "", "2025-06-15T10:00:00.Z", 0, false},
		{"rfc3339", "", "2025-06-15T10:00:00Zjunk", 0, false},
		{"rfc3339", "", "0001-01-01T00:00:00Z", 0, false}, // outside int64 ns
		{"rfc3339", "", "1718445600", 0, false},
		{"unix", "", "1718445600", utc(2024, 6, 15, 10, 0, 0, 0), true},
		{"unix", "", "1718445600.123456789123", utc(2024, 6, 15, 10, 0, 0, 123456789), true},
		{"unix", "", "-1.5", -15e8, true},
		{"unix", "", "1e9", 0, false},
		{"unix", "", "99999999999999999999", 0, false},
		{"unix", "", "", 0, false},
		{"unix_ms", "", "1718445600123", utc(2024, 6, 15, 10, 0, 0, 123e6), true},
		{"unix_us", "", "1718445600123456.5", utc(2024, 6, 15, 10, 0, 0, 123456500), true},
		{"unix_ns", "", "1718445600123456789", utc(2024, 6, 15, 10, 0, 0, 123456789), true},
		{"", "", "2025-06-15T10:00:00Z", utc(2025, 6, 15, 10, 0, 0, 0), true},
		{"", "", "1718445600.5", utc(2024, 6, 15, 10, 0, 0, 5e8), true},
		{"", "", "yesterday", 0, false},
		{clfLayout, "", "10/Oct/2000:13:55:36 -0700", utc(2000, 10, 10, 20, 55, 36, 0), true},
		{clfLayout, "", "10/oct/2000:13:55:36 +0000", utc(2000, 10, 10, 13, 55, 36, 0), true},
		{clfLayout, "", "10/Oct/2000:13:55:36", 0, false},
		{"2006-01-02 15:04:05", "", "2025-06-15 10:00:00", utc(2025, 6, 15, 10, 0, 0, 0), true},
		{"2006-01-02 15:04:05", "America/New_York", "2025-06-15 10:00:00", utc(2025, 6, 15, 14, 0, 0, 0), true},
		{"Mon Jan _2 15:04:05 MST 2006", "", "Sun Jun 15 10:00:00 UTC 2025", utc(2025, 6, 15, 10, 0, 0, 0), true},
		{"02 Jan 06 15:04 -0700", "", "15 Jun 25 10:00 +0200", utc(2025, 6, 15, 8, 0, 0, 0), true},
		// A Go layout without a year is dated like RFC 3164 (goldenNow:
		// 15 June 2025).
		{time.Stamp, "", "Dec 31 23:59:59", utc(2024, 12, 31, 23, 59, 59, 0), true},
		{time.StampMilli, "", "Jun 15 10:00:00.250", utc(2025, 6, 15, 10, 0, 0, 25e7), true},
		{"2006-01-02 15:04:05", "", "2025-06-15T10:00:00", 0, false},
	}
	for _, tt := range tests {
		loc := time.UTC
		if tt.zone != "" {
			loc = ny
		}
		f, err := newTimeFmt(tt.layout, loc, func() time.Time { return goldenNow })
		if err != nil {
			t.Fatal(err)
		}
		got, ok := f.parse([]byte(tt.in))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%q %q: %d %v, want %d %v (%s)", tt.layout, tt.in, got, ok, tt.want, tt.ok, time.Unix(0, got).UTC())
		}
	}
}

func TestTimeValues(t *testing.T) {
	f, _ := newTimeFmt("", time.UTC, time.Now)
	ms, _ := newTimeFmt("unix_ms", time.UTC, time.Now)
	rfc, _ := newTimeFmt("rfc3339", time.UTC, time.Now)
	tests := []struct {
		f    timeFmt
		v    []byte
		want int64
		ok   bool
	}{
		{f, msgp.AppendInt64(nil, 1718445600), 1718445600e9, true},
		{f, msgp.AppendUint64(nil, 1718445600), 1718445600e9, true},
		{f, msgp.AppendFloat64(nil, 1718445600.25), 1718445600e9 + 25e7, true},
		{f, msgp.AppendFloat64(nil, -0.5), -5e8, true},
		{f, msgp.AppendFloat64(nil, 1e300), 0, false},
		{f, msgp.AppendInt64(nil, 1<<62), 0, false},
		{f, msgp.AppendString(nil, "2025-06-15T10:00:00Z"), time.Date(2025, 6, 15, 10, 0, 0, 0, time.UTC).UnixNano(), true},
		{f, msgp.AppendBool(nil, true), 0, false},
		{ms, msgp.AppendInt64(nil, 1718445600123), 1718445600123e6, true},
		{rfc, msgp.AppendInt64(nil, 1718445600), 0, false},
	}
	for i, tt := range tests {
		if got, ok := tt.f.value(tt.v); ok != tt.ok || got != tt.want {
			t.Errorf("%d: %d %v, want %d %v", i, got, ok, tt.want, tt.ok)
		}
	}
}

// TestYearWrap dates times that carry no year (RFC 3164, klog) from
// several clocks.
func TestYearWrap(t *testing.T) {
	at := func(y int, mo time.Month, d, h int) time.Time { return time.Date(y, mo, d, h, 0, 0, 0, time.UTC) }
	tests := []struct {
		now  time.Time
		line string // RFC 3164
		want time.Time
	}{
		{at(2025, 1, 2, 0), "<13>Dec 31 23:00:00 h a: last year's December", at(2024, 12, 31, 23)},
		{at(2025, 1, 2, 0), "<13>Jan  1 23:00:00 h a: yesterday", at(2025, 1, 1, 23)},
		{at(2024, 12, 31, 23), "<13>Jan  1 01:00:00 h a: the writer's clock ahead", at(2025, 1, 1, 1)},
		{at(2025, 6, 15, 12), "<13>Jun 20 00:00:00 h a: 5 days ahead", at(2025, 6, 20, 0)},
		{at(2025, 6, 15, 12), "<13>Jun 25 00:00:00 h a: 10 days ahead: last year", at(2024, 6, 25, 0)},
		{at(2025, 6, 15, 12), "<13>Mar  1 00:00:00 h a: an old file", at(2025, 3, 1, 0)},
		{at(2025, 3, 1, 0), "<13>Feb 29 00:00:00 h a: leap day", at(2024, 2, 29, 0)},
	}
	for _, tt := range tests {
		p, err := New(Config{Type: "syslog_rfc3164", now: func() time.Time { return tt.now }})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Parse([]byte(tt.line), nil) {
			t.Fatalf("%q not parsed", tt.line)
		}
		if got, ok := p.Time(); !ok || got != tt.want.UnixNano() {
			t.Errorf("now %s, %q: %s %v, want %s", tt.now, tt.line, time.Unix(0, got).UTC(), ok, tt.want)
		}
	}
	// No 29 February within a year of now: the line parses, the time is
	// kept as text.
	p, _ := New(Config{Type: "klog", now: func() time.Time { return at(2026, 6, 1, 0) }})
	if !p.Parse([]byte("I0229 00:00:00.000000 1 a.go:1] x"), nil) {
		t.Fatal("not parsed")
	}
	if _, ok := p.Time(); ok {
		t.Fatal("a time for 29 February 2025, 2026 or 2027")
	}
	if v, ok := p.Value([]byte("time")); !ok || string(v[1:]) != "0229 00:00:00.000000" {
		t.Fatalf("time field %q %v", v, ok)
	}
}

func TestTimeZone(t *testing.T) {
	now := func() time.Time { return goldenNow }
	tests := []struct {
		c    Config
		line string
		want time.Time
	}{
		{Config{Type: "klog", TimeZone: "Asia/Tokyo"}, "I0615 09:00:00.000000 1 a.go:1] x", time.Date(2025, 6, 15, 0, 0, 0, 0, time.UTC)},
		{Config{Type: "syslog_rfc3164", TimeZone: "Europe/Paris"}, "<13>Jan 15 12:00:00 h a: CET", time.Date(2025, 1, 15, 11, 0, 0, 0, time.UTC)},
		{Config{Type: "syslog_rfc3164", TimeZone: "Europe/Paris"}, "<13>Jun 15 12:00:00 h a: CEST", time.Date(2025, 6, 15, 10, 0, 0, 0, time.UTC)},
		// An offset in the line wins over the zone.
		{Config{Type: "syslog_rfc5424", TimeZone: "Europe/Paris"}, "<13>1 2025-06-15T12:00:00Z h a - - -", time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)},
		{Config{Type: "syslog_rfc5424", TimeZone: "Europe/Paris"}, "<13>1 2025-06-15T12:00:00 h a - - -", time.Date(2025, 6, 15, 10, 0, 0, 0, time.UTC)},
		{Config{Type: "nginx", TimeZone: "Europe/Paris"}, `1.2.3.4 - - [15/Jun/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 1`, time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)},
		{Config{Type: "logfmt", TimeZone: "Europe/Paris"}, `time="2025-06-15 12:00:00" msg=x`, time.Date(2025, 6, 15, 10, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		tt.c.now = now
		p, err := New(tt.c)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Parse([]byte(tt.line), nil) {
			t.Fatalf("%q not parsed", tt.line)
		}
		if got, ok := p.Time(); !ok || got != tt.want.UnixNano() {
			t.Errorf("%s %q: %s %v, want %s", tt.c.TimeZone, tt.line, time.Unix(0, got).UTC(), ok, tt.want)
		}
	}
}

func TestTypes(t *testing.T) {
	c := Config{Type: "logfmt", Types: map[string]string{
		"i": "int", "f": "float", "b": "bool", "s": "string", "t": "time:unix_ms", "r": "time:rfc3339",
	}}
	tests := map[string]string{
		`i=-9223372036854775808 f=-1.5e-3 b=T s=12 t=1718445600123 r=2025-06-15T10:00:00Z`: `{"ok":true,"fields":{"i":-9223372036854775808,"f":-0.0015,"b":true,"s":"12","t":{"$time":"2024-06-15T10:00:00.123Z"},"r":{"$time":"2025-06-15T10:00:00Z"}}}`,
		`i=9223372036854775808 f=1e999 b=yes t=soon r=1999`:                                `{"ok":true,"fields":{"i":"9223372036854775808","f":"1e999","b":"yes","t":"soon","r":"1999"}}`,
		`i=+7 f=.5 b=0 r=1969-12-31T23:59:59.5Z`:                                           `{"ok":true,"fields":{"i":7,"f":0.5,"b":false,"r":{"$time":"1969-12-31T23:59:59.5Z"}}}`,
		`i= f=1. f2=x`:                                                                     `{"ok":true,"fields":{"i":"","f":1,"f2":"x"}}`,
		`r=2262-01-01T00:00:00Z`:                                                           `{"ok":true,"fields":{"r":"2262-01-01T00:00:00Z"}}`,
	}
	for line, want := range tests {
		if got := fields(t, c, line, nil); got != want {
			t.Errorf("%q:\ngot  %s\nwant %s", line, got, want)
		}
	}
	// 64-bit timestamps from 1970 on, 96-bit ones before.
	for _, ns := range []int64{-1, -15e8, 0, 1 << 62, math.MaxInt64, math.MinInt64} {
		if got, rest, ok := readTimestamp(appendTimestamp(nil, ns)); !ok || got != ns || len(rest) != 0 {
			t.Errorf("timestamp %d: %d %v", ns, got, ok)
		}
	}
}

// TestZeroAllocs proves the hot paths allocation-free after warm-up, for
// accepted and rejected lines (regex: one slice per match).
func TestZeroAllocs(t *testing.T) {
	skip := record.NewKeys("log", "stream")
	for _, bl := range benchLines {
		c := bl.c
		c.now = func() time.Time { return goldenNow }
		p, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range [][]byte{[]byte(bl.line), []byte(bl.line[:len(bl.line)/2] + "\x00")} {
			p.Parse(line, skip)
			want := 0.0
			if c.Type == "regex" {
				if raceEnabled {
					continue
				}
				want = 1
			}
			if n := testing.AllocsPerRun(200, func() { p.Parse(line, skip) }); n > want {
				t.Errorf("%s %q: %.1f allocs per Parse, want %v", bl.name, line, n, want)
			}
		}
	}
}

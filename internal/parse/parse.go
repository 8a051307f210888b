package parse

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/sluice-agent/sluice/internal/record"
	"github.com/tinylib/msgp/msgp"
)

// MaxFields bounds the members one line may produce: a logfmt line with
// more pairs is not parsed (its raw field is kept), so the check for
// repeated keys costs at most MaxFields compares per member.
const MaxFields = 256

// Parser converts one log payload (the log field's bytes, without the
// trailing newline) into msgpack key/value pairs. It has the shape of
// record.Fields so that an input splices its output into a record the same
// way. A Parser keeps and reuses its buffers: it is not safe for
// concurrent use, and what it returns is valid until the next Parse.
type Parser interface {
	// Parse parses line, keeping no key that is in skip (may be nil; the
	// record's own keys) and no repeated key (the first wins). On false
	// the line is not parsed and the parser holds no fields and no time;
	// the caller keeps the raw field and marks the event (parse_error).
	Parse(line []byte, skip *record.Keys) bool
	// Pairs returns the members held as msgpack key/value pairs, Len of
	// them, without a map header.
	Pairs() []byte
	// Len returns the number of members held.
	Len() int
	// Value returns the msgpack value of the member key, if it is held.
	Value(key []byte) ([]byte, bool)
	// Time returns the event time (Unix ns) taken from the parsed line,
	// if the parser has a time field and it converted.
	Time() (int64, bool)
}

// Config selects and configures a parser. The zero value of every field
// but Type is a valid default.
type Config struct {
	// Type is one of json, logfmt, regex, nginx, apache, syslog_rfc3164,
	// syslog_rfc5424, syslog (RFC 5424 if the line starts "<PRI>1 ", else
	// RFC 3164) and klog. logfmt also parses Go's slog TextHandler and
	// logrus text output.
	Type string
	// Pattern is the regex parser's RE2 expression (Go regexp syntax). Its
	// named groups become fields; it must have at least one.
	Pattern string
	// Types converts fields (regex and logfmt only): field name to int,
	// float, bool, string or time:<layout> (layout as TimeLayout). A
	// value that does not convert is kept as a string.
	Types map[string]string
	// TimeKey names the field holding the event time. "" means: none for
	// json and regex, the first member named time or ts for logfmt, and
	// the header's time (field time) for the built-ins, whose TimeKey may
	// only be "" or "time".
	TimeKey string
	// TimeLayout is a Go layout or one of rfc3339, rfc3339nano (both
	// accept any fraction), unix, unix_ms, unix_us, unix_ns. "" means auto
	// for json, logfmt and regex (RFC 3339 text, or a number of seconds);
	// the built-ins have fixed formats and take no TimeLayout.
	TimeLayout string
	// TimeZone is the IANA zone of times written without an offset (RFC
	// 3164 and klog headers, RFC 3339 text without one, Go layouts
	// without a zone); default UTC. It needs the zone database: a binary
	// for an image without /usr/share/zoneinfo must import time/tzdata.
	TimeZone string
	// KeepTimeKey keeps the time field in the record. By default a time
	// field that converted is removed (the event time carries it); one
	// that did not convert is always kept.
	KeepTimeKey bool

	now func() time.Time // tests: the clock that dates RFC 3164 and klog times
}

// New returns the parser c describes. A Parser is owned by one goroutine.
func New(c Config) (Parser, error) {
	loc := time.UTC
	if c.TimeZone != "" {
		l, err := time.LoadLocation(c.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("time_zone: %w", err)
		}
		loc = l
	}
	now := c.now
	if now == nil {
		now = time.Now
	}
	switch c.Type {
	case "logfmt", "regex":
	default:
		if len(c.Types) > 0 && slices.Contains(typeNames, c.Type) {
			return nil, fmt.Errorf("types: not supported by %s", c.Type)
		}
	}
	builtin := func() error {
		if c.TimeKey != "" && c.TimeKey != "time" {
			return fmt.Errorf("time_key: %s has a fixed time field (time)", c.Type)
		}
		if c.TimeLayout != "" {
			return fmt.Errorf("time_layout: %s has a fixed time format", c.Type)
		}
		return nil
	}
	switch c.Type {
	case "json":
		return newJSON(c, loc, now)
	case "logfmt":
		return newLogfmt(c, loc, now)
	case "regex":
		return newRegex(c, loc, now)
	case "nginx", "apache":
		if err := builtin(); err != nil {
			return nil, err
		}
		return &access{nginx: c.Type == "nginx", keep: c.KeepTimeKey}, nil
	case "syslog", "syslog_rfc3164", "syslog_rfc5424":
		if err := builtin(); err != nil {
			return nil, err
		}
		p := &syslog{keep: c.KeepTimeKey, loc: loc, now: now}
		p.mode = map[string]int{"syslog": syslogAuto, "syslog_rfc3164": syslog3164, "syslog_rfc5424": syslog5424}[c.Type]
		return p, nil
	case "klog":
		if err := builtin(); err != nil {
			return nil, err
		}
		return &klog{keep: c.KeepTimeKey, loc: loc, now: now}, nil
	case "":
		return nil, fmt.Errorf("type: missing")
	}
	return nil, fmt.Errorf("type: unknown parser %q (want %s)", c.Type, strings.Join(typeNames, ", "))
}

var typeNames = []string{"json", "logfmt", "regex", "nginx", "apache", "syslog", "syslog_rfc3164", "syslog_rfc5424", "klog"}

// out holds the members a parser produced: msgpack key/value pairs in buf
// and where each one is. The zero value is ready; reset keeps the arrays.
type out struct {
	buf   []byte
	spans []span
	mask  uint64 // keyBit of every kept key
	skip  *record.Keys
	t     int64 // event time, if hasT
	hasT  bool
}

// span locates one member in out.buf: its key's bytes are buf[key:val],
// its msgpack value buf[val:end].
type span struct{ key, val, end int }

func (o *out) reset(skip *record.Keys) {
	o.buf, o.spans, o.mask, o.skip, o.hasT = o.buf[:0], o.spans[:0], 0, skip, false
}

func (o *out) fail() bool {
	o.reset(nil)
	return false
}

func (o *out) Pairs() []byte       { return o.buf }
func (o *out) Len() int            { return len(o.spans) }
func (o *out) Time() (int64, bool) { return o.t, o.hasT }
func (o *out) setTime(t int64)     { o.t, o.hasT = t, true }
func (o *out) has(key []byte) bool { return o.index(key) >= 0 }
func (o *out) full() bool          { return len(o.spans) >= MaxFields }
func (o *out) end()                { o.spans[len(o.spans)-1].end = len(o.buf) }
func (o *out) wants(k []byte) bool { return !o.skip.Has(k) && !o.has(k) }
func (o *out) str(k, v []byte)     { o.add(k, v, rawString) }
func (o *out) strOpt(k, v []byte)  { o.add(k, v, dashNil) }
func (o *out) intOpt(k, v []byte)  { o.add(k, v, intOrStr) }
func (o *out) number(k []byte, n int64) {
	if o.key(k) {
		o.buf = msgp.AppendInt64(o.buf, n)
		o.end()
	}
}

// Value returns the msgpack value of the member key, if it is held.
func (o *out) Value(key []byte) ([]byte, bool) {
	if i := o.index(key); i >= 0 {
		return o.buf[o.spans[i].val:o.spans[i].end], true
	}
	return nil, false
}

func (o *out) index(key []byte) int {
	if o.mask&keyBit(key) == 0 {
		return -1
	}
	for i, s := range o.spans {
		if string(o.buf[s.key:s.val]) == string(key) {
			return i
		}
	}
	return -1
}

// key appends k if it is in neither the skip set nor the members held and
// reports whether it did; the caller then appends exactly one value and
// calls end.
func (o *out) key(k []byte) bool {
	if !o.wants(k) {
		return false
	}
	o.buf = msgp.AppendStringFromBytes(o.buf, k)
	o.spans = append(o.spans, span{key: len(o.buf) - len(k), val: len(o.buf)})
	o.mask |= keyBit(k)
	return true
}

// How add encodes a value.
const (
	rawString = iota // a str
	dashNil          // a str; "-" or "": no member
	intOrStr         // digits: an int, else a str; "-" or "": no member
)

// add appends the member k with value v encoded as mode says.
func (o *out) add(k, v []byte, mode int) {
	if (mode == dashNil || mode == intOrStr) && (len(v) == 0 || len(v) == 1 && v[0] == '-') {
		return
	}
	if !o.key(k) {
		return
	}
	if n, ok := atoi(v); mode == intOrStr && ok {
		o.buf = msgp.AppendInt64(o.buf, n)
	} else {
		o.buf = msgp.AppendStringFromBytes(o.buf, v)
	}
	o.end()
}

// keyBit maps a key to one of 64 bits, a one-word Bloom filter (as in
// package record).
func keyBit(k []byte) uint64 {
	if len(k) == 0 {
		return 1
	}
	return 1 << ((uint(len(k)) + 7*uint(k[0]) + 3*uint(k[len(k)-1])) & 63)
}

// atoi parses a non-empty run of ASCII digits (at most 18) as an int64.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c-'0' > 9 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// view returns b as a string without copying; it must not outlive b's
// contents.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

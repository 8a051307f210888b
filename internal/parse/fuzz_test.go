package parse

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// fuzzSkips are the skip sets every fuzzed line is parsed with: none, the
// docker input's record keys, and keys the parsers produce.
var fuzzSkips = []*record.Keys{
	nil,
	record.NewKeys("log", "stream", "time"),
	record.NewKeys("host", "message", "a", "level", "pid", "code"),
}

// fuzzParsers runs the Parser contract on every fuzzed line, for each
// config and skip set: no panic, false holds nothing, true holds exactly
// Len valid msgpack pairs with no key twice and none skipped, and parsing
// the same line again gives the same result (no state leaks between
// lines through the reused buffers).
func fuzzParsers(f *testing.F, seeds [][]byte, configs ...Config) {
	for _, s := range seeds {
		f.Add(s)
	}
	var ps []Parser
	for _, c := range configs {
		c.now = func() time.Time { return goldenNow }
		p, err := New(c)
		if err != nil {
			f.Fatal(err)
		}
		ps = append(ps, p)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, p := range ps {
			for _, skip := range fuzzSkips {
				ok := p.Parse(line, skip)
				checkContract(t, p, line, ok, skip)
				first := append([]byte(nil), p.Pairs()...)
				t1, h1 := p.Time()
				p.Parse([]byte("x"), skip) // something else in between
				if ok2 := p.Parse(line, skip); ok2 != ok || !bytes.Equal(p.Pairs(), first) {
					t.Fatalf("%q: second parse differs: %v %x, then %v %x", line, ok, first, ok2, p.Pairs())
				}
				if t2, h2 := p.Time(); t1 != t2 || h1 != h2 {
					t.Fatalf("%q: second parse time differs", line)
				}
			}
		}
	})
}

func FuzzNginx(f *testing.F) {
	fuzzParsers(f, goldenInputs(f, "nginx", "apache"),
		Config{Type: "nginx"}, Config{Type: "apache", KeepTimeKey: true})
}

func FuzzSyslog(f *testing.F) {
	fuzzParsers(f, goldenInputs(f, "syslog", "syslog_rfc3164", "syslog_rfc5424"),
		Config{Type: "syslog"}, Config{Type: "syslog_rfc3164", KeepTimeKey: true, TimeZone: "Europe/Paris"},
		Config{Type: "syslog_rfc5424", KeepTimeKey: true})
}

func FuzzLogfmt(f *testing.F) {
	fuzzParsers(f, goldenInputs(f, "logfmt"),
		Config{Type: "logfmt"}, Config{Type: "logfmt", KeepTimeKey: true, TimeKey: "a",
			Types: map[string]string{"status": "int", "dur": "float", "ok": "bool", "at": "time:rfc3339", "level": "int"}})
}

func FuzzKlog(f *testing.F) {
	fuzzParsers(f, goldenInputs(f, "klog"), Config{Type: "klog"}, Config{Type: "klog", KeepTimeKey: true})
}

// FuzzTime checks the hand-written time parsers against package time on
// any input: whatever they accept, time.Parse reads as the same instant.
func FuzzTime(f *testing.F) {
	for _, s := range []string{"2025-06-15T10:00:00.123+02:00", "2025-06-15T10:00:00Z", "2025-06-15 10:00:00.5z",
		"2016-02-29T23:59:59.999999999-07:00", "10/Oct/2000:13:55:36 -0700", "29/Feb/2024:00:00:00 +0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ns, ok := parseRFC3339([]byte(s), time.UTC); ok {
			norm := []byte(s)
			if norm[10] == ' ' || norm[10] == 't' {
				norm[10] = 'T'
			}
			if c := norm[len(norm)-1]; c == 'z' {
				norm[len(norm)-1] = 'Z'
			}
			want, err := time.Parse(time.RFC3339Nano, string(norm))
			if err != nil {
				// Forms Go's RFC 3339 does not take: no offset, ±hhmm,
				// a comma before the fraction.
				want, err = time.ParseInLocation("2006-01-02T15:04:05.999999999", string(norm), time.UTC)
			}
			if err == nil && want.UnixNano() != ns {
				t.Fatalf("%q: %d, time.Parse %d", s, ns, want.UnixNano())
			}
		}
		if ns, ok := parseCLF([]byte(s)); ok {
			want, err := time.Parse(clfLayout, s)
			if err != nil || want.UnixNano() != ns {
				t.Fatalf("%q: %d, time.Parse %v %v", s, ns, want, err)
			}
		}
	})
}

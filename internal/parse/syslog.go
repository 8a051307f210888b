package parse

import (
	"bytes"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// Modes of the syslog parser.
const (
	syslogAuto = iota // RFC 5424 if the line starts "<PRI>1 ", else RFC 3164
	syslog3164
	syslog5424
)

// syslog parses RFC 3164 (BSD) and RFC 5424 syslog lines.
type syslog struct {
	o    out
	mode int
	keep bool
	loc  *time.Location // of RFC 3164 times, which have no offset
	now  func() time.Time
}

func (p *syslog) Pairs() []byte                   { return p.o.Pairs() }
func (p *syslog) Len() int                        { return p.o.Len() }
func (p *syslog) Value(key []byte) ([]byte, bool) { return p.o.Value(key) }
func (p *syslog) Time() (int64, bool)             { return p.o.Time() }

var bom = []byte("\xef\xbb\xbf")

func (p *syslog) Parse(s []byte, skip *record.Keys) bool {
	p.o.reset(skip)
	for len(s) > 0 && (s[len(s)-1] == '\r' || s[len(s)-1] == '\n') {
		s = s[:len(s)-1]
	}
	pri, i := -1, 0
	if len(s) > 0 && s[0] == '<' {
		j := 1
		for j < len(s) && j <= 4 && s[j]-'0' <= 9 {
			j++
		}
		n, ok := digits(s[1:j])
		if !ok || j >= len(s) || s[j] != '>' || n > 191 {
			return false
		}
		pri, i = n, j+1
	}
	is5424 := p.mode == syslog5424 ||
		p.mode == syslogAuto && pri >= 0 && i+1 < len(s) && s[i] == '1' && s[i+1] == ' '
	if is5424 {
		return p.rfc5424(s, pri, i)
	}
	return p.rfc3164(s, pri, i)
}

// rfc3164 parses what follows the PRI (optional here: files written by a
// local syslog daemon have none):
//
//	TIMESTAMP [HOSTNAME] [TAG[[PID]]:] MESSAGE
//
// TIMESTAMP is "Mmm dd hh:mm:ss" (or an RFC 3339 time, as rsyslog writes
// with high precision). A word that ends with ':' or is IDENT[PID] is the
// tag; the word before it, if any, the host.
func (p *syslog) rfc3164(s []byte, pri, i int) bool {
	var tm []byte
	var t int64
	var tok bool
	if i < len(s) && s[i]|0x20-'a' < 26 {
		mo, d, h, mi, sec, ns, n, ok := parseStamp(s[i:])
		if !ok {
			return false
		}
		tm = s[i : i+n]
		t, tok = guessYear(p.now(), p.loc, mo, d, h, mi, sec, ns)
	} else {
		end := bytes.IndexByte(s[i:], ' ')
		if end < 0 {
			end = len(s) - i
		}
		tm = s[i : i+end]
		var ok bool
		if t, ok = parseRFC3339(tm, p.loc); !ok {
			return false
		}
		tok = true
	}
	i += len(tm)
	if i < len(s) && s[i] != ' ' {
		return false
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	var host, ident, pid []byte
	if i < len(s) {
		var ok bool
		if ident, pid, i, ok = syslogTag(s, i); !ok {
			start := i
			for i < len(s) && s[i] != ' ' {
				i++
			}
			host = s[start:i]
			if i < len(s) {
				i++
			}
			var j int
			if ident, pid, j, ok = syslogTag(s, i); ok {
				i = j
			}
		}
	}
	if pri >= 0 {
		p.o.number(kPri, int64(pri))
	}
	if tok {
		p.o.setTime(t)
	}
	if !tok || p.keep {
		p.o.str(kTime, tm)
	}
	if len(host) > 0 {
		p.o.str(kHost, host)
	}
	if len(ident) > 0 {
		p.o.str(kIdent, ident)
	}
	if len(pid) > 0 {
		p.o.intOpt(kPid, pid)
	}
	if i < len(s) {
		p.o.str(kMessage, s[i:])
	}
	return true
}

// syslogTag parses an RFC 3164 tag at s[i]: IDENT: or IDENT[PID]: (the
// colon ending the line or followed by a space), or IDENT[PID] followed by
// a space. next is where the message starts (one space skipped).
func syslogTag(s []byte, i int) (ident, pid []byte, next int, ok bool) {
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '[' && s[j] != ':' {
		j++
	}
	if j == i || j >= len(s) {
		return nil, nil, i, false
	}
	ident = s[i:j]
	if s[j] == '[' {
		k := j + 1
		for k < len(s) && s[k]-'0' <= 9 {
			k++
		}
		if k == j+1 || k >= len(s) || s[k] != ']' {
			return nil, nil, i, false
		}
		pid = s[j+1 : k]
		j = k + 1
	}
	switch {
	case j < len(s) && s[j] == ':' && (j+1 == len(s) || s[j+1] == ' '):
		j++
	case pid != nil && (j == len(s) || s[j] == ' '):
	default:
		return nil, nil, i, false
	}
	if j < len(s) {
		j++ // the space
	}
	return ident, pid, j, true
}

// rfc5424 parses what follows the PRI:
//
//	1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
//
// Header fields are printable US-ASCII words, "-" for none.
func (p *syslog) rfc5424(s []byte, pri, i int) bool {
	if pri < 0 || i+1 >= len(s) || s[i] != '1' || s[i+1] != ' ' {
		return false
	}
	i += 2
	var hdr [5][]byte // timestamp, hostname, app-name, procid, msgid
	for f := range hdr {
		start := i
		for i < len(s) && s[i] > ' ' && s[i] < 0x7f {
			i++
		}
		if i == start || i >= len(s) || s[i] != ' ' {
			return false
		}
		hdr[f] = s[start:i]
		i++
	}
	ts := hdr[0]
	var t int64
	tok := false
	if !(len(ts) == 1 && ts[0] == '-') {
		var ok bool
		if t, ok = parseRFC3339(ts, p.loc); !ok {
			return false
		}
		tok = true
	}
	sdStart := i
	if i < len(s) && s[i] == '-' {
		i++
	} else if i = scanSD(s, i); i < 0 {
		return false
	}
	sd := s[sdStart:i]
	var msg []byte
	if i < len(s) {
		if s[i] != ' ' {
			return false
		}
		msg = bytes.TrimPrefix(s[i+1:], bom)
	}
	p.o.number(kPri, int64(pri))
	if tok {
		p.o.setTime(t)
		if p.keep {
			p.o.str(kTime, ts)
		}
	}
	p.o.strOpt(kHost, hdr[1])
	p.o.strOpt(kIdent, hdr[2])
	p.o.intOpt(kPid, hdr[3])
	p.o.strOpt(kMsgid, hdr[4])
	p.o.strOpt(kExtradata, sd)
	if len(msg) > 0 {
		p.o.str(kMessage, msg)
	}
	return true
}

// scanSD checks the RFC 5424 structured data at s[i], one or more
// [SD-ID *(SP PARAM-NAME="PARAM-VALUE")], and returns the index just past
// it, or -1. In a value, a backslash escapes the next byte (\" \\ \]).
func scanSD(s []byte, i int) int {
	if i >= len(s) || s[i] != '[' {
		return -1
	}
	for i < len(s) && s[i] == '[' {
		if i = sdName(s, i+1); i < 0 {
			return -1
		}
		for {
			if i >= len(s) {
				return -1
			}
			if s[i] == ']' {
				i++
				break
			}
			if s[i] != ' ' {
				return -1
			}
			if i = sdName(s, i+1); i < 0 || i+1 >= len(s) || s[i] != '=' || s[i+1] != '"' {
				return -1
			}
			for i += 2; ; i++ {
				if i >= len(s) {
					return -1
				}
				if s[i] == '\\' {
					i++
				} else if s[i] == '"' {
					i++
					break
				}
			}
		}
	}
	return i
}

// sdName returns the index just past the SD-NAME at s[i] (1 to 32
// printable bytes but '=', ']', '"' and space), or -1.
func sdName(s []byte, i int) int {
	start := i
	for i < len(s) && i-start < 32 {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '=' || c == ']' || c == '"' {
			break
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

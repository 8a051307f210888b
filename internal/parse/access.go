package parse

import (
	"bytes"

	"github.com/sluice-agent/sluice/internal/record"
)

// access parses the NCSA common and combined access log formats of nginx
// and Apache httpd:
//
//	remote - user [time] "request" status size ["referer" "agent" ["forwarded_for"]]
//
// Both types accept the same lines; they differ in the names of the first
// two fields (nginx: remote, host; apache: host, ident).
type access struct {
	o     out
	nginx bool
	keep  bool
	dec   [4][]byte // decoded quoted fields, when they hold escapes
}

// Field names, shared by the parsers.
var (
	kRemote       = []byte("remote")
	kHost         = []byte("host")
	kIdent        = []byte("ident")
	kUser         = []byte("user")
	kTime         = []byte("time")
	kMethod       = []byte("method")
	kPath         = []byte("path")
	kProtocol     = []byte("protocol")
	kCode         = []byte("code")
	kSize         = []byte("size")
	kReferer      = []byte("referer")
	kAgent        = []byte("agent")
	kForwardedFor = []byte("forwarded_for")
	kPri          = []byte("pri")
	kPid          = []byte("pid")
	kMsgid        = []byte("msgid")
	kExtradata    = []byte("extradata")
	kMessage      = []byte("message")
	kSeverity     = []byte("severity")
	kSource       = []byte("source")
)

func (p *access) Pairs() []byte                   { return p.o.Pairs() }
func (p *access) Len() int                        { return p.o.Len() }
func (p *access) Value(key []byte) ([]byte, bool) { return p.o.Value(key) }
func (p *access) Time() (int64, bool)             { return p.o.Time() }

func (p *access) Parse(s []byte, skip *record.Keys) bool {
	p.o.reset(skip)
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	f1, i := field(s, 0)
	f2, i := field(s, i)
	f3, i := field(s, i)
	if i < 0 || i >= len(s) || s[i] != '[' {
		return false
	}
	e := bytes.IndexByte(s[i:], ']')
	if e < 0 || i+e+1 >= len(s) || s[i+e+1] != ' ' {
		return false
	}
	tm := s[i+1 : i+e]
	i += e + 2
	req, i := p.quoted(0, s, i)
	if i < 0 || i >= len(s) || s[i] != ' ' {
		return false
	}
	code, i := field(s, i+1)
	if i < 0 {
		return false
	}
	status, ok := atoi(code)
	if !ok {
		return false
	}
	size, i := token(s, i)
	if i < 0 || !(len(size) == 1 && size[0] == '-') {
		if _, ok := atoi(size); !ok {
			return false
		}
	}
	var ref, agent, xff []byte
	if i < len(s) {
		if ref, i = p.quoted(1, s, i+1); i < 0 || i >= len(s) || s[i] != ' ' {
			return false
		}
		if agent, i = p.quoted(2, s, i+1); i < 0 {
			return false
		}
		if i < len(s) {
			if s[i] != ' ' {
				return false
			}
			if xff, i = p.quoted(3, s, i+1); i != len(s) {
				return false
			}
		}
	}

	k1, k2 := kHost, kIdent
	if p.nginx {
		k1, k2 = kRemote, kHost
	}
	p.o.strOpt(k1, f1)
	p.o.strOpt(k2, f2)
	p.o.strOpt(kUser, f3)
	if t, ok := parseCLF(tm); ok {
		p.o.setTime(t)
		if p.keep {
			p.o.str(kTime, tm)
		}
	} else {
		p.o.str(kTime, tm)
	}
	if len(req) > 0 && !(len(req) == 1 && req[0] == '-') {
		method, rest, _ := bytes.Cut(req, []byte{' '})
		p.o.str(kMethod, method)
		if len(rest) > 0 {
			if sp := bytes.LastIndexByte(rest, ' '); sp >= 0 && bytes.HasPrefix(rest[sp+1:], []byte("HTTP/")) {
				p.o.str(kPath, rest[:sp])
				p.o.str(kProtocol, rest[sp+1:])
			} else {
				p.o.str(kPath, rest)
			}
		}
	}
	p.o.number(kCode, status)
	p.o.intOpt(kSize, size)
	p.o.strOpt(kReferer, ref)
	p.o.strOpt(kAgent, agent)
	p.o.strOpt(kForwardedFor, xff)
	return true
}

// field returns the non-empty token at s[i] (up to a space) and the index
// just past the space after it; -1 if there is none (also if i is -1).
func field(s []byte, i int) ([]byte, int) {
	t, i := token(s, i)
	if i < 0 || i >= len(s) {
		return nil, -1
	}
	return t, i + 1
}

// token returns the non-empty token at s[i], up to a space or the end, and
// the index just past it; -1 if it is empty (also if i is -1).
func token(s []byte, i int) ([]byte, int) {
	if i < 0 {
		return nil, -1
	}
	start := i
	for i < len(s) && s[i] != ' ' {
		i++
	}
	if i == start {
		return nil, -1
	}
	return s[start:i], i
}

// quoted returns the content of the quoted field at s[i] and the index
// just past its closing quote, -1 if there is none. \" and \\ are decoded
// (into p.dec[slot]); any other backslash is kept, as nginx's \xHH is.
func (p *access) quoted(slot int, s []byte, i int) ([]byte, int) {
	if i < 0 || i >= len(s) || s[i] != '"' {
		return nil, -1
	}
	i++
	q := bytes.IndexByte(s[i:], '"')
	if q < 0 {
		return nil, -1
	}
	b := bytes.IndexByte(s[i:i+q], '\\')
	if b < 0 {
		return s[i : i+q], i + q + 1
	}
	d := append(p.dec[slot][:0], s[i:i+b]...)
	for i += b; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			p.dec[slot] = d
			return d, i + 1
		case c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			d = append(d, s[i+1])
			i++
		default:
			d = append(d, c)
		}
	}
	p.dec[slot] = d
	return nil, -1
}

package parse

import (
	"bytes"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// klog parses the header of Kubernetes' klog (and glog) lines:
//
//	Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
//
// L is the severity (I, W, E or F); the thread id is padded with spaces.
type klog struct {
	o    out
	keep bool
	loc  *time.Location
	now  func() time.Time
}

func (p *klog) Pairs() []byte                   { return p.o.Pairs() }
func (p *klog) Len() int                        { return p.o.Len() }
func (p *klog) Value(key []byte) ([]byte, bool) { return p.o.Value(key) }
func (p *klog) Time() (int64, bool)             { return p.o.Time() }

func (p *klog) Parse(s []byte, skip *record.Keys) bool {
	p.o.reset(skip)
	if len(s) < 6 || s[5] != ' ' {
		return false
	}
	switch s[0] {
	case 'I', 'W', 'E', 'F':
	default:
		return false
	}
	mo, ok1 := digits(s[1:3])
	d, ok2 := digits(s[3:5])
	h, mi, sec, ns, n, ok3 := parseClock(s[6:])
	if !ok1 || !ok2 || !ok3 || mo < 1 || mo > 12 || d < 1 || d > 31 {
		return false
	}
	tm := s[1 : 6+n]
	i := 6 + n
	if i >= len(s) || s[i] != ' ' {
		return false
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	start := i
	for i < len(s) && s[i]-'0' <= 9 {
		i++
	}
	tid := s[start:i]
	if len(tid) == 0 || i >= len(s) || s[i] != ' ' {
		return false
	}
	i++
	e := bytes.IndexByte(s[i:], ']')
	if e <= 0 {
		return false
	}
	src := s[i : i+e]
	if bytes.IndexByte(src, ' ') >= 0 || bytes.IndexByte(src, ':') < 0 {
		return false
	}
	i += e + 1
	if i < len(s) {
		if s[i] != ' ' {
			return false
		}
		i++
	}
	p.o.str(kSeverity, s[0:1])
	if t, ok := guessYear(p.now(), p.loc, mo, d, h, mi, sec, ns); ok {
		p.o.setTime(t)
		if p.keep {
			p.o.str(kTime, tm)
		}
	} else {
		p.o.str(kTime, tm)
	}
	p.o.intOpt(kPid, tid)
	p.o.str(kSource, src)
	if i < len(s) {
		p.o.str(kMessage, s[i:])
	}
	return true
}

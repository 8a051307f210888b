package parse

import (
	"time"

	"github.com/sluice-agent/sluice/internal/record"
	"github.com/tinylib/msgp/msgp"
)

// jsonParser is record.Fields behind the Parser interface, plus the event
// time from TimeKey. When the time field converted and is not kept, the
// other members are copied to o without it.
type jsonParser struct {
	f       record.Fields
	o       out
	copied  bool // the members are in o, not f
	timeKey []byte
	tf      timeFmt
	keep    bool
}

func newJSON(c Config, loc *time.Location, now func() time.Time) (*jsonParser, error) {
	tf, err := newTimeFmt(c.TimeLayout, loc, now)
	if err != nil {
		return nil, err
	}
	p := &jsonParser{tf: tf, keep: c.KeepTimeKey}
	if c.TimeKey != "" {
		p.timeKey = []byte(c.TimeKey)
	}
	return p, nil
}

func (p *jsonParser) Parse(line []byte, skip *record.Keys) bool {
	p.o.reset(nil)
	p.copied = false
	if !p.f.Parse(line, skip) {
		return false
	}
	if p.timeKey == nil {
		return true
	}
	v, ok := p.f.Value(p.timeKey)
	if !ok {
		return true
	}
	t, ok := p.tf.value(v)
	if !ok {
		return true
	}
	p.o.setTime(t)
	if !p.keep {
		p.copyWithout(p.timeKey)
	}
	return true
}

// copyWithout copies the members of f but key to o.
func (p *jsonParser) copyWithout(key []byte) {
	pairs := p.f.Pairs()
	rest := pairs
	for len(rest) > 0 {
		start := len(pairs) - len(rest)
		k, r, err := msgp.ReadStringZC(rest)
		if err != nil {
			break // cannot happen: f holds valid msgpack
		}
		val := len(pairs) - len(r)
		if r, err = msgp.Skip(r); err != nil {
			break
		}
		rest = r
		if string(k) == string(key) {
			continue
		}
		base := len(p.o.buf) - start
		p.o.buf = append(p.o.buf, pairs[start:len(pairs)-len(rest)]...)
		p.o.spans = append(p.o.spans, span{key: base + val - len(k), val: base + val, end: len(p.o.buf)})
		p.o.mask |= keyBit(k)
	}
	p.copied = true
}

func (p *jsonParser) Pairs() []byte {
	if p.copied {
		return p.o.Pairs()
	}
	return p.f.Pairs()
}

func (p *jsonParser) Len() int {
	if p.copied {
		return p.o.Len()
	}
	return p.f.Len()
}

func (p *jsonParser) Value(key []byte) ([]byte, bool) {
	if p.copied {
		return p.o.Value(key)
	}
	return p.f.Value(key)
}

func (p *jsonParser) Time() (int64, bool) { return p.o.Time() }

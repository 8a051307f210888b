package parse

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// regex parses with a user's RE2 expression: each named group that took
// part in the match becomes a field (a str, or converted by Types).
type regex struct {
	o      out
	re     *regexp.Regexp
	groups []group
	tf     timeFmt
	keep   bool
}

// group is one named group of the expression.
type group struct {
	index  int // in the submatch list
	name   []byte
	isTime bool
	conv   *conv // nil: a str
}

func newRegex(c Config, loc *time.Location, now func() time.Time) (*regex, error) {
	if c.Pattern == "" {
		return nil, errors.New("pattern: missing")
	}
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		return nil, fmt.Errorf("pattern: %w", err)
	}
	tf, err := newTimeFmt(c.TimeLayout, loc, now)
	if err != nil {
		return nil, err
	}
	convs, err := newConvs(c.Types, loc, now)
	if err != nil {
		return nil, err
	}
	p := &regex{re: re, tf: tf, keep: c.KeepTimeKey}
	names := map[string]bool{}
	for i, name := range re.SubexpNames() {
		if name == "" {
			continue
		}
		g := group{index: i, name: []byte(name), isTime: name == c.TimeKey}
		if cv, ok := convs[name]; ok && !g.isTime {
			g.conv = &cv
		}
		names[name] = true
		p.groups = append(p.groups, g)
	}
	if len(p.groups) == 0 {
		return nil, errors.New("pattern: no named group (?P<name>...)")
	}
	if len(p.groups) > MaxFields {
		return nil, fmt.Errorf("pattern: %d named groups, at most %d", len(p.groups), MaxFields)
	}
	if c.TimeKey != "" && !names[c.TimeKey] {
		return nil, fmt.Errorf("time_key: no group named %q", c.TimeKey)
	}
	for field := range c.Types {
		if !names[field] {
			return nil, fmt.Errorf("types: no group named %q", field)
		}
	}
	return p, nil
}

func (p *regex) Pairs() []byte                   { return p.o.Pairs() }
func (p *regex) Len() int                        { return p.o.Len() }
func (p *regex) Value(key []byte) ([]byte, bool) { return p.o.Value(key) }
func (p *regex) Time() (int64, bool)             { return p.o.Time() }

// Parse matches the expression anywhere in s (anchor it with ^ and $ to
// match the whole line). It allocates once, for the submatch indexes:
// package regexp has no form that reuses a slice.
func (p *regex) Parse(s []byte, skip *record.Keys) bool {
	p.o.reset(skip)
	m := p.re.FindSubmatchIndex(s)
	if m == nil {
		return false
	}
	timeSeen, taken := false, false // the first time group that matched; consumed
	for _, g := range p.groups {
		a, b := m[2*g.index], m[2*g.index+1]
		if a < 0 {
			continue // the group took no part in the match
		}
		v := s[a:b]
		if g.isTime {
			if taken {
				continue // a repeat of the consumed time member
			}
			if !timeSeen {
				timeSeen = true
				if t, ok := p.tf.parse(v); ok {
					p.o.setTime(t)
					if taken = !p.keep; taken {
						continue
					}
				}
			}
		}
		if g.conv == nil {
			p.o.str(g.name, v)
		} else if p.o.key(g.name) {
			p.o.buf = g.conv.append(p.o.buf, v)
			p.o.end()
		}
	}
	return true
}

package forward

import (
	"time"
	"unicode/utf8"
)

// maxPartialGroups bounds the partial lines held per connection. Docker's
// driver uses one connection per container, so two (stdout and stderr) are
// the normal maximum; more means fragments whose last part never came.
const maxPartialGroups = 16

// partialGroup is one partial line being reassembled: the first fragment's
// record (for its metadata), tag and time, and the log joined so far.
type partialGroup struct {
	id        []byte
	first     []byte // the first fragment's record, copied
	tag       []byte // the client's tag, copied
	time      int64
	log       []byte
	deadline  time.Time
	truncated bool
}

// partials holds a connection's partial lines, oldest first. It reuses
// groups and their buffers, so steady-state reassembly does not allocate.
type partials struct {
	groups []*partialGroup
	free   []*partialGroup
}

func (p *partials) find(id []byte) *partialGroup {
	for _, g := range p.groups {
		if string(g.id) == string(id) {
			return g
		}
	}
	return nil
}

// add starts a group for a first fragment.
func (p *partials) add(id, rec, tag []byte, t int64, deadline time.Time) *partialGroup {
	var g *partialGroup
	if n := len(p.free); n > 0 {
		g, p.free = p.free[n-1], p.free[:n-1]
	} else {
		g = &partialGroup{}
	}
	g.id = append(g.id[:0], id...)
	g.first = append(g.first[:0], rec...)
	g.tag = append(g.tag[:0], tag...)
	g.log = g.log[:0]
	g.time, g.deadline, g.truncated = t, deadline, false
	p.groups = append(p.groups, g)
	return g
}

// remove forgets g and keeps it for reuse (its buffers are dropped if they
// grew large, so one huge line does not pin memory).
func (p *partials) remove(g *partialGroup) {
	for i, x := range p.groups {
		if x == g {
			p.groups = append(p.groups[:i], p.groups[i+1:]...)
			break
		}
	}
	if cap(g.log) > 256<<10 {
		g.log = nil
	}
	if cap(g.first) > 256<<10 {
		g.first = nil
	}
	p.free = append(p.free, g)
}

// nextDeadline returns the earliest deadline, zero if there is no group.
func (p *partials) nextDeadline() time.Time {
	var d time.Time
	for _, g := range p.groups {
		if d.IsZero() || g.deadline.Before(d) {
			d = g.deadline
		}
	}
	return d
}

// appendLog adds a fragment's log to g, truncating at limit bytes (less if
// that would split a UTF-8 sequence). It
// reports whether this call truncated the line (once per line).
func (g *partialGroup) appendLog(frag []byte, limit int) (truncatedNow bool) {
	if g.truncated {
		return false
	}
	if room := limit - len(g.log); len(frag) > room {
		g.log = append(g.log, frag[:max(room, 0)]...)
		// Cut on a UTF-8 boundary, as the docker input does.
		for i := len(g.log) - 1; i >= 0 && i >= len(g.log)-utf8.UTFMax; i-- {
			if utf8.RuneStart(g.log[i]) {
				if !utf8.FullRune(g.log[i:]) {
					g.log = g.log[:i]
				}
				break
			}
		}
		g.truncated = true
		return true
	}
	g.log = append(g.log, frag...)
	return false
}

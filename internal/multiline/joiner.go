package multiline

import (
	"errors"
	"fmt"
	"math/bits"
	"time"
	"unicode/utf8"
)

// Defaults of the zero Config fields.
const (
	DefaultFlushTimeout = time.Second
	DefaultMaxBytes     = 1 << 20
)

const (
	// maxHeld bounds the blank lines held after a group's last accepted
	// line: one more ends the group.
	maxHeld = 4
	// keepCap is the largest buffer kept for reuse after an emission.
	keepCap = 64 << 10
	// maxRules is the width of the alive mask.
	maxRules = 64
)

// Config configures a Joiner. At least one rule is required.
type Config struct {
	// Rules names built-in rules: java, go, python, ruby, javascript
	// (alias node).
	Rules []string
	// User holds user rules, tried after the built-ins.
	User []Rule
	// FlushTimeout is how long Flush lets a group wait for its next line;
	// 0 means DefaultFlushTimeout.
	FlushTimeout time.Duration
	// MaxBytes caps the joined content of a group (the "\n" separators
	// included); 0 means DefaultMaxBytes. A group reaching it is emitted
	// truncated (see the package doc).
	MaxBytes int
	// MaxLines caps the lines of a group; 0 means no limit but MaxBytes.
	MaxLines int
}

// Event is one emitted line: a joined group, or a line passed through.
type Event struct {
	// Line is the content: the group's lines joined with "\n". It aliases
	// the line given to the Add call that returned it, or the Joiner's
	// buffer; either way it is valid until the next Add or Flush.
	Line []byte
	// Start is the first line's start tag, End the last line's end tag.
	Start, End int64
	// Time is the first line's time.
	Time int64
	// Lines counts the lines Line holds (at least partly).
	Lines int
	// Truncated reports that Line was cut at MaxBytes or MaxLines: the
	// rest of the group was dropped (counted in Stats).
	Truncated bool
}

// Stats counts what a Joiner did, for the caller's metrics.
type Stats struct {
	Groups       uint64 // events of two lines or more
	Timeouts     uint64 // groups emitted by Flush after FlushTimeout
	Truncated    uint64 // groups emitted truncated
	DroppedLines uint64 // lines of truncated groups not emitted, even in part
	DroppedBytes uint64 // content bytes of truncated groups not emitted
}

// held is a blank line held after the group's last accepted line.
type held struct{ start, end, time int64 }

// Joiner joins the lines of one stream. It is not safe for concurrent
// use; see the package doc for its contract.
type Joiner struct {
	rules    []matcher
	timeout  time.Duration
	maxBytes int
	maxLines int

	// The open group.
	open  bool
	skip  bool   // emitted truncated: its further lines are dropped
	alive uint64 // rules still matching the group
	state []uint32
	cur   []byte // content of the accepted lines
	lines int
	start int64
	end   int64
	time  int64
	held  [maxHeld]held
	nheld int

	// Flush's idle clock: seq counts the lines the group saw; idle is
	// when Flush first found it at flushSeq.
	seq      uint64
	flushSeq uint64
	idle     time.Time

	last  []byte // content of the group emitted last
	stats Stats
}

// New returns a Joiner for c, or an error naming the bad rule.
func New(c Config) (*Joiner, error) {
	j := &Joiner{timeout: c.FlushTimeout, maxBytes: c.MaxBytes, maxLines: c.MaxLines}
	switch {
	case c.FlushTimeout < 0:
		return nil, fmt.Errorf("multiline: negative flush timeout %v", c.FlushTimeout)
	case c.MaxBytes < 0:
		return nil, fmt.Errorf("multiline: negative max bytes %d", c.MaxBytes)
	case c.MaxLines < 0:
		return nil, fmt.Errorf("multiline: negative max lines %d", c.MaxLines)
	}
	if j.timeout == 0 {
		j.timeout = DefaultFlushTimeout
	}
	if j.maxBytes == 0 {
		j.maxBytes = DefaultMaxBytes
	}
	seen := map[string]bool{}
	for _, name := range c.Rules {
		m, canon, err := builtin(name)
		if err != nil {
			return nil, err
		}
		if !seen[canon] {
			seen[canon] = true
			j.rules = append(j.rules, m)
		}
	}
	for i, r := range c.User {
		m, err := compile(r)
		if err != nil {
			if r.Name == "" {
				return nil, fmt.Errorf("multiline: user rule %d: %w", i, err)
			}
			return nil, fmt.Errorf("multiline: rule %q: %w", r.Name, err)
		}
		j.rules = append(j.rules, m)
	}
	switch {
	case len(j.rules) == 0:
		return nil, errors.New("multiline: no rules")
	case len(j.rules) > maxRules:
		return nil, fmt.Errorf("multiline: %d rules, at most %d", len(j.rules), maxRules)
	}
	j.state = make([]uint32, len(j.rules))
	return j, nil
}

// Add feeds one line (without its "\n"), read between the position tags
// start and end, with its time t. It appends to out the events now
// complete, in input order, and returns out: none while the line is
// held, else the group it ended (and the blank lines held after it), and
// the line itself if it passes through. The Joiner reads line only
// during the call; it copies what it holds.
func (j *Joiner) Add(out []Event, line []byte, start, end, t int64) []Event {
	if j.open {
		var done bool
		if out, done = j.extend(out, line, start, end, t); done {
			return out
		}
	}
	for i, m := range j.rules {
		if st, ok := m.start(line); ok {
			return j.begin(out, i, st, line, start, end, t)
		}
	}
	return append(out, Event{Line: line, Start: start, End: end, Time: t, Lines: 1})
}

// Flush emits the open group if it saw no line for FlushTimeout, or at
// once if force. The idle time is measured between Flush calls: it runs
// from the first Flush after the group's last line, so called every d a
// group waits between FlushTimeout and FlushTimeout+d after its last
// line. Call it with force at the end of a stream.
func (j *Joiner) Flush(out []Event, now time.Time, force bool) []Event {
	if !j.open {
		return out
	}
	if !force {
		if j.seq != j.flushSeq {
			j.flushSeq, j.idle = j.seq, now
			return out
		}
		if now.Sub(j.idle) < j.timeout {
			return out
		}
		if !j.skip || j.nheld > 0 {
			j.stats.Timeouts++
		}
	}
	return j.finish(out)
}

// Pending returns the start tag of the first line the Joiner holds, or
// false if it holds none. A caller committing positions must stay at or
// before it.
func (j *Joiner) Pending() (start int64, ok bool) {
	switch {
	case !j.open:
		return 0, false
	case !j.skip:
		return j.start, true
	case j.nheld > 0:
		return j.held[0].start, true
	}
	return 0, false
}

// Stats returns the counts so far.
func (j *Joiner) Stats() Stats { return j.stats }

// begin opens a group with line, started by rule i in state st; every
// later rule whose start matches joins the candidates.
func (j *Joiner) begin(out []Event, i int, st uint32, line []byte, start, end, t int64) []Event {
	j.seq++
	j.open, j.skip = true, false
	j.alive = 1 << i
	j.state[i] = st
	for k := i + 1; k < len(j.rules); k++ {
		if st, ok := j.rules[k].start(line); ok {
			j.alive |= 1 << k
			j.state[k] = st
		}
	}
	j.start, j.end, j.time = start, end, t
	j.lines, j.nheld = 1, 0
	j.cur = j.cur[:0]
	if len(line) > j.maxBytes {
		kept := trimRune(line[:j.maxBytes])
		j.stats.Truncated++
		j.stats.DroppedBytes += uint64(len(line) - len(kept))
		j.skip = true
		return append(out, Event{Line: kept, Start: start, End: end, Time: t, Lines: 1, Truncated: true})
	}
	j.cur = grow(j.cur, len(line), j.maxBytes)
	j.cur = append(j.cur, line...)
	return out
}

// extend offers line to the open group. It returns done false if the
// group ended without it: the caller then treats line as a fresh one.
func (j *Joiner) extend(out []Event, line []byte, start, end, t int64) ([]Event, bool) {
	j.seq++
	alive, accepted, hold := j.alive, false, false
	for a := alive; a != 0; a &= a - 1 {
		i := bits.TrailingZeros64(a)
		st, v := j.rules[i].next(j.state[i], line)
		switch {
		case v == vCont:
			accepted = true
			j.state[i] = st
		case v == vEnd:
			accepted = true
			alive &^= 1 << i
		case v == vHold && len(line) == 0:
			hold = true
			j.state[i] = st
		default:
			alive &^= 1 << i
		}
	}
	j.alive = alive
	switch {
	case accepted:
		out = j.accept(out, line, end)
		if alive == 0 {
			out = j.finish(out)
		}
		return out, true
	case hold && j.nheld < maxHeld:
		j.held[j.nheld] = held{start, end, t}
		j.nheld++
		return out, true
	}
	return j.finish(out), false
}

// accept adds line and the blank lines held before it to the group, or
// drops them if the group was emitted truncated. At MaxLines or MaxBytes
// the group is emitted truncated.
func (j *Joiner) accept(out []Event, line []byte, end int64) []Event {
	if j.skip {
		j.stats.DroppedLines += uint64(j.nheld + 1)
		j.stats.DroppedBytes += uint64(len(line))
		j.nheld = 0
		return out
	}
	for k := 0; k < j.nheld; k++ {
		if !j.push(nil, j.held[k].end) {
			j.stats.DroppedLines += uint64(j.nheld - k)
			j.stats.DroppedBytes += uint64(len(line))
			return j.truncate(out)
		}
	}
	j.nheld = 0
	if !j.push(line, end) {
		return j.truncate(out)
	}
	return out
}

// push appends line to the group's content. At MaxLines it drops the
// line, at MaxBytes it keeps what fits; both count and return false.
func (j *Joiner) push(line []byte, end int64) bool {
	if j.maxLines > 0 && j.lines >= j.maxLines {
		j.stats.DroppedLines++
		j.stats.DroppedBytes += uint64(len(line))
		return false
	}
	room := j.maxBytes - len(j.cur) - 1
	if len(line) <= room {
		j.cur = grow(j.cur, 1+len(line), j.maxBytes)
		j.cur = append(j.cur, '\n')
		j.cur = append(j.cur, line...)
		j.lines++
		j.end = end
		return true
	}
	if room < 0 {
		j.stats.DroppedLines++
		j.stats.DroppedBytes += uint64(len(line))
		return false
	}
	kept := trimRune(line[:room])
	j.cur = grow(j.cur, 1+len(kept), j.maxBytes)
	j.cur = append(j.cur, '\n')
	j.cur = append(j.cur, kept...)
	j.lines++
	j.end = end
	j.stats.DroppedBytes += uint64(len(line) - len(kept))
	return false
}

// truncate emits the group cut and makes it drop its further lines.
func (j *Joiner) truncate(out []Event) []Event {
	j.nheld = 0
	j.stats.Truncated++
	out = j.emit(out, true)
	j.skip = true
	return out
}

// finish closes the group: it emits it (unless it was emitted truncated)
// and then each held blank line as an event of its own.
func (j *Joiner) finish(out []Event) []Event {
	if !j.skip {
		out = j.emit(out, false)
	}
	for _, h := range j.held[:j.nheld] {
		out = append(out, Event{Start: h.start, End: h.end, Time: h.time, Lines: 1})
	}
	j.open, j.skip, j.nheld, j.alive = false, false, 0, 0
	return out
}

// emit appends the group's event; its content moves to j.last, valid
// until the next call.
func (j *Joiner) emit(out []Event, truncated bool) []Event {
	if j.lines > 1 {
		j.stats.Groups++
	}
	j.cur, j.last = j.last[:0], j.cur
	if cap(j.cur) > keepCap {
		j.cur = nil
	}
	return append(out, Event{Line: j.last, Start: j.start, End: j.end, Time: j.time, Lines: j.lines, Truncated: truncated})
}

// grow makes room for n more bytes in b, never past limit bytes of
// capacity (b never holds more).
func grow(b []byte, n, limit int) []byte {
	need := len(b) + n
	if need <= cap(b) {
		return b
	}
	c := min(max(2*cap(b), need, 512), limit)
	nb := make([]byte, len(b), c)
	copy(nb, b)
	return nb
}

// trimRune drops an incomplete UTF-8 sequence a byte-count cut left at
// the end of b.
func trimRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

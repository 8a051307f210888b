package forward

import (
	"encoding/binary"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/multiline"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Multiline joining (config multiline:, package internal/multiline). The
// log field of each record, after partial-line reassembly, goes to the
// joiner of its stream on this connection; what the joiner emits is
// stored in place of the lines, before the parser, with the first line's
// record and time. See "Acks and multiline" in the package doc.
//
// A stream is (client tag, container_id, source): Docker's driver opens
// one connection per container (two streams, stdout and stderr), FireLens
// and Fluent Bit send many containers over one connection. A record
// without container_id or source is keyed by what it has (its tag at
// least).
//
// The joiner holds only log contents; the records of the lines it may
// still emit on their own, the open group's first line and the blank
// lines it holds after it (at most 4, the most recent ones), are kept
// here, their log emptied. Position tags are a per-connection line count.

const (
	// maxMultilineGroups bounds the streams followed per connection, as
	// maxPartialGroups does partial lines: a new stream past it closes the
	// least recently used one (sluice_input_multiline_cut_total
	// {reason="max_groups"} when it held lines).
	maxMultilineGroups = 16
	// maxMultilineMeta is the largest record (without its log) whose line
	// is joined: a larger one is stored on its own, after what its stream
	// held, so what a group keeps of its records stays small.
	maxMultilineMeta = 64 << 10
	// maxHeldBlanks is how many blank lines in a row a joiner holds
	// (internal/multiline's maxHeld).
	maxHeldBlanks = 4
	// mlKeepBytes: a joiner that emitted a group larger than this is
	// dropped once it holds nothing (it keeps that group's buffer until
	// its next one); the next line of its stream gets a new one.
	mlKeepBytes = 64 << 10
	// mlKeepRecord: a kept record buffer larger than this is dropped once
	// its group is over.
	mlKeepRecord = 16 << 10
)

// mlRecord is the record of a line a joiner holds, its log emptied.
type mlRecord struct {
	pos int64 // the line's position tag; 0: none
	rec []byte
}

// mlGroup is one stream's joiner and what it needs to emit its events.
type mlGroup struct {
	key    []byte // stream key: tag, container_id, source (length-prefixed)
	tag    []byte // the client's tag
	j      *multiline.Joiner
	first  mlRecord                // the open group's first line
	blanks [maxHeldBlanks]mlRecord // the last blank lines not emitted (ring)
	nblank int

	held     bool      // Pending after the last call
	live     bool      // the joiner may hold an open group: Flush it at deadline
	touched  bool      // a line since the last tick: restart the idle clock
	big      bool      // emitted a group over mlKeepBytes
	deadline time.Time // when an idle group is flushed
	req      uint64    // the request that gave it its last line
	used     uint64    // LRU clock
}

// mlState is a connection's multiline joining (nil without multiline).
type mlState struct {
	cfg     *multiline.Config
	timeout time.Duration
	groups  []*mlGroup
	nheld   int    // groups with held set
	pos     int64  // position tags
	req     uint64 // requests handled
	clock   uint64
	out     []multiline.Event
	key     []byte
	rec     []byte  // a record with its log replaced
	ri      recInfo // of a kept or rebuilt record
}

func newMLState(cfg *multiline.Config) *mlState {
	return &mlState{cfg: cfg, timeout: cfg.FlushTimeout}
}

// mlCur is the line being added, for the events it comes out in.
type mlCur struct {
	pos int64
	rec []byte
	ri  *recInfo
}

// keyOf builds the stream key of a record of tag in ml.key.
func (ml *mlState) keyOf(tag []byte, ri *recInfo) []byte {
	k := binary.AppendUvarint(ml.key[:0], uint64(len(tag)))
	k = append(k, tag...)
	k = binary.AppendUvarint(k, uint64(len(ri.id)))
	k = append(k, ri.id...)
	k = append(k, ri.source...)
	ml.key = k
	return k
}

func (ml *mlState) find(key []byte) *mlGroup {
	for _, g := range ml.groups {
		if string(g.key) == string(key) {
			return g
		}
	}
	return nil
}

func (ml *mlState) setHeld(g *mlGroup, held bool) {
	if held != g.held {
		g.held = held
		if held {
			ml.nheld++
		} else {
			ml.nheld--
		}
	}
}

// nextDeadline returns when the earliest idle group is due, zero if none.
func (ml *mlState) nextDeadline() time.Time {
	var d time.Time
	for _, g := range ml.groups {
		if g.live && (d.IsZero() || g.deadline.Before(d)) {
			d = g.deadline
		}
	}
	return d
}

// store hands one line on: through its stream's joiner with multiline
// configured, else straight to emit (same arguments). A fragment kept as
// such (keepPartial), a record without a log, or one with more than
// maxMultilineMeta besides its log is not joined: what its stream holds
// is stored first, so a stream's events keep their order.
func (c *conn) store(tag []byte, ns int64, rec []byte, ri *recInfo, joinedLog []byte, override, keepPartial bool) error {
	ml := c.ml
	if ml == nil {
		return c.emit(tag, ns, rec, ri, joinedLog, override, keepPartial)
	}
	if keepPartial || !ri.hasLog || len(rec)-len(ri.log) > maxMultilineMeta {
		if ml.nheld > 0 {
			if g := ml.find(ml.keyOf(tag, ri)); g != nil && g.live {
				var cut *metrics.Counter
				if keepPartial {
					cut = c.in.m.mlCutAck // a fragment is kept as such only in a request with a chunk
				}
				if err := c.mlClose(g, cut); err != nil {
					return err
				}
			}
		}
		return c.emit(tag, ns, rec, ri, joinedLog, override, keepPartial)
	}
	log := ri.log
	if override {
		log = joinedLog
	}
	g, err := c.mlGroupFor(tag, ri)
	if err != nil {
		return err
	}
	if g.j == nil {
		if g.j, err = multiline.New(*ml.cfg); err != nil {
			return err // checked by New: not reached
		}
	}
	ml.pos++
	cur := mlCur{pos: ml.pos, rec: rec, ri: ri}
	g.req, g.touched = ml.req, true
	ml.out = g.j.Add(ml.out[:0], log, cur.pos, cur.pos+1, ns)
	emitted, trunc, err := c.mlDeliver(g, &cur)
	if err != nil {
		return err
	}
	p, pending := g.j.Pending()
	switch {
	case pending && p == cur.pos:
		// The line opens the group: keep its record.
		g.first.pos = cur.pos
		g.first.rec = replaceLog(g.first.rec[:0], rec, nil)
		g.nblank = 0
	case len(log) > 0:
		// Blank lines held before it were joined into the group or came
		// out in this call.
		g.nblank = 0
	case !emitted:
		// A blank line the group holds (or joined): keep its record.
		b := &g.blanks[g.nblank%maxHeldBlanks]
		b.pos = cur.pos
		b.rec = replaceLog(b.rec[:0], rec, nil)
		g.nblank++
	}
	ml.setHeld(g, pending)
	// Past an emitted line or group the joiner may still be open: holding
	// lines, dropping the rest of a truncated group, or (a line that ended
	// its group) closed; Flush at the deadline tells.
	g.live = pending || trunc || !emitted
	c.mlSettle(g)
	return nil
}

// mlGroupFor returns the group of the stream of a record of tag, created
// on first use; past maxMultilineGroups the least recently used one is
// closed and reused.
func (c *conn) mlGroupFor(tag []byte, ri *recInfo) (*mlGroup, error) {
	ml := c.ml
	key := ml.keyOf(tag, ri)
	ml.clock++
	if g := ml.find(key); g != nil {
		g.used = ml.clock
		return g, nil
	}
	var g *mlGroup
	if len(ml.groups) < maxMultilineGroups {
		g = &mlGroup{}
		ml.groups = append(ml.groups, g)
	} else {
		g = ml.groups[0]
		for _, o := range ml.groups[1:] {
			if o.used < g.used {
				g = o
			}
		}
		if err := c.mlClose(g, c.in.m.mlCutGroups); err != nil {
			return nil, err
		}
	}
	g.key = append(g.key[:0], key...)
	g.tag = append(g.tag[:0], tag...)
	g.used = ml.clock
	g.first.pos, g.nblank = 0, 0
	return g, nil
}

// mlDeliver stores the events in ml.out that g's joiner emitted, cur
// being the line just added (nil for a Flush). emitted reports whether
// cur came out as the first line of an event, trunc whether the last
// event was truncated (the joiner then drops the rest of its group).
func (c *conn) mlDeliver(g *mlGroup, cur *mlCur) (emitted, trunc bool, err error) {
	ml := c.ml
	for i := range ml.out {
		e := &ml.out[i]
		if e.Lines > 1 {
			c.in.m.mlGroups.Inc()
		}
		trunc = e.Truncated
		if e.Truncated {
			c.in.m.mlTruncated.Inc()
			if ok, n := c.in.mlLog.allow(); ok {
				c.log.Warn("multiline group cut at max_bytes or max_lines; the rest of it dropped",
					"tag", string(g.tag), "lines", e.Lines, "bytes", len(e.Line),
					"max_bytes", ml.cfg.MaxBytes, "max_lines", ml.cfg.MaxLines, "suppressed_since_last_log", n)
			}
		}
		if cur != nil && e.Start == cur.pos {
			emitted = true
			if e.Lines == 1 && !e.Truncated && !cur.ri.docker {
				// Passed through: the record as it came.
				if err := c.emit(g.tag, e.Time, cur.rec, cur.ri, nil, false, false); err != nil {
					return emitted, trunc, err
				}
				continue
			}
			if err := c.mlEmit(g, e, cur.rec, cur.ri); err != nil {
				return emitted, trunc, err
			}
			continue
		}
		// From the joiner's buffer (a truncated first line comes from the
		// caller's, in the call that added it).
		if len(e.Line) > mlKeepBytes {
			g.big = true
		}
		rec := g.first.rec
		if e.Start != g.first.pos {
			for k := range g.blanks {
				if g.blanks[k].pos == e.Start {
					rec = g.blanks[k].rec
					break
				}
			}
		}
		scanRecord(rec, &ml.ri)
		if err := c.mlEmit(g, e, rec, &ml.ri); err != nil {
			return emitted, trunc, err
		}
	}
	return emitted, trunc, nil
}

// mlEmit stores event e with the record rec (scanned into ri), its log
// replaced by e's content.
func (c *conn) mlEmit(g *mlGroup, e *multiline.Event, rec []byte, ri *recInfo) error {
	if ri.docker {
		return c.emit(g.tag, e.Time, rec, ri, e.Line, true, false)
	}
	ml := c.ml
	ml.rec = replaceLog(ml.rec[:0], rec, e.Line)
	scanRecord(ml.rec, &ml.ri)
	return c.emit(g.tag, e.Time, ml.rec, &ml.ri, nil, false, false)
}

// mlSettle drops what g keeps for nothing once it holds nothing: a joiner
// that emitted a large group (its buffer), large kept records.
func (c *conn) mlSettle(g *mlGroup) {
	if g.live || g.held {
		return
	}
	if g.big {
		g.j, g.big = nil, false
	}
	g.nblank = 0
	if cap(g.first.rec) > mlKeepRecord {
		g.first.rec = nil
	}
	for k := range g.blanks {
		if cap(g.blanks[k].rec) > mlKeepRecord {
			g.blanks[k].rec = nil
		}
	}
}

// mlClose emits what g's joiner holds, at once (Flush with force); cut,
// if not nil, counts it when it held lines.
func (c *conn) mlClose(g *mlGroup, cut *metrics.Counter) error {
	if !g.live && !g.held {
		return nil
	}
	if g.held && cut != nil {
		cut.Inc()
	}
	ml := c.ml
	ml.out = g.j.Flush(ml.out[:0], time.Time{}, true)
	ml.setHeld(g, false)
	g.live, g.touched = false, false
	_, _, err := c.mlDeliver(g, nil)
	c.mlSettle(g)
	return err
}

// mlEndRequest closes the groups the request just handled gave lines to:
// called for a request with a chunk, before its ack is queued, so that
// nothing it sent is held when the ack goes out.
func (c *conn) mlEndRequest() error {
	for _, g := range c.ml.groups {
		if g.req == c.ml.req && (g.live || g.held) {
			if err := c.mlClose(g, c.in.m.mlCutAck); err != nil {
				return err
			}
		}
	}
	return nil
}

// mlCloseAll emits every held group (the connection ends).
func (c *conn) mlCloseAll() error {
	if c.ml == nil {
		return nil
	}
	for _, g := range c.ml.groups {
		if err := c.mlClose(g, c.in.m.mlCutClose); err != nil {
			return err
		}
	}
	return nil
}

// mlTick runs the flush timeout: a group that got a line since the last
// tick starts its idle clock (the joiner's Flush measures the idle time
// from the first Flush after its last line) and is due flush_timeout
// later; a group past its deadline is flushed, and emitted if it saw no
// line since.
func (c *conn) mlTick(now time.Time) error {
	ml := c.ml
	for _, g := range ml.groups {
		if !g.live {
			g.touched = false
			continue
		}
		if !g.touched && now.Before(g.deadline) {
			continue
		}
		before := g.j.Stats().Timeouts
		ml.out = g.j.Flush(ml.out[:0], now, false)
		if n := g.j.Stats().Timeouts - before; n > 0 {
			c.in.m.mlTimeouts.Add(int(n))
		}
		if _, _, err := c.mlDeliver(g, nil); err != nil {
			return err
		}
		_, pending := g.j.Pending()
		ml.setHeld(g, pending)
		switch {
		case g.touched:
			g.touched = false
			g.deadline = now.Add(ml.timeout)
		case pending:
			g.deadline = now.Add(ml.timeout) // not reached: Flush emits a group idle for the timeout
		default:
			g.live = false
			c.mlSettle(g)
		}
	}
	return nil
}

// nextDeadline is the read deadline the connection's timers want: partial
// lines' partial_timeout, multiline groups' flush_timeout. Zero: none.
func (c *conn) nextDeadline() time.Time {
	d := c.parts.nextDeadline()
	if c.ml != nil {
		if m := c.ml.nextDeadline(); !m.IsZero() && (d.IsZero() || m.Before(d)) {
			d = m
		}
	}
	return d
}

// replaceLog appends rec with the value of its log field (a str or bin)
// replaced by the str log. A record it cannot walk (not reached: wire
// validated it) is appended as it is.
func replaceLog(dst, rec, log []byte) []byte {
	n, body, ok := wire.ReadMapHeader(rec)
	if !ok {
		return append(dst, rec...)
	}
	start := len(dst)
	dst = msgp.AppendMapHeader(dst, uint32(n))
	for range n {
		k, afterKey, kok := wire.ReadStrBin(body)
		if !kok {
			if afterKey, ok = wire.Skip(body); !ok {
				return append(dst[:start], rec...)
			}
		}
		after, ok := wire.Skip(afterKey)
		if !ok {
			return append(dst[:start], rec...)
		}
		if _, _, sok := wire.ReadStrBin(afterKey); kok && sok && string(k) == "log" {
			dst = append(dst, body[:len(body)-len(afterKey)]...)
			dst = appendStr(dst, log)
		} else {
			dst = append(dst, body[:len(body)-len(after)]...)
		}
		body = after
	}
	return dst
}

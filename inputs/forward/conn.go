package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

// Read buffer sizes. A connection starts with initialBufSize, grows (by
// doubling) only while one request does not fit, never beyond
// MaxMessageBytes, and shrinks back once idle.
const (
	initialBufSize = 64 << 10
	minReadRoom    = 4 << 10
	maxKeptScratch = 4 << 20 // decompression scratch kept between requests
)

// conn is one client connection, served by one goroutine (serve) that owns
// every field except the atomics, which the accept loop reads to pick a
// connection to evict, and pool and source, guarded by Input.mu.
type conn struct {
	in  *Input
	ctx context.Context
	nc  net.Conn
	log *slog.Logger
	w   *pipeline.Writer

	closing atomic.Bool // set by Input.Run at shutdown
	drainAt time.Time

	pool      *slotPool  // the slot it holds; nil once freed (Input.mu)
	source    netip.Addr // counted for max_connections_per_source, if valid (Input.mu)
	connected time.Time
	lastRead  atomic.Int64 // unix ns of the last byte received (connected at first)
	used      atomic.Bool  // completed a request or the Forward handshake
	reading   atomic.Bool  // waiting in Read (not busy with a request)
	evicted   atomic.Bool  // closed to make room: ends quietly

	buf        []byte // len(buf) is the usable size; data is buf[start:end]
	start, end int
	fr         framer
	framing    bool // the request at start is incomplete and being framed
	seenData   bool

	// Per request, for onEvent.
	reqTag   []byte
	reqChunk []byte

	ri, gri recInfo       // the event being handled, a held partial group
	keys    record.Keys   // keys a parsed payload must not repeat
	fields  record.Fields // a JSON log payload's fields
	tv      tagValues
	ev      pipeline.Event
	rec     []byte // normalized record
	tag     []byte // rendered tag
	scratch []byte // decompressed entries
	acks    []byte // acks to send after the next flush
	nacks   int
	out     []byte // handshake messages
	parts   partials
	eventFn func(int64, []byte) error

	maxEvent, maxEventTag int  // Router.MaxEventBytes for tags of maxEventTag bytes
	gaveUp                bool // flush discarded held events: no ack is sent any more
}

func newConn(in *Input, ctx context.Context, nc net.Conn) *conn {
	c := &conn{
		in:        in,
		ctx:       ctx,
		nc:        nc,
		log:       in.log.With("remote", remoteAddr(nc)),
		w:         in.r.NewWriter(),
		buf:       make([]byte, initialBufSize),
		connected: time.Now(),
	}
	c.lastRead.Store(c.connected.UnixNano())
	c.eventFn = c.onEvent
	return c
}

// errEvicted ends the loop of a connection closed to make room.
var errEvicted = errors.New("connection closed to make room for a new one")

// handshakeDeadline is when the TLS and Forward handshakes must be done.
func (c *conn) handshakeDeadline() time.Time {
	return c.connected.Add(c.in.cfg.HandshakeTimeout)
}

// handshakeFailed counts and logs (rate-limited) a failed TLS or Forward
// handshake; one that ran out of time is counted as evicted too.
func (c *conn) handshakeFailed(msg string, err error) {
	if c.evicted.Load() {
		return // the eviction was counted and logged
	}
	c.in.m.handshakeFailures.Inc()
	timeout := isTimeout(err) && !c.closing.Load()
	if timeout {
		c.in.m.evictedHandshake.Inc()
	}
	if ok, n := c.in.handshakeLog.allow(); ok {
		args := []any{"err", err, "suppressed_since_last_log", n}
		if timeout {
			msg += " (handshake_timeout)"
			args = append(args, "handshake_timeout", c.in.cfg.HandshakeTimeout.String())
		}
		c.log.Warn(msg, args...)
	}
}

// stop asks serve to finish: it reads on for drainGrace, then flushes, sends
// the last acks and closes.
func (c *conn) stop() {
	c.closing.Store(true)
	c.nc.SetReadDeadline(time.Now()) //nolint:errcheck // wakes a blocked Read
}

// serve handles the connection until EOF, an error or shutdown. Whatever
// happens, events already decoded are flushed and their acks sent before the
// connection is closed.
func (c *conn) serve() {
	defer c.finish()
	if tc, ok := c.nc.(*tls.Conn); ok {
		c.nc.SetDeadline(c.handshakeDeadline()) //nolint:errcheck
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.handshakeFailed("tls handshake failed", err)
			return
		}
		c.nc.SetDeadline(time.Time{}) //nolint:errcheck
	}
	if c.in.sec != nil {
		if err := c.handshake(); err != nil {
			if !errors.Is(err, errHandshake) && !errors.Is(err, io.EOF) {
				c.handshakeFailed("forward handshake failed", err)
			}
			return
		}
		c.used.Store(true)
	}
	if err := c.loop(); err != nil && !errors.Is(err, errEvicted) {
		c.log.Error("closing forward connection", "err", err)
	}
}

// loop is the transport phase: decode every complete request in the buffer,
// then flush and ack, then read more.
func (c *conn) loop() error {
	for {
		if err := c.process(); err != nil {
			return err
		}
		// Partial lines past their timeout, also while data keeps coming.
		if d := c.parts.nextDeadline(); !d.IsZero() && !time.Now().Before(d) {
			if err := c.expirePartials(time.Now()); err != nil {
				return err
			}
		}
		if err := c.commit(); err != nil {
			return err
		}
		n, err := c.read(c.parts.nextDeadline())
		if n > 0 {
			continue // decode what came, even if err is set; Read says it again
		}
		switch {
		case err == nil:
		case c.evicted.Load():
			return errEvicted
		case isTimeout(err):
			if c.closing.Load() {
				if c.drainDone() {
					return c.endOfStream()
				}
				continue
			}
			if err := c.expirePartials(time.Now()); err != nil {
				return err
			}
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			return c.endOfStream()
		default:
			return fmt.Errorf("read: %w", err)
		}
	}
}

// endOfStream reports bytes of an unfinished request left at the end.
func (c *conn) endOfStream() error {
	if c.evicted.Load() {
		return errEvicted
	}
	if c.end > c.start {
		c.in.m.protocolErrors.Inc()
		return fmt.Errorf("connection ended inside a request; %d bytes discarded (not acked)", c.end-c.start)
	}
	return nil
}

// drainDone reports whether the shutdown grace is over.
func (c *conn) drainDone() bool {
	return !c.drainAt.IsZero() && !time.Now().Before(c.drainAt)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// read reads more bytes into the buffer, with a read deadline of the
// earliest of want (partial line timeouts) and the shutdown grace.
func (c *conn) read(want time.Time) (int, error) {
	c.makeRoom()
	for {
		closing := c.closing.Load()
		d := want
		if closing {
			if c.drainAt.IsZero() {
				c.drainAt = time.Now().Add(drainGrace)
			}
			if d.IsZero() || d.After(c.drainAt) {
				d = c.drainAt
			}
		}
		c.nc.SetReadDeadline(d) //nolint:errcheck // a failing conn fails the Read too
		// Run may have set closing (and woken us) between the Load and the
		// SetReadDeadline, which then undid its wake-up: check again.
		if closing || !c.closing.Load() {
			break
		}
	}
	c.reading.Store(true)
	n, err := c.nc.Read(c.buf[c.end:])
	c.reading.Store(false)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	c.end += n
	c.in.m.bytes.Add(n)
	return n, err
}

// makeRoom ensures free space after end: it reclaims consumed bytes, grows
// the buffer while one request does not fit, and shrinks it when idle.
func (c *conn) makeRoom() {
	if c.start == c.end {
		c.start, c.end = 0, 0
		if len(c.buf) > 4*initialBufSize {
			c.buf = make([]byte, initialBufSize)
		}
	}
	if len(c.buf)-c.end >= minReadRoom {
		return
	}
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
		if len(c.buf)-c.end >= minReadRoom {
			return
		}
	}
	// The pending request fills the buffer: grow it. The framer fails a
	// request over MaxMessageBytes before it needs more than that.
	size := min(2*len(c.buf), c.in.cfg.MaxMessageBytes+minReadRoom)
	if size <= len(c.buf) {
		size = len(c.buf) + minReadRoom
	}
	nb := make([]byte, size)
	c.end = copy(nb, c.buf[c.start:c.end])
	c.start = 0
	c.buf = nb
}

// readFrame reads until one complete msgpack value is buffered and returns
// it (without consuming it). Used by the handshake.
func (c *conn) readFrame(limit int) ([]byte, error) {
	deadline := c.handshakeDeadline()
	for {
		n, ok, err := c.fr.next(c.buf[c.start:c.end], limit)
		if err != nil {
			return nil, err
		}
		if ok {
			return c.buf[c.start : c.start+n], nil
		}
		if _, err := c.read(deadline); err != nil {
			if c.end > c.start {
				if _, ok, _ := c.fr.next(c.buf[c.start:c.end], limit); ok {
					continue
				}
			}
			return nil, err
		}
	}
}

// process decodes every complete request in the buffer. A request is
// first parsed in place; only when it is incomplete does the resumable
// framer take over, so a small request is walked once and a large one that
// trickles in is not rescanned from its start at every read.
func (c *conn) process() error {
	limit := c.in.cfg.MaxMessageBytes
	for c.start < c.end {
		if !c.seenData {
			c.seenData = true
			if b := c.buf[c.start]; b == '{' || b == '[' {
				c.in.m.protocolErrors.Inc()
				return errors.New("client sends JSON; only msgpack Forward requests are supported")
			}
		}
		if !c.framing {
			req, n, err := wire.ReadRequest(c.buf[c.start:c.end], limit)
			if err == nil || !errors.Is(err, wire.ErrShort) {
				if err != nil && errors.Is(err, wire.ErrTooLarge) {
					c.in.m.protocolErrors.Inc()
					c.in.m.limitMessage.Inc()
					return fmt.Errorf("request larger than max_message_bytes (%d)", limit)
				}
				if err == nil || n > 0 {
					c.start += n
				}
				if err := c.handleRequest(req, err); err != nil {
					return err
				}
				continue
			}
			c.framing = true // incomplete: frame it incrementally
		}
		n, ok, err := c.fr.next(c.buf[c.start:c.end], limit)
		if err != nil {
			c.in.m.protocolErrors.Inc()
			if errors.Is(err, errFrameTooLarge) {
				c.in.m.limitMessage.Inc()
				return fmt.Errorf("request larger than max_message_bytes (%d)", limit)
			}
			return fmt.Errorf("invalid msgpack: %w", err)
		}
		if !ok {
			return nil
		}
		c.framing = false
		frame := c.buf[c.start : c.start+n]
		c.start += n
		req, _, err := wire.ReadRequest(frame, limit)
		if err != nil && errors.Is(err, wire.ErrShort) {
			err = fmt.Errorf("%w: framed request does not parse", wire.ErrMalformed)
		}
		if err := c.handleRequest(req, err); err != nil {
			return err
		}
	}
	return nil
}

// handleRequest adds the events of one parsed request (err is
// wire.ReadRequest's) to the Writer. A request with a chunk gets its ack
// queued for the next commit.
func (c *conn) handleRequest(req wire.Request, err error) error {
	if err != nil {
		if errors.Is(err, wire.ErrNotArray) || errors.Is(err, wire.ErrInvalidRequest) {
			// Fluentd logs and skips these; so do we.
			c.in.m.invalidRequests.Inc()
			c.logInvalid("skipping a value that is not a forward request", "err", err)
			return nil
		}
		c.in.m.protocolErrors.Inc()
		return fmt.Errorf("decode request: %w", err)
	}
	if !c.used.Load() {
		c.used.Store(true)
	}
	if req.Mode == wire.ModeNil {
		return nil // TCP heartbeat
	}
	c.in.m.requests.Inc()
	c.reqTag, c.reqChunk = req.Tag, req.Chunk
	var invalid int
	c.scratch, invalid, err = req.Events(c.scratch, c.in.cfg.MaxDecompressedBytes, c.eventFn)
	if cap(c.scratch) > maxKeptScratch {
		c.scratch = nil
	}
	if invalid > 0 {
		c.in.m.invalidEvents.Add(invalid)
		c.logInvalid("skipped invalid events (time not an integer or EventTime, record not a map, or tag not a string)",
			"count", invalid, "tag", string(req.Tag), "mode", req.Mode.String())
	}
	if err != nil {
		switch {
		case errors.Is(err, wire.ErrTooLarge):
			c.in.m.limitDecompressed.Inc()
			c.in.m.protocolErrors.Inc()
			return fmt.Errorf("request tag %q: decompressed entries exceed max_decompressed_bytes (%d); not acked",
				req.Tag, c.in.cfg.MaxDecompressedBytes)
		case errors.Is(err, wire.ErrMalformed):
			c.in.m.protocolErrors.Inc()
			return fmt.Errorf("request tag %q: %w; not acked", req.Tag, err)
		}
		return err // from the Writer
	}
	if req.Chunk != nil {
		c.acks = wire.AppendAck(c.acks, req.Chunk)
		c.nacks++
	}
	return nil
}

func (c *conn) logInvalid(msg string, args ...any) {
	if ok, n := c.in.invalidLog.allow(); ok {
		c.log.Warn(msg, append(args, "suppressed_since_last_log", n)...)
	}
}

// onEvent handles one decoded event: Docker partial fragments go to
// reassembly, everything else is stored at once.
func (c *conn) onEvent(ns int64, rec []byte) error {
	scanRecord(rec, &c.ri)
	if c.ri.partial && len(c.ri.pid) > 0 {
		return c.onPartial(ns, rec)
	}
	return c.emit(c.reqTag, ns, rec, &c.ri, nil, false, false)
}

// emit stores one event: a Docker record is normalized (log replaced by
// joinedLog when override is set), any other record passes through as is
// (extended with its JSON payload's fields under parse_json).
func (c *conn) emit(tag []byte, ns int64, rec []byte, ri *recInfo, joinedLog []byte, override, keepPartial bool) error {
	out := rec
	switch {
	case ri.docker:
		log := ri.log
		if override {
			log = joinedLog
		}
		c.rec = appendDockerRecord(c.rec[:0], ri, log, keepPartial, c.in.cfg.ParseJSON, &c.fields, &c.keys)
		out = c.rec
	case c.in.cfg.ParseJSON && ri.hasLog:
		if r, ok := appendParsedRecord(c.rec[:0], rec, ri, &c.fields, &c.keys); ok {
			c.rec = r
			out = r
		}
	}
	if t := c.in.tmpl; t != nil {
		// {field:KEY} reads the stored record, else (parse_json off) the
		// JSON log payload, looked into only for the template's keys.
		c.tv = tagValues{tmpl: t, clientTag: tag, rec: out, fields: &c.fields}
		if t.Uses(record.Field) && !c.in.cfg.ParseJSON && ri.hasLog {
			c.tv.log = ri.log
			if override {
				c.tv.log = joinedLog
			}
		}
		c.tag = t.Render(c.tag[:0], &c.tv)
		tag = c.tag
	}
	// Refuse here, before the ack, what a later stage would refuse after it:
	// an event no queue can store, or one nested too deep for the outputs'
	// decoders.
	if len(tag) != c.maxEventTag || c.maxEvent == 0 {
		c.maxEventTag, c.maxEvent = len(tag), c.in.r.MaxEventBytes(len(tag))
	}
	if n := wire.EntryLen(len(out)); n > c.maxEvent {
		c.in.m.refusedSize.Inc()
		c.logInvalid("refused an event larger than a buffer segment can hold (not stored, its request is still acked)",
			"tag", string(tag), "entry_bytes", n, "max_bytes", c.maxEvent)
		return nil
	}
	if !wire.WithinDepth(out, MaxRecordDepth) {
		c.in.m.refusedDepth.Inc()
		c.logInvalid("refused an event nested deeper than the limit (not stored, its request is still acked)",
			"tag", string(tag), "max_depth", MaxRecordDepth)
		return nil
	}
	c.ev.Tag, c.ev.Time, c.ev.Record = tag, ns, out
	c.in.m.events.Inc()
	c.w.Add(&c.ev)
	return nil
}

// onPartial handles a fragment of a line Docker split (partial_message).
//
// Without an ack requested, fragments are held per partial_id and the line
// is stored once its last fragment arrives (or PartialTimeout passes, or
// the connection ends: then what arrived is stored).
//
// A fragment in a request that asks for an ack is never held: Docker's
// driver waits for each ack before sending the next fragment, so holding it
// would deadlock, and acking a fragment held only in memory would break
// at-least-once. It is stored at once with its partial_* fields, after what
// was held for the same line, so a consumer can still join them.
func (c *conn) onPartial(ns int64, rec []byte) error {
	g := c.parts.find(c.ri.pid)
	if c.reqChunk != nil {
		if g != nil {
			if err := c.emitGroup(g, true); err != nil {
				return err
			}
			c.parts.remove(g)
		}
		c.in.m.partialUnjoined.Inc()
		return c.emit(c.reqTag, ns, rec, &c.ri, nil, false, true)
	}
	if g == nil {
		if len(c.parts.groups) >= maxPartialGroups {
			old := c.parts.groups[0]
			c.in.m.partialTimeouts.Inc()
			if err := c.emitGroup(old, false); err != nil {
				return err
			}
			c.parts.remove(old)
		}
		g = c.parts.add(c.ri.pid, rec, c.reqTag, ns, time.Now().Add(c.in.cfg.PartialTimeout))
	}
	if g.appendLog(c.ri.log, c.in.cfg.MaxPartialBytes) {
		c.in.m.limitPartial.Inc()
		c.log.Warn("partial message longer than max_partial_bytes; truncated",
			"max_partial_bytes", c.in.cfg.MaxPartialBytes, "partial_id", string(g.id))
	}
	if !c.ri.isLast() {
		return nil
	}
	c.in.m.partialJoined.Inc()
	err := c.emitGroup(g, false)
	c.parts.remove(g)
	return err
}

// emitGroup stores what a partial group holds, with the first fragment's
// metadata and time. keepPartial keeps its partial_* fields (the line is
// not complete and more fragments follow as separate events).
func (c *conn) emitGroup(g *partialGroup, keepPartial bool) error {
	scanRecord(g.first, &c.gri)
	return c.emit(g.tag, g.time, g.first, &c.gri, g.log, true, keepPartial)
}

// expirePartials stores the partial lines whose last fragment did not come
// within PartialTimeout, and flushes them.
func (c *conn) expirePartials(now time.Time) error {
	for len(c.parts.groups) > 0 {
		g := c.parts.groups[0]
		if now.Before(g.deadline) {
			// Groups are in arrival order with the same timeout, so the
			// first is the oldest.
			break
		}
		c.in.m.partialTimeouts.Inc()
		c.log.Warn("partial message incomplete after partial_timeout; storing what arrived",
			"partial_id", string(g.id), "bytes", len(g.log))
		if err := c.emitGroup(g, false); err != nil {
			return err
		}
		c.parts.remove(g)
	}
	return c.commit()
}

// commit hands every added event to its queues (flush) and, when acks are
// due, waits until an fsync covers them (Writer.Sync, shared with every
// other waiter of those queues); only then does it send the acks of the
// requests the events came in.
func (c *conn) commit() error {
	if err := c.flush(); err != nil {
		return err
	}
	if len(c.acks) == 0 || c.gaveUp {
		return nil
	}
	if c.in.cfg.AckAfter != "write" {
		if err := c.w.Sync(); err != nil {
			return fmt.Errorf("make events durable (acks withheld): %w", err)
		}
	}
	if err := c.write(c.acks); err != nil {
		return fmt.Errorf("send acks: %w", err)
	}
	c.in.m.acks.Add(c.nacks)
	c.acks, c.nacks = c.acks[:0], 0
	return nil
}

// flush appends what the Writer holds to the queues. While a queue fails
// (a full disk, overflow "block" at its cap) it retries with back-off and
// the connection reads nothing, so the client is held back and nothing is
// lost. It gives up only when the connection's context ends (stopTimeout
// into shutdown): what is still held is then discarded and counted in
// sluice_input_discarded_events_total, and the acks of those requests are
// withheld, so a client that asked for acks sends them again.
func (c *conn) flush() error {
	backoff := flushRetryMin
	for {
		err := c.w.Flush(c.ctx)
		if err == nil {
			return nil
		}
		c.in.m.flushRetries.Inc()
		if c.ctx.Err() != nil {
			// The acks of the discarded requests must never be sent, not
			// even by finish's last commit.
			c.acks, c.nacks, c.gaveUp = c.acks[:0], 0, true
			if n := c.w.Discard(); n > 0 {
				c.in.m.discarded.Add(n)
				c.log.Error("giving up on events the buffer did not accept before shutdown; acks withheld", "entries", n, "err", err)
			}
			return fmt.Errorf("hand events to the buffer (acks withheld): %w", err)
		}
		if ok, n := c.in.flushLog.allow(); ok {
			c.log.Warn("handing events to the buffer failed; retrying, reading from this connection paused", "err", err, "retry_in", backoff.String(), "suppressed", n)
		}
		t := time.NewTimer(backoff)
		select {
		case <-c.ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, flushRetryMax)
	}
}

func (c *conn) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)) //nolint:errcheck
	_, err := c.nc.Write(b)
	return err
}

// finish stores held partial lines, flushes, sends the last acks and closes.
func (c *conn) finish() {
	for len(c.parts.groups) > 0 {
		g := c.parts.groups[0]
		c.in.m.partialTimeouts.Inc()
		if err := c.emitGroup(g, false); err != nil {
			c.log.Error("store held partial message at close", "err", err)
			break
		}
		c.parts.remove(g)
	}
	if err := c.commit(); err != nil {
		c.log.Error("final flush of forward connection", "err", err)
	}
	c.nc.Close()
}

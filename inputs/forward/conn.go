package forward

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

// Buffer sizes. A connection starts with a read buffer of initialBufSize,
// grows it only while one request does not fit (to the request's known
// size, else by doubling), never beyond MaxMessageBytes, and shrinks back
// as soon as it is empty. What a connection holds beyond initialBufSize
// (read buffer) and keptScratch (decompression output) is reserved from
// the input's memory budget first (see memBudget).
const (
	initialBufSize = 64 << 10
	minReadRoom    = 4 << 10
	keptScratch    = 64<<10 + 1 // decompression scratch kept between requests, outside the budget
	// writerFlushBytes: the events of a large request are handed to the
	// queues every this many bytes rather than all at the end, so the
	// Writer's copy of a request stays small.
	writerFlushBytes = 1 << 20
	// inflateRatio is the first guess of a compressed request's expansion
	// (then the connection's last one): its output is reserved for, and
	// capped at, that many times its size on the wire, and decompressed
	// again with four times more (up to max_decompressed_bytes) if it does
	// not fit.
	inflateRatio = 8
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
	parser  parse.Parser  // the configured parser, made at the first event (nil: none)
	tv      tagValues
	ev      pipeline.Event
	rec     []byte // normalized record
	tag     []byte // rendered tag
	scratch []byte // decompressed entries
	acks    []byte // acks to send after the next flush
	nacks   int
	out     []byte // handshake messages
	parts   partials
	ml      *mlState // multiline joining (multiline.go); nil without
	eventFn func(int64, []byte) error

	maxEvent, maxEventTag int  // Router.MaxEventBytes for tags of maxEventTag bytes
	gaveUp                bool // flush discarded held events: no ack is sent any more

	// Memory budget (Input.mem): mem.held = bufHeld + the scratch being
	// decompressed into.
	mem      memHold
	bufHeld  int64
	progress time.Time     // last byte read, or budget granted: for the stall deadline
	reqFrame []byte        // the request being handled, as on the wire
	ratio    int           // expected decompression ratio (inflateRatio at first)
	unflush  int           // entry bytes added since the last flush
	wake     chan struct{} // closed by interrupt: stop waiting for budget
	wakeOnce sync.Once
	reset    bool // close with a reset (refused for memory)
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
		ratio:     inflateRatio,
		wake:      make(chan struct{}),
	}
	c.lastRead.Store(c.connected.UnixNano())
	c.eventFn = c.onEvent
	if in.ml != nil {
		c.ml = newMLState(in.ml)
	}
	return c
}

// errEvicted ends the loop of a connection closed to make room.
var errEvicted = errors.New("connection closed to make room for a new one")

// errLogged ends the loop of a connection whose end was already logged
// (rate-limited) and counted.
var errLogged = errors.New("connection closed (logged)")

// interrupt wakes the connection if it waits for memory budget.
func (c *conn) interrupt() { c.wakeOnce.Do(func() { close(c.wake) }) }

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
	if c.closing.Load() {
		// The shutdown (or a reload) interrupted it: not the client's
		// failure (CI saw Fluentd's heartbeat connection, mid-handshake at
		// the SIGTERM, logged as a WARN).
		c.log.Debug(msg+" (shutting down)", "err", err)
		return
	}
	c.in.m.handshakeFailures.Inc()
	timeout := isTimeout(err)
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
	c.interrupt()
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
	if err := c.loop(); err != nil && !errors.Is(err, errEvicted) && !errors.Is(err, errLogged) {
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
		// Multiline groups idle for their flush timeout.
		if c.ml != nil {
			if err := c.mlTick(time.Now()); err != nil {
				return err
			}
		}
		if err := c.commit(); err != nil {
			return err
		}
		n, err := c.read(c.nextDeadline())
		if n > 0 {
			continue // decode what came, even if err is set; Read says it again
		}
		switch {
		case err == nil:
		case c.evicted.Load():
			return errEvicted
		case errors.Is(err, errLogged):
			return err
		case isTimeout(err):
			if c.closing.Load() {
				if c.drainDone() {
					return c.endOfStream()
				}
				continue
			}
			if d := c.stallDeadline(); !d.IsZero() && !time.Now().Before(d) {
				return c.memRefused("stalled", 0, errors.New("no byte for buffer_wait_timeout in the middle of a request holding memory budget"))
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

// stallDeadline is when a connection that holds memory budget for an
// incomplete request and receives nothing more is closed: buffer_wait_timeout
// after its last byte. Zero if it holds none.
func (c *conn) stallDeadline() time.Time {
	if c.bufHeld == 0 {
		return time.Time{}
	}
	return c.progress.Add(c.in.cfg.BufferWaitTimeout)
}

// read reads more bytes into the buffer, with a read deadline of the
// earliest of want (partial line and multiline timeouts), the stall
// deadline and the shutdown grace.
func (c *conn) read(want time.Time) (int, error) {
	if err := c.makeRoom(); err != nil {
		return 0, err
	}
	if s := c.stallDeadline(); !s.IsZero() && (want.IsZero() || s.Before(want)) {
		want = s
	}
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
		c.progress = time.Now()
		c.lastRead.Store(c.progress.UnixNano())
	}
	c.end += n
	c.in.m.bytes.Add(n)
	return n, err
}

// makeRoom ensures free space after end: it reclaims consumed bytes,
// shrinks an empty buffer back to initialBufSize (returning its budget),
// and grows the buffer while one request does not fit, after reserving
// the growth from the memory budget (waiting for it if need be: reading
// from this connection pauses meanwhile). If the budget cannot be had,
// the connection is refused (errLogged).
func (c *conn) makeRoom() error {
	if c.start == c.end {
		c.start, c.end = 0, 0
		c.shrink()
	}
	if len(c.buf)-c.end >= minReadRoom {
		return nil
	}
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
		if len(c.buf)-c.end >= minReadRoom {
			return nil
		}
	}
	// The pending request fills the buffer: grow it, to the size the
	// framer knows the request has at least (a bin or str header gives it
	// whole), else by doubling. The framer fails a request over
	// MaxMessageBytes before it needs more than that.
	known := int(c.fr.p + c.fr.pending)
	size := min(max(2*len(c.buf), known+minReadRoom), c.in.cfg.MaxMessageBytes+minReadRoom)
	if size <= len(c.buf) {
		size = len(c.buf) + minReadRoom
	}
	if need := int64(size-initialBufSize) - c.bufHeld; need > 0 {
		if err := c.reserve(need, "read buffer"); err != nil {
			return err
		}
		c.bufHeld += need
	}
	nb := make([]byte, size)
	c.end = copy(nb, c.buf[c.start:c.end])
	c.start = 0
	c.buf = nb
	return nil
}

// shrink drops an empty read buffer larger than initialBufSize and
// returns its budget.
func (c *conn) shrink() {
	if c.start != c.end || len(c.buf) <= initialBufSize {
		return
	}
	c.start, c.end = 0, 0
	c.buf = make([]byte, initialBufSize)
	c.in.mem.release(&c.mem, c.bufHeld)
	c.bufHeld = 0
}

// reserve takes n bytes of the memory budget for what (for the log),
// waiting up to buffer_wait_timeout. A failure is counted, logged
// (rate-limited) and returned as errLogged (or errEvicted): the connection
// is then closed without acking the request that needed the memory.
func (c *conn) reserve(n int64, what string) error {
	waited, err := c.in.mem.reserve(&c.mem, n, c.used.Load(), c.in.cfg.BufferWaitTimeout, c.wake)
	if waited {
		c.in.m.memWaits.Inc()
	}
	switch {
	case err == nil:
		// Waiting paused the reading: the stall deadline starts now.
		c.progress = time.Now()
		return nil
	case errors.Is(err, errMemInterrupted):
		if c.evicted.Load() {
			return errEvicted
		}
		return fmt.Errorf("stopped while waiting for memory budget for a %s; request not acked", what)
	case errors.Is(err, errMemTooLarge):
		return c.memRefused("too_large", n, fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, errMemTimeout):
		return c.memRefused("timeout", n, fmt.Errorf("%s: %w", what, err))
	}
	return c.memRefused("deadlock", n, fmt.Errorf("%s: %w", what, err))
}

// memRefused counts and logs (rate-limited) a connection closed by the
// memory budget; it is reset rather than closed with a FIN, so that a
// client's next write fails at once.
func (c *conn) memRefused(reason string, need int64, err error) error {
	c.in.m.limitMemory.Inc()
	c.reset = true
	if ok, n := c.in.memLog.allow(); ok {
		c.log.Warn("closing forward connection: memory budget (max_buffered_bytes); its request is not acked",
			"reason", reason, "err", err, "need_bytes", need, "held_bytes", c.mem.held,
			"max_buffered_bytes", c.in.cfg.MaxBufferedBytes, "buffer_wait_timeout", c.in.cfg.BufferWaitTimeout.String(),
			"suppressed_since_last_log", n)
	}
	return errLogged
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
				c.reqFrame = c.buf[c.start-n : c.start]
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
			// A request that announces more than the budget can ever
			// give one connection is refused as soon as that is known.
			if known := int64(c.fr.p+c.fr.pending) + minReadRoom - initialBufSize; known > c.in.mem.total {
				return c.memRefused("too_large", known, errors.New("the request's read buffer: "+errMemTooLarge.Error()))
			}
			return nil
		}
		c.framing = false
		frame := c.buf[c.start : c.start+n]
		c.start += n
		c.reqFrame = frame
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
	if c.ml != nil {
		c.ml.req++
	}
	var invalid int
	if req.Mode == wire.ModeCompressedPackedForward {
		invalid, err = c.inflateEvents(&req)
		if errors.Is(err, errLogged) || errors.Is(err, errEvicted) {
			return err
		}
	} else {
		c.scratch, invalid, err = req.Events(c.scratch, c.in.cfg.MaxDecompressedBytes, c.eventFn)
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
		// Nothing this request sent may be held in a multiline group when
		// its ack goes out: close the groups it gave lines to.
		if c.ml != nil {
			if err := c.mlEndRequest(); err != nil {
				return err
			}
		}
		c.acks = wire.AppendAck(c.acks, req.Chunk)
		c.nacks++
	}
	return nil
}

// inflateEvents decompresses a CompressedPackedForward request within the
// memory budget and hands its events to onEvent. The output buffer is
// reserved before decompressing, for ratio times the request's wire size
// (at least keptScratch, which needs no reservation). If the output is
// larger, a gzip payload is decompressed once more into nothing, only to
// count its size (a bomb is refused there, having allocated nothing),
// and then into a buffer of exactly that size; a zstd payload is tried
// again with four times more. Either way never beyond
// max_decompressed_bytes (a request over it is refused as before), nor
// beyond what the budget can ever give this connection (a request over
// that is refused for memory). Between two tries nothing is held for the
// output, so a retry waits holding only the read buffer; a failed try
// called onEvent for nothing, so redoing it is safe.
func (c *conn) inflateEvents(req *wire.Request) (invalid int, err error) {
	maxOut := c.in.cfg.MaxDecompressedBytes
	wireLen := len(c.reqFrame)
	limit := min(max(keptScratch-1, wireLen*c.ratio), maxOut)
	zstd := req.Compressed == "zstd"
	for counted := false; ; {
		// What the budget can ever give this connection for the output,
		// beside its read buffer; zstd also needs a history window of up
		// to the output's size (wire caps it at 8 MiB).
		room := c.in.mem.total - c.bufHeld
		if zstd {
			room /= 2
		}
		capped := false
		if int64(limit)+1 > room {
			limit, capped = int(max(room-1, 0)), true
		}
		need := int64(0)
		if limit+1 > keptScratch {
			need = int64(limit) + 1
			if zstd {
				need += int64(min(limit, 8<<20))
			}
			// Acks of the requests before this one need not wait for the
			// budget.
			if c.in.mem.available() < need {
				if err := c.commit(); err != nil {
					return 0, err
				}
			}
			if err := c.reserve(need, "decompressed request"); err != nil {
				return 0, err
			}
		}
		scratch := c.scratch[:0]
		if cap(scratch) < limit+1 {
			scratch = make([]byte, 0, limit+1)
		}
		var out []byte
		out, invalid, err = req.Events(scratch, limit, c.eventFn)
		if cap(out) <= keptScratch {
			c.scratch = out
		} else {
			c.scratch = nil
		}
		c.in.mem.release(&c.mem, need)
		if err == nil {
			if wireLen > 0 {
				c.ratio = min(max(len(out)/wireLen+1, 2), 256)
			}
			return invalid, nil
		}
		if !errors.Is(err, wire.ErrTooLarge) || limit >= maxOut {
			return invalid, err
		}
		if capped {
			return 0, c.memRefused("too_large", int64(limit)+1, fmt.Errorf(
				"decompressed request: output exceeds the %d bytes the budget can give it (max_decompressed_bytes %d)", limit, maxOut))
		}
		if zstd || counted {
			limit = min(4*limit, maxOut)
			continue
		}
		counted = true
		n, err := gzipSize(c.reqFrame, maxOut)
		if err != nil {
			return 0, err
		}
		if int64(n)+1 > room {
			return 0, c.memRefused("too_large", int64(n)+1, fmt.Errorf(
				"decompressed request: %d bytes, more than the %d the budget can give it", n, room-1))
		}
		limit = n
	}
}

// gzipSize returns the decompressed size of the gzip payload of the
// CompressedPackedForward request frame (all its members), decompressing
// it into nothing: it allocates no output however large that is. Over
// limit it fails with wire.ErrTooLarge, and on a corrupt payload with
// wire.ErrMalformed.
func gzipSize(frame []byte, limit int) (int, error) {
	n, rest, err := msgp.ReadArrayHeaderBytes(frame)
	if err != nil || n < 2 {
		return 0, fmt.Errorf("%w: not a forward request", wire.ErrMalformed)
	}
	rest, ok := wire.Skip(rest) // the tag
	if !ok {
		return 0, fmt.Errorf("%w: no tag", wire.ErrMalformed)
	}
	body, _, ok := wire.ReadStrBin(rest)
	if !ok {
		return 0, fmt.Errorf("%w: no payload", wire.ErrMalformed)
	}
	zr := gzipCounters.Get().(*gzip.Reader)
	defer gzipCounters.Put(zr)
	var src bytes.Reader
	src.Reset(body)
	if err := zr.Reset(&src); err != nil {
		return 0, fmt.Errorf("%w: gzip: %v", wire.ErrMalformed, err)
	}
	zr.Multistream(true)
	size, err := io.Copy(io.Discard, io.LimitReader(zr, int64(limit)+1))
	zr.Reset(bytes.NewReader(nil)) //nolint:errcheck // drops the reference to frame
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: gzip: %v", wire.ErrMalformed, err)
	case size > int64(limit):
		return 0, fmt.Errorf("%w: decompressed entries exceed %d bytes", wire.ErrTooLarge, limit)
	}
	return int(size), nil
}

// gzipCounters are gzipSize's readers.
var gzipCounters = sync.Pool{New: func() any { return new(gzip.Reader) }}

func (c *conn) logInvalid(msg string, args ...any) {
	if ok, n := c.in.invalidLog.allow(); ok {
		c.log.Warn(msg, append(args, "suppressed_since_last_log", n)...)
	}
}

// onEvent handles one decoded event: Docker partial fragments go to
// reassembly, everything else is stored at once (through multiline
// joining, if configured: store).
func (c *conn) onEvent(ns int64, rec []byte) error {
	scanRecord(rec, &c.ri)
	if c.ri.partial && len(c.ri.pid) > 0 {
		return c.onPartial(ns, rec)
	}
	return c.store(c.reqTag, ns, rec, &c.ri, nil, false, false)
}

// emit stores one event: a Docker record is normalized (log replaced by
// joinedLog when override is set), any other record passes through as is
// (extended with its JSON payload's fields under parse_json).
func (c *conn) emit(tag []byte, ns int64, rec []byte, ri *recInfo, joinedLog []byte, override, keepPartial bool) error {
	out := rec
	p, mark := c.payloadParser()
	parsed := false
	switch {
	case ri.docker:
		log := ri.log
		if override {
			log = joinedLog
		}
		c.rec, parsed = appendDockerRecord(c.rec[:0], ri, log, keepPartial, p, mark, &c.keys)
		out = c.rec
	case p != nil && ri.hasLog:
		var r []byte
		var ok bool
		if r, ok, parsed = appendParsedRecord(c.rec[:0], rec, ri, p, mark, &c.keys); ok {
			c.rec = r
			out = r
		}
	}
	if !parsed && mark != "" && (ri.docker || ri.hasLog) {
		c.in.m.parseFailures.Inc()
	}
	if parsed && c.parser != nil {
		if t, ok := c.parser.Time(); ok {
			ns = t // the parser's time field is the event time
		}
	}
	if t := c.in.tmpl; t != nil {
		// {field:KEY} reads the stored record, else (no parser) the JSON
		// log payload, looked into only for the template's keys.
		c.tv = tagValues{tmpl: t, clientTag: tag, rec: out, fields: &c.fields}
		if t.Uses(record.Field) && p == nil && ri.hasLog {
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
	// A large request is handed to the queues as it is decoded, so the
	// Writer never holds much more than writerFlushBytes of it.
	if c.unflush += wire.EntryLen(len(out)); c.unflush >= writerFlushBytes {
		return c.flush()
	}
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
		return c.store(c.reqTag, ns, rec, &c.ri, nil, false, true)
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
// metadata and time (a complete line goes through multiline joining, if
// configured). keepPartial keeps its partial_* fields (the line is not
// complete and more fragments follow as separate events).
func (c *conn) emitGroup(g *partialGroup, keepPartial bool) error {
	scanRecord(g.first, &c.gri)
	return c.store(g.tag, g.time, g.first, &c.gri, g.log, true, keepPartial)
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
			c.unflush = 0
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

// finish stores held partial lines and multiline groups, flushes, sends
// the last acks and closes.
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
	if err := c.mlCloseAll(); err != nil {
		c.log.Error("store held multiline groups at close", "err", err)
	}
	if err := c.commit(); err != nil {
		c.log.Error("final flush of forward connection", "err", err)
	}
	// The budget is whole again before the client can see the close (the
	// buffers go with the conn).
	c.in.mem.release(&c.mem, c.mem.held)
	c.bufHeld = 0
	if c.reset {
		abort(c.nc)
	} else {
		c.nc.Close()
	}
}

// payloadParser returns what parses this connection's log payloads (nil:
// nothing) and the failure marker's value ("": none, as for parse_json).
func (c *conn) payloadParser() (payloadParser, string) {
	switch pc := c.in.cfg.Parser; {
	case pc != nil:
		if c.parser == nil {
			p, err := parse.New(*pc.ParseConfig()) // checked by New: cannot fail
			if err != nil {
				return nil, ""
			}
			c.parser = p
		}
		return c.parser, pc.Type
	case c.in.cfg.ParseJSON:
		return &c.fields, ""
	}
	return nil, ""
}

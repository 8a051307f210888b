package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// server is one destination. Its worker goroutine (run) owns the
// connection; the Output loop owns up, inflight and current.
type server struct {
	o        *Output
	name     string // address as configured: logs and metrics
	network  string
	address  string
	tls      *tls.Config
	weight   int
	standby  bool
	creds    *credentials // nil without security
	requests chan *item   // from the Output loop; cap maxInFlight
	// st is state as published by the worker, for Status (status.go).
	st serverState

	// Set before the worker starts.
	static bool               // from servers:, never retired (else discovered)
	cancel context.CancelFunc // stops the worker (set by Output.spawn)

	// Owned by the Output loop.
	draining bool // discovered server gone from DNS: no new chunks, retired once inflight is 0
	up       bool
	inflight int // items handed to the worker and not yet reported back
	current  int // smooth weighted round-robin state

	// Owned by the worker goroutine.
	state  int8    // 0 unknown, 1 up, -1 down
	sent   []*item // written, waiting for their ack, oldest first
	rd     msgReader
	hdr    []byte
	opt    []byte
	vec    [3][]byte
	bufs   net.Buffers
	gz     *wire.Gzipper
	zbuf   []byte
	acks   chan ackMsg
	m      serverMetrics
	dialer net.Dialer
}

type serverMetrics struct {
	chunksSent, eventsSent, bytesSent *metrics.Counter
	chunksAcked, eventsAcked          *metrics.Counter
	retries, connFailures, ackTimeout *metrics.Counter
	up                                *metrics.Gauge
}

// ackMsg carries one ack id from the reader goroutine by value.
type ackMsg struct {
	id [64]byte
	n  int // len of id; -1 if the id was longer than 64 bytes
}

func newServer(o *Output, sc config.ForwardServer, tlsConf *tls.Config, set *metrics.Set) (*server, error) {
	network, address, err := parseAddress(sc.Address)
	if err != nil {
		return nil, err
	}
	if sc.Weight < 0 {
		return nil, fmt.Errorf("weight: %d is negative", sc.Weight)
	}
	if (sc.Username != "" || sc.Password != "") && o.security == nil {
		return nil, errors.New("username/password need the security section (the handshake carries them)")
	}
	s := &server{
		o:        o,
		name:     sc.Address,
		network:  network,
		address:  address,
		weight:   sc.Weight,
		standby:  sc.Standby,
		requests: make(chan *item, o.maxInFlight),
		acks:     make(chan ackMsg, o.maxInFlight+1),
		sent:     make([]*item, 0, o.maxInFlight),
		dialer:   net.Dialer{KeepAlive: 15 * time.Second},
	}
	if tlsConf != nil {
		s.tls = tlsConf.Clone()
		if s.tls.ServerName == "" && network == "tcp" {
			host, _, _ := net.SplitHostPort(address)
			s.tls.ServerName = host
		}
	}
	if o.security != nil {
		s.creds = &credentials{
			hostname:  o.hostname,
			salt:      o.salt,
			sharedKey: string(o.security.SharedKey),
			username:  sc.Username,
			password:  string(sc.Password),
		}
	}
	if o.gzip {
		if s.gz, err = wire.NewGzipper(o.gzipLevel); err != nil {
			return nil, err
		}
	}
	l := fmt.Sprintf(`{output=%q,server=%q}`, o.id, sc.Address)
	s.m = serverMetrics{
		chunksSent:   set.GetOrCreateCounter("sluice_output_chunks_sent_total" + l),
		eventsSent:   set.GetOrCreateCounter("sluice_output_events_sent_total" + l),
		bytesSent:    set.GetOrCreateCounter("sluice_output_bytes_sent_total" + l),
		chunksAcked:  set.GetOrCreateCounter("sluice_output_chunks_acked_total" + l),
		eventsAcked:  set.GetOrCreateCounter("sluice_output_events_acked_total" + l),
		retries:      set.GetOrCreateCounter("sluice_output_retries_total" + l),
		connFailures: set.GetOrCreateCounter("sluice_output_connection_failures_total" + l),
		ackTimeout:   set.GetOrCreateCounter("sluice_output_ack_timeouts_total" + l),
		up:           set.GetOrCreateGauge("sluice_output_server_up"+l, nil),
	}
	return s, nil
}

// conn is one open connection to the server.
type conn struct {
	raw       net.Conn // the TCP or unix connection under TLS
	nc        net.Conn // what we read and write (raw or TLS)
	keepalive bool
}

// connect dials, runs TLS and the security handshake, all bounded by the
// connect timeout.
func (s *server) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.connectTimeout)
	defer cancel()
	raw, err := s.dialer.DialContext(ctx, s.network, s.address)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	c := &conn{raw: raw, nc: raw, keepalive: true}
	if s.tls != nil {
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c.nc = tc
	}
	s.rd.reset(c.nc)
	if s.creds != nil {
		stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
		dl, _ := ctx.Deadline()
		raw.SetDeadline(dl)
		c.keepalive, err = handshake(c.nc, &s.rd, s.creds)
		if !stop() || err != nil {
			raw.Close()
			if err == nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("handshake: %w", err)
		}
		raw.SetDeadline(time.Time{})
	}
	return c, nil
}

func (s *server) emit(ctx context.Context, kind evKind, it *item, err error) bool {
	select {
	case s.o.events <- event{kind: kind, srv: s, it: it, err: err}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *server) markUp(ctx context.Context) bool {
	s.st.set(1, nil)
	if s.state == 1 {
		return true
	}
	if s.state == -1 {
		s.o.log.Info("forward server up again", "server", s.name)
	} else {
		s.o.log.Info("forward server up", "server", s.name)
	}
	s.state = 1
	s.m.up.Set(1)
	return s.emit(ctx, evUp, nil, nil)
}

func (s *server) markDown(ctx context.Context, err error) bool {
	s.st.set(-1, err)
	if s.state == -1 {
		s.o.log.Debug("forward server still down", "server", s.name, "err", err)
		return true
	}
	s.state = -1
	s.m.up.Set(0)
	s.o.log.Warn("forward server down", "server", s.name, "err", err)
	return s.emit(ctx, evDown, nil, nil)
}

// run is the worker: connect, serve sessions, and probe every heartbeat
// interval while down. Items it cannot send are reported back (evBounce if
// never written, evFail if written and not acked).
func (s *server) run(ctx context.Context) {
	var next *item // taken from s.requests, not yet written
	lazy := false  // connect only when there is work or a heartbeat is due
	for ctx.Err() == nil {
		if lazy && next == nil {
			t := time.NewTimer(s.o.heartbeat)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case next = <-s.requests:
			case <-t.C:
			}
			t.Stop()
		}
		c, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.m.connFailures.Inc()
			if !s.markDown(ctx, err) {
				return
			}
			if next != nil {
				if !s.emit(ctx, evBounce, next, nil) {
					return
				}
				next = nil
			}
			if !s.waitDown(ctx) {
				return
			}
			lazy = false
			continue
		}
		if !s.markUp(ctx) {
			c.nc.Close()
			return
		}
		if !c.keepalive && next == nil {
			// A heartbeat on a server that takes one request per
			// connection: it answered, so it is up; connect again when
			// there is work.
			c.nc.Close()
			lazy = true
			continue
		}
		idle, err := s.session(ctx, c, next)
		next = nil
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Down first, so that the loop does not hand the failed
			// chunks straight back to this server.
			if !s.markDown(ctx, err) || !s.failSent(ctx, err) || !s.waitDown(ctx) {
				return
			}
			lazy = false
			continue
		}
		// The request finished (keepalive off) or the server closed an
		// idle connection: reconnect on demand.
		lazy = idle || !c.keepalive
	}
}

// failSent reports every written and unacked item as failed.
func (s *server) failSent(ctx context.Context, err error) bool {
	for i, it := range s.sent {
		s.sent[i] = nil
		if !s.emit(ctx, evFail, it, err) {
			clear(s.sent)
			s.sent = s.sent[:0]
			return false
		}
	}
	s.sent = s.sent[:0]
	return true
}

// waitDown waits one heartbeat interval before the next probe, handing
// back every item dispatched to this server meanwhile.
func (s *server) waitDown(ctx context.Context) bool {
	t := time.NewTimer(s.o.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case it := <-s.requests:
			if !s.emit(ctx, evBounce, it, nil) {
				return false
			}
		case <-t.C:
			return true
		}
	}
}

var errAckTimeout = errors.New("ack timeout")

// session sends requests on c until it breaks. It returns idle=true, nil
// when the server closed the connection with nothing in flight, false,
// nil when a keepalive-less request completed, and an error when the
// connection failed; the chunks written and not acked are then left in
// s.sent for the caller to fail.
func (s *server) session(ctx context.Context, c *conn, first *item) (idle bool, err error) {
	// Closing c.nc (not c.raw) sends TLS's close_notify first, so peers do
	// not log an unexpected EOF; tls.Conn.Close skips the alert, and does
	// not block, when a Write is in flight.
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	done := make(chan struct{})
	readerDone := make(chan struct{})
	rerr := make(chan error, 1)
	for len(s.acks) > 0 {
		<-s.acks
	}
	go s.read(c, done, readerDone, rerr)
	ackTimer := time.NewTimer(time.Hour)
	ackTimer.Stop()
	defer func() {
		stop()
		close(done)
		c.nc.Close()
		<-readerDone
		ackTimer.Stop()
	}()

	requests := 0
	send := func(it *item) error {
		requests++
		if err := s.write(c, it); err != nil {
			s.sent = append(s.sent, it) // fail it with the others
			return err
		}
		if !s.o.requireAck {
			s.m.chunksAcked.Inc()
			s.m.eventsAcked.Add(it.count)
			s.emit(ctx, evAck, it, nil)
			return nil
		}
		it.sentAt = time.Now()
		s.sent = append(s.sent, it)
		if len(s.sent) == 1 {
			ackTimer.Reset(s.o.ackTimeout)
		}
		return nil
	}
	if first != nil {
		if err := send(first); err != nil {
			return false, err
		}
	}
	for {
		in := s.requests
		if !c.keepalive && requests > 0 {
			if len(s.sent) == 0 {
				return false, nil
			}
			in = nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case it := <-in:
			if err := send(it); err != nil {
				return false, err
			}
		case a := <-s.acks:
			s.acked(ctx, a)
			s.drainAcks(ctx)
			s.resetAckTimer(ackTimer)
		case err := <-rerr:
			// The reader queued every ack it read before failing.
			s.drainAcks(ctx)
			if len(s.sent) == 0 && isClosed(err) {
				return true, nil
			}
			if isClosed(err) {
				return false, fmt.Errorf("connection closed by server with %d chunks unacked: %w", len(s.sent), err)
			}
			return false, err
		case <-ackTimer.C:
			s.drainAcks(ctx)
			if len(s.sent) > 0 && time.Since(s.sent[0].sentAt) >= s.o.ackTimeout {
				s.m.ackTimeout.Inc()
				return false, fmt.Errorf("%w: no ack within %s for %d chunks", errAckTimeout, s.o.ackTimeout, len(s.sent))
			}
			s.resetAckTimer(ackTimer)
		}
	}
}

// drainAcks handles the acks already queued by the reader.
func (s *server) drainAcks(ctx context.Context) {
	for {
		select {
		case a := <-s.acks:
			s.acked(ctx, a)
		default:
			return
		}
	}
}

// resetAckTimer arms t for the oldest chunk in flight.
func (s *server) resetAckTimer(t *time.Timer) {
	if len(s.sent) > 0 {
		t.Reset(time.Until(s.sent[0].sentAt.Add(s.o.ackTimeout)))
	} else {
		t.Stop()
	}
}

// acked reports the in-flight item whose id is a.id.
func (s *server) acked(ctx context.Context, a ackMsg) {
	if a.n >= 0 {
		for i, it := range s.sent {
			if it.id == string(a.id[:a.n]) {
				copy(s.sent[i:], s.sent[i+1:])
				s.sent[len(s.sent)-1] = nil
				s.sent = s.sent[:len(s.sent)-1]
				s.m.chunksAcked.Inc()
				s.m.eventsAcked.Add(it.count)
				s.emit(ctx, evAck, it, nil)
				return
			}
		}
	}
	s.o.log.Debug("ignoring ack for an unknown chunk", "server", s.name)
}

// read is the reader goroutine of one session: it forwards acks until the
// connection fails.
func (s *server) read(c *conn, done <-chan struct{}, exited chan<- struct{}, errc chan<- error) {
	defer close(exited)
	for {
		id, err := s.rd.readAck()
		if err != nil {
			errc <- err
			return
		}
		if !s.o.requireAck {
			errc <- errors.New("unexpected ack from server: acks were not requested")
			return
		}
		var a ackMsg
		if len(id) > len(a.id) {
			a.n = -1
		} else {
			a.n = copy(a.id[:], id)
		}
		select {
		case s.acks <- a:
		case <-done:
			return
		}
	}
}

// write sends one request: [tag, bin(entries), option], entries verbatim
// or as one gzip member.
func (s *server) write(c *conn, it *item) error {
	entries := it.entries
	if s.gz != nil {
		s.zbuf = s.gz.Compress(s.zbuf[:0], entries)
		entries = s.zbuf
	}
	s.hdr = wire.AppendPackedForwardHeader(s.hdr[:0], it.tag, len(entries))
	opt := wire.Options{Size: it.count, Compressed: s.gz != nil}
	if s.o.requireAck {
		opt.Chunk = it.id
	}
	s.opt = wire.AppendOptions(s.opt[:0], opt)
	s.vec = [3][]byte{s.hdr, entries, s.opt}
	s.bufs = s.vec[:]
	c.raw.SetWriteDeadline(time.Now().Add(s.o.ackTimeout))
	n, err := s.bufs.WriteTo(c.nc)
	s.vec = [3][]byte{}
	s.m.bytesSent.Add(int(n))
	if err != nil {
		return fmt.Errorf("write chunk: %w", err)
	}
	s.m.chunksSent.Inc()
	s.m.eventsSent.Add(it.count)
	return nil
}

// isClosed reports an orderly or abortive close by the peer.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection reset")
}

package forward

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/multiline"
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

// The defaults of the options are declared once, in
// config.DefaultForwardInput; New applies them to zero values.
const (
	// MaxRecordDepth bounds how deeply a stored record nests maps and
	// arrays (the record map itself is level 1): the record plus the
	// record.MaxDepth levels a parsed JSON payload may have. A deeper event
	// is refused before its request is acked.
	MaxRecordDepth = record.MaxDepth + 1
)

// Timeouts of the connection handling. They are not configurable: they only
// bound how long a silent or stuck peer can hold resources. (The handshake
// deadline is handshake_timeout, idleness idle_timeout.)
const (
	writeTimeout  = 30 * time.Second       // one ack or handshake write
	drainGrace    = 250 * time.Millisecond // reading on after shutdown starts
	flushRetryMin = 50 * time.Millisecond  // back-off of a failing Flush
	flushRetryMax = 2 * time.Second        // its cap
	stopTimeout   = 5 * time.Second        // final flushes, then connections are cut
)

// Input is a Forward protocol server. See the package doc.
type Input struct {
	id       string
	cfg      config.ForwardInput // defaults applied
	unixMode fs.FileMode
	r        *pipeline.Router
	log      *slog.Logger
	m        *inputMetrics
	tmpl     *record.Template
	ml       *multiline.Config // nil: no multiline joining
	tlsConf  *tls.Config
	sec      *security
	rand     io.Reader                 // nonces and salts; tests replace it
	sourceOf func(net.Conn) netip.Addr // per-source key (sourceOf); tests replace it

	ran       atomic.Bool
	listening atomic.Bool // listeners bound, shutdown not begun (Ready)
	readyOnce sync.Once
	ready     chan struct{}
	addr      net.Addr

	mu       sync.Mutex
	conns    map[*conn]struct{}
	tcpPool  *slotPool // max_connections, max_connections_per_source
	unixPool *slotPool // max_unix_connections
	stopping bool

	mem *memBudget // max_buffered_bytes, shared by every connection

	rejectLog    rateLimit // connections refused: a slot pool is full
	evictLog     rateLimit // connections closed to make room
	handshakeLog rateLimit // failed or timed out TLS and Forward handshakes
	invalidLog   rateLimit // invalid events and requests
	flushLog     rateLimit // failing Flushes
	memLog       rateLimit // connections refused by the memory budget
	mlLog        rateLimit // multiline groups truncated
}

// New validates cfg and returns an Input. It does not bind anything; Run
// does. r must not be nil; log and set may be nil.
func New(id string, cfg config.ForwardInput, r *pipeline.Router, log *slog.Logger, set *metrics.Set) (*Input, error) {
	if r == nil {
		return nil, errors.New("forward input: nil router")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	if pc := cfg.Parser.ParseConfig(); pc != nil {
		if _, err := parse.New(*pc); err != nil {
			return nil, fmt.Errorf("forward input %s: parser: %w", id, err)
		}
	}
	var ml *multiline.Config
	if cfg.Multiline != nil {
		mc := cfg.Multiline.JoinerConfig()
		mc.Rules = slices.Clone(mc.Rules)
		if mc.FlushTimeout == 0 {
			mc.FlushTimeout = multiline.DefaultFlushTimeout
		}
		if mc.MaxBytes == 0 {
			mc.MaxBytes = multiline.DefaultMaxBytes
		}
		if _, err := multiline.New(mc); err != nil {
			return nil, fmt.Errorf("forward input %s: %w", id, err)
		}
		ml = &mc
	}
	def := config.DefaultForwardInput()
	if cfg.Listen == "" && cfg.Unix == "" {
		cfg.Listen = def.Listen
	}
	mode := fs.FileMode(*def.UnixMode)
	if cfg.UnixMode != nil {
		if *cfg.UnixMode > 0o777 {
			return nil, fmt.Errorf("forward input %s: unix_mode %o is not a permission mode", id, *cfg.UnixMode)
		}
		mode = fs.FileMode(*cfg.UnixMode)
	}
	for _, d := range []struct {
		name string
		v    *int
		def  int
	}{
		{"max_message_bytes", &cfg.MaxMessageBytes, def.MaxMessageBytes},
		{"max_decompressed_bytes", &cfg.MaxDecompressedBytes, def.MaxDecompressedBytes},
		{"max_connections", &cfg.MaxConnections, def.MaxConnections},
		{"max_unix_connections", &cfg.MaxUnixConnections, def.MaxUnixConnections},
		{"max_connections_per_source", &cfg.MaxConnectionsPerSource, def.MaxConnectionsPerSource},
		{"max_partial_bytes", &cfg.MaxPartialBytes, def.MaxPartialBytes},
		{"max_buffered_bytes", &cfg.MaxBufferedBytes, def.MaxBufferedBytes},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return nil, fmt.Errorf("forward input %s: %s must be positive, got %d", id, d.name, *d.v)
		}
	}
	switch cfg.AckAfter {
	case "":
		cfg.AckAfter = def.AckAfter
	case "fsync", "write":
	default:
		return nil, fmt.Errorf("forward input %s: ack_after %q: want fsync or write", id, cfg.AckAfter)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"partial_timeout", &cfg.PartialTimeout, def.PartialTimeout},
		{"idle_timeout", &cfg.IdleTimeout, def.IdleTimeout},
		{"handshake_timeout", &cfg.HandshakeTimeout, def.HandshakeTimeout},
		{"buffer_wait_timeout", &cfg.BufferWaitTimeout, def.BufferWaitTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return nil, fmt.Errorf("forward input %s: %s must be positive, got %s", id, d.name, *d.v)
		}
	}
	if cfg.InsecureListen {
		log.Warn("insecure_listen: the forward listener may accept unauthenticated, unencrypted clients from other hosts", "listen", cfg.Listen)
	}
	budgetFrom := "max_buffered_bytes"
	if cfg.MaxBufferedBytes == 0 {
		var limit int64
		cfg.MaxBufferedBytes, limit = DefaultMemoryBudget()
		budgetFrom = "default (no container memory limit)"
		if limit > 0 {
			budgetFrom = fmt.Sprintf("a quarter of the container memory limit (%d bytes)", limit)
		}
	} else if cfg.MaxBufferedBytes < minMemoryBudget {
		return nil, fmt.Errorf("forward input %s: max_buffered_bytes must be at least %d (1MiB), got %d", id, minMemoryBudget, cfg.MaxBufferedBytes)
	}
	log.Info("forward input memory budget", "max_buffered_bytes", cfg.MaxBufferedBytes, "from", budgetFrom,
		"buffer_wait_timeout", cfg.BufferWaitTimeout.String())
	if need := cfg.MaxMessageBytes + minReadRoom - initialBufSize; need > cfg.MaxBufferedBytes {
		log.Warn("max_buffered_bytes is smaller than max_message_bytes: larger requests are refused (limit memory)",
			"max_buffered_bytes", cfg.MaxBufferedBytes, "max_message_bytes", cfg.MaxMessageBytes)
	}
	m := newInputMetrics(set, id)
	if cfg.Parser != nil {
		m.parseFailures = set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_payload_parse_failures_total{input=%q,parser=%q}`, id, cfg.Parser.Type))
	}
	in := &Input{
		id:           id,
		cfg:          cfg,
		unixMode:     mode,
		r:            r,
		log:          log, // the agent labels it input=<id>
		m:            m,
		ml:           ml,
		rand:         rand.Reader,
		sourceOf:     sourceOf,
		ready:        make(chan struct{}),
		conns:        make(map[*conn]struct{}),
		tcpPool:      newSlotPool("tcp", "max_connections", cfg.MaxConnections, cfg.MaxConnectionsPerSource, m.limitConnections),
		unixPool:     newSlotPool("unix", "max_unix_connections", cfg.MaxUnixConnections, 0, m.limitUnixConnections),
		rejectLog:    rateLimit{interval: 10 * time.Second},
		evictLog:     rateLimit{interval: 10 * time.Second},
		handshakeLog: rateLimit{interval: 10 * time.Second},
		invalidLog:   rateLimit{interval: 10 * time.Second},
		flushLog:     rateLimit{interval: 10 * time.Second},
		memLog:       rateLimit{interval: 10 * time.Second},
		mlLog:        rateLimit{interval: 10 * time.Second},
		mem:          newMemBudget(int64(cfg.MaxBufferedBytes)),
	}
	budgetGauges(set, id, in.mem)
	if cfg.Tag != "" {
		t, err := record.Compile(cfg.Tag, record.AllowTag)
		if err != nil {
			return nil, fmt.Errorf("forward input %s: %w", id, err)
		}
		in.tmpl = t
	}
	if cfg.TLS != nil && cfg.TLS.Enabled {
		if cfg.Listen == "" {
			return nil, fmt.Errorf("forward input %s: tls needs a tcp listen address", id)
		}
		c, err := serverTLS(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("forward input %s: %w", id, err)
		}
		in.tlsConf = c
	}
	if cfg.Security != nil {
		s, err := newSecurity(cfg.Security)
		if err != nil {
			return nil, fmt.Errorf("forward input %s: %w", id, err)
		}
		in.sec = s
	}
	return in, nil
}

// serverTLS builds the server side TLS config: a certificate, and with
// client_auth a required client certificate signed by ca_file (with a
// ca_file alone, a client certificate is verified if one is sent).
func serverTLS(c *config.TLS) (*tls.Config, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("tls: cert_file and key_file are required")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ca_file %s holds no PEM certificate", c.CAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if c.ClientAuth {
		if conf.ClientCAs == nil {
			return nil, errors.New("tls: client_auth needs ca_file")
		}
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// Addr returns the bound TCP address, or nil if TCP is disabled or binding
// failed. It waits until Run has bound its listeners, so call it after
// starting Run.
func (in *Input) Addr() net.Addr {
	<-in.ready
	return in.addr
}

func (in *Input) markReady() { in.readyOnce.Do(func() { close(in.ready) }) }

// Run binds the listeners (TCP, its UDP heartbeat twin, the unix socket),
// serves connections until ctx is cancelled, then stops: listeners close,
// each connection reads on for a short grace, flushes, sends its last acks
// and closes. Run returns only after every goroutine it started exited. It
// returns an error only if a listener cannot be bound. Run may be called
// once.
func (in *Input) Run(ctx context.Context) error {
	if in.ran.Swap(true) {
		return errors.New("forward input: Run called twice")
	}
	lns, udp, err := in.listen()
	if err != nil {
		in.markReady()
		return err
	}
	in.listening.Store(true) // before markReady: who waited for Addr sees Ready
	in.markReady()

	// Connections run on a context that outlives ctx by stopTimeout, so
	// their final flushes are not cut short by the shutdown itself.
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	var accepters, conns sync.WaitGroup
	for _, ln := range lns {
		pool := in.tcpPool
		if ln.Addr().Network() == "unix" {
			pool = in.unixPool
		}
		accepters.Go(func() { in.accept(connCtx, ln, pool, &conns) })
	}
	if udp != nil {
		accepters.Go(func() { in.heartbeat(udp) })
	}

	<-ctx.Done()
	in.listening.Store(false)
	for _, ln := range lns {
		ln.Close() // also unlinks the unix socket file
	}
	if udp != nil {
		udp.Close()
	}
	accepters.Wait()

	in.mu.Lock()
	in.stopping = true
	for c := range in.conns {
		c.stop()
	}
	in.mu.Unlock()

	done := make(chan struct{})
	go func() { conns.Wait(); close(done) }()
	t := time.NewTimer(drainGrace + stopTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		in.log.Warn("connections did not stop in time; closing them", "after", drainGrace+stopTimeout)
		cancelConns()
		in.mu.Lock()
		for c := range in.conns {
			c.nc.Close()
		}
		in.mu.Unlock()
		<-done
	}
	return nil
}

// listen binds every configured listener. On error, what was bound is
// closed again.
func (in *Input) listen() (lns []net.Listener, udp net.PacketConn, err error) {
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			lns = nil
		}
	}()
	if in.cfg.Listen != "" {
		ln, err := net.Listen("tcp", in.cfg.Listen)
		if err != nil {
			return lns, nil, fmt.Errorf("forward input %s: listen tcp: %w", in.id, err)
		}
		in.addr = ln.Addr()
		if in.tlsConf != nil {
			lns = append(lns, tls.NewListener(ln, in.tlsConf))
		} else {
			lns = append(lns, ln)
		}
		// UDP heartbeat on the same port number. Optional in the protocol,
		// so a failure is logged, not fatal.
		tcp := ln.Addr().(*net.TCPAddr)
		host, _, _ := net.SplitHostPort(in.cfg.Listen)
		udpAddr := net.JoinHostPort(host, strconv.Itoa(tcp.Port))
		if pc, err := net.ListenPacket("udp", udpAddr); err != nil {
			in.log.Warn("udp heartbeat listener not available", "addr", udpAddr, "err", err)
		} else {
			udp = pc
		}
	}
	if in.cfg.Unix != "" {
		ln, err := in.listenUnix(in.cfg.Unix)
		if err != nil {
			if udp != nil {
				udp.Close()
			}
			return lns, nil, fmt.Errorf("forward input %s: %w", in.id, err)
		}
		lns = append(lns, ln)
	}
	in.log.Info("forward input listening", "tcp", in.cfg.Listen, "unix", in.cfg.Unix, "tls", in.tlsConf != nil, "handshake", in.sec != nil)
	return lns, udp, nil
}

// listenUnix binds a unix socket at path. A stale socket file (one nobody
// accepts on, left by a killed agent) is removed first; a live one, or a
// file that is not a socket, is an error. A missing parent directory is
// created (mode 0755, like mkdir -p): a FROM scratch image has no /var/run.
func (in *Input) listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("unix socket %s: create its directory: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("unix socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 100*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("unix socket %s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale unix socket: %w", err)
		}
		in.log.Info("removed stale unix socket", "path", path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen unix: %w", err)
	}
	if err := os.Chmod(path, in.unixMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod unix socket: %w", err)
	}
	if g := in.cfg.UnixGroup; g != "" {
		gid, err := lookupGID(g)
		if err == nil {
			err = os.Chown(path, -1, gid)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("unix socket group %q: %w", g, err)
		}
	}
	return ln, nil
}

// lookupGID resolves a group name or numeric gid.
func lookupGID(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(grp.Gid)
}

// accept serves one listener until it is closed; its connections take
// slots of pool.
func (in *Input) accept(ctx context.Context, ln net.Listener, pool *slotPool, wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			in.log.Error("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c, ok := in.admit(ctx, nc, pool)
		if !ok {
			continue
		}
		in.m.accepted.Inc()
		in.m.connections.Inc()
		wg.Go(func() {
			defer func() {
				in.mu.Lock()
				delete(in.conns, c)
				if c.pool != nil {
					c.pool.remove(c)
				}
				in.mu.Unlock()
				in.m.connections.Dec()
			}()
			c.serve()
		})
	}
}

// admit gives nc a slot of pool, making room if the pool, or the slots of
// nc's source address, are all taken: the connection victim picks is
// closed (reset) and counted in sluice_input_connections_evicted_total. If
// there is nothing to evict, nc is refused: reset at once, counted in
// sluice_input_limit_violations_total. Evictions and refusals are logged
// at most every 10 s each.
func (in *Input) admit(ctx context.Context, nc net.Conn, pool *slotPool) (*conn, bool) {
	src := netip.Addr{}
	if pool.perSource > 0 {
		src = in.sourceOf(nc)
	}
	refuse := func(counter *metrics.Counter, msg string, args ...any) {
		in.mu.Unlock()
		// Count before closing: a client that sees the close may read the
		// counter. Reset, as an eviction is: see abort.
		counter.Inc()
		abort(nc)
		if ok, n := in.rejectLog.allow(); ok {
			in.log.Warn(msg, append(args, "remote", remoteAddr(nc), "also_refused_since_last_log", n)...)
		}
	}
	in.mu.Lock()
	if in.stopping {
		in.mu.Unlock()
		nc.Close()
		return nil, false
	}
	var v *conn
	var why string
	switch {
	case src.IsValid() && len(pool.bySource[src]) >= pool.perSource:
		// Evicting one of the source's own also frees a slot of the pool.
		if v, why = victim(pool.bySource[src], time.Now(), in.cfg.IdleTimeout); v == nil {
			refuse(in.m.limitPerSource, "connection refused: max_connections_per_source reached and none of the source's connections may be closed",
				"max_connections_per_source", pool.perSource, "source", src.String())
			return nil, false
		}
	case len(pool.conns) >= pool.max:
		if v, why = victim(pool.conns, time.Now(), in.cfg.IdleTimeout); v == nil {
			refuse(pool.refused, "connection refused: "+pool.option+" reached and none of the connections may be closed",
				pool.option, pool.max, "listener", pool.name)
			return nil, false
		}
	}
	if v != nil {
		v.evicted.Store(true)
		pool.remove(v)
	}
	c := newConn(in, ctx, nc)
	c.source = src
	pool.add(c)
	in.conns[c] = struct{}{}
	in.mu.Unlock()
	if v != nil {
		in.closeEvicted(v, why)
	}
	return c, true
}

// closeEvicted resets v, whose slot admit gave away, and counts and logs
// it.
func (in *Input) closeEvicted(v *conn, why string) {
	in.m.evicted(why).Inc()
	abort(v.nc)
	v.interrupt() // if it waits for memory budget
	if ok, n := in.evictLog.allow(); ok {
		in.log.Warn("closed a connection to make room for a new one", "reason", why,
			"remote", remoteAddr(v.nc), "connected_for", time.Since(v.connected).Round(time.Millisecond).String(),
			"idle_for", time.Since(time.Unix(0, v.lastRead.Load())).Round(time.Millisecond).String(),
			"idle_timeout", in.cfg.IdleTimeout.String(), "also_evicted_since_last_log", n)
	}
}

// heartbeat answers each UDP datagram with the one byte 0x00, as Fluentd's
// in_forward does. The reply is never larger than the request.
func (in *Input) heartbeat(pc net.PacketConn) {
	buf := make([]byte, 128)
	reply := []byte{0}
	for {
		_, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pc.SetWriteDeadline(time.Now().Add(time.Second))
		pc.WriteTo(reply, addr) //nolint:errcheck // best effort, like Fluentd
	}
}

func remoteAddr(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "unix"
}

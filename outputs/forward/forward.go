package forward

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Output sends the chunks of one queue to one or more Forward servers. See
// the package doc for its contract. An Output runs once: Run may be called
// a single time.
type Output struct {
	id  string
	log *slog.Logger
	eng *delivery.Engine

	requireAck     bool
	gzip           bool
	gzipLevel      int
	ackTimeout     time.Duration
	maxInFlight    int
	connectTimeout time.Duration
	heartbeat      time.Duration
	retryInitial   time.Duration
	retryMax       time.Duration
	maxRetries     int
	security       *config.Security

	// salt is the PING shared_key_salt, one per Output as in Fluentd;
	// tests replace it to replay recorded handshakes.
	salt []byte
	// hostname is the PING client hostname (self_hostname).
	hostname string

	// servers is owned by the dispatch loop; mu guards its changes
	// (discovery) for Status, which reads it under mu.
	mu       sync.Mutex
	servers  []*server
	disc     *discovery // nil without a discovery section (discovery.go)
	tlsConf  *tls.Config
	set      *metrics.Set
	spawn    func(*server) // starts a server's worker (set by Run)
	events   chan event
	submit   chan *item // from Send to the dispatch loop
	capacity int        // in-flight slots over all servers: the engine's workers

	// Owned by the dispatch loop.
	ready []*item // waiting for a server, oldest first

	ran sync.Once
}

// item is one request between Send and its verdict.
type item struct {
	tag     []byte
	entries []byte // concatenated Forward entries, as queued
	count   int
	id      string     // the request's "chunk" option
	sentAt  time.Time  // owned by the server worker while in flight
	done    chan error // cap 1: nil when acked, the error when the send failed
}

type evKind uint8

const (
	evUp     evKind = iota // server connected (and authenticated)
	evDown                 // server unreachable or failed
	evAck                  // item delivered
	evFail                 // item's send failed: the engine retries it with back-off
	evBounce               // item never sent: dispatch again at once
)

// event is what server workers report to the Output loop.
type event struct {
	kind evKind
	srv  *server
	it   *item
	err  error
}

// New validates cfg and returns an Output reading from src. id is the
// output's stable id (it keys metrics and chunk ids). Zero values in cfg
// (nil for RequireAck) take the defaults of config.DefaultForwardOutput,
// their single declaration; a server's weight is used as given (0 is a
// valid weight). d is the output's delivery section (its retry settings,
// when zero, come from cfg); the dead-letter queue lives under dataDir
// ("" for none). A nil log discards; a nil set uses a private metrics.Set.
func New(id string, cfg config.ForwardOutput, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if id == "" {
		return nil, errors.New("forward output: empty id")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	def := config.DefaultForwardOutput()
	if cfg.RequireAck == nil {
		cfg.RequireAck = def.RequireAck
	}
	o := &Output{
		id:             id,
		log:            log, // the agent labels it output=<id>
		requireAck:     *cfg.RequireAck,
		gzipLevel:      or(cfg.CompressLevel, def.CompressLevel),
		ackTimeout:     or(cfg.AckTimeout, def.AckTimeout),
		maxInFlight:    or(cfg.MaxInFlight, def.MaxInFlight),
		connectTimeout: or(cfg.ConnectTimeout, def.ConnectTimeout),
		heartbeat:      or(cfg.HeartbeatInterval, def.HeartbeatInterval),
		retryInitial:   or(cfg.RetryInitial, def.RetryInitial),
		retryMax:       or(cfg.RetryMax, def.RetryMax),
		maxRetries:     cfg.MaxRetries,
		security:       cfg.Security,
		set:            set,
	}
	if err := o.validate(cfg); err != nil {
		return nil, fmt.Errorf("forward output %s: %w", id, err)
	}
	if o.security != nil {
		o.hostname = o.security.SelfHostname
		if o.hostname == "" {
			h, err := os.Hostname()
			if err != nil {
				return nil, fmt.Errorf("forward output %s: security.self_hostname is empty and os.Hostname failed: %w", id, err)
			}
			o.hostname = h
		}
		var s [16]byte
		if _, err := rand.Read(s[:]); err != nil {
			return nil, fmt.Errorf("forward output %s: salt: %w", id, err)
		}
		o.salt = hex.AppendEncode(nil, s[:]) // 32 hex chars, as Fluentd
	}
	var tlsConf *tls.Config
	if cfg.TLS != nil && cfg.TLS.Enabled {
		var err error
		if tlsConf, err = clientTLS(cfg.TLS); err != nil {
			return nil, fmt.Errorf("forward output %s: tls: %w", id, err)
		}
	}
	o.tlsConf = tlsConf
	seen := make(map[string]bool)
	for i, sc := range cfg.Servers {
		if seen[sc.Address] {
			return nil, fmt.Errorf("forward output %s: servers[%d]: duplicate address %q", id, i, sc.Address)
		}
		seen[sc.Address] = true
		s, err := newServer(o, sc, tlsConf, set)
		if err != nil {
			return nil, fmt.Errorf("forward output %s: servers[%d]: %w", id, i, err)
		}
		s.static = true
		o.servers = append(o.servers, s)
		o.capacity += o.maxInFlight
	}
	if cfg.Discovery != nil {
		o.disc = newDiscovery(o, cfg.Discovery)
		o.capacity += o.disc.max * o.maxInFlight
	}
	o.events = make(chan event, o.capacity+len(o.servers)+o.discMax())
	o.submit = make(chan *item)
	// The engine's retry settings: the delivery section's, else the
	// output's own (retry_initial, retry_max, max_retries).
	d.RetryInitial = or(d.RetryInitial, o.retryInitial)
	d.RetryMax = or(d.RetryMax, o.retryMax)
	d.MaxRetries = or(d.MaxRetries, o.maxRetries)
	if d.Workers != 0 {
		return nil, fmt.Errorf("forward output %s: delivery.workers: set by max_in_flight and the servers (%d)", id, o.capacity)
	}
	d.Workers = o.capacity
	if d.MaxInFlightBytes == 0 {
		d.MaxInFlightBytes = config.ByteSize(o.capacity+2) * config.DefaultBuffer().ChunkBytes
	}
	opts := delivery.FromConfig(id, dataDir, d, delivery.Defaults{FlushInterval: 100 * time.Millisecond, Eager: true}, log, set)
	var err error
	if o.eng, err = delivery.New(src, o, opts); err != nil {
		return nil, fmt.Errorf("forward output %s: %w", id, err)
	}
	return o, nil
}

func (o *Output) validate(cfg config.ForwardOutput) error {
	switch cfg.Compress {
	case "", "none", "text":
	case "gzip":
		o.gzip = true
	default:
		return fmt.Errorf("compress: %q is not none or gzip", cfg.Compress)
	}
	if err := validateDiscovery(cfg.Discovery); err != nil {
		return err
	}
	switch {
	case len(cfg.Servers) == 0 && cfg.Discovery == nil:
		return errors.New("servers: none configured")
	case o.gzipLevel < 1 || o.gzipLevel > 9:
		return fmt.Errorf("compress_level: %d is not in 1..9", o.gzipLevel)
	case o.maxInFlight < 0:
		return fmt.Errorf("max_in_flight: %d is negative", o.maxInFlight)
	case o.ackTimeout < 0, o.connectTimeout < 0, o.heartbeat < 0, o.retryInitial < 0, o.retryMax < 0:
		return errors.New("ack_timeout, connect_timeout, heartbeat_interval, retry_initial and retry_max must not be negative")
	case o.retryMax < o.retryInitial:
		return fmt.Errorf("retry_max %s is below retry_initial %s", o.retryMax, o.retryInitial)
	case cfg.MaxRetries < 0:
		return fmt.Errorf("max_retries: %d is negative", cfg.MaxRetries)
	case cfg.TLS != nil && !cfg.TLS.Enabled && (cfg.TLS.CAFile != "" || cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != "" || cfg.TLS.ServerName != "" || cfg.TLS.InsecureSkipVerify):
		return errors.New("tls: settings given but enabled is false")
	}
	active := 0
	for _, s := range cfg.Servers {
		if !s.Standby {
			active++
		}
	}
	if active == 0 && cfg.Discovery == nil {
		return errors.New("servers: every server is a standby; at least one must be active")
	}
	return nil
}

func clientTLS(c *config.TLS) (*tls.Config, error) {
	t := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // explicit opt-in
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate found", c.CAFile)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("cert_file and key_file must be set together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// parseAddress maps "host:port", "tcp://host:port" and "unix:///path" to a
// dial network and address.
func parseAddress(a string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(a, "unix://"):
		p := strings.TrimPrefix(a, "unix://")
		if p == "" {
			return "", "", fmt.Errorf("address %q: empty unix socket path", a)
		}
		return "unix", p, nil
	case strings.HasPrefix(a, "tcp://"):
		a = strings.TrimPrefix(a, "tcp://")
	case strings.Contains(a, "://"):
		return "", "", fmt.Errorf("address %q: unknown scheme (want host:port or unix:///path)", a)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", a, err)
	}
	if host == "" || port == "" {
		return "", "", fmt.Errorf("address %q: want host:port", a)
	}
	return "tcp", a, nil
}

// Run sends chunks until ctx is cancelled, then returns nil after every
// goroutine it started has exited. Requests in flight at that moment stay
// unsettled in the queue, which the engine rewinds (and they are re-read
// from disk after a restart anyway). Run returns a non-nil error only when
// the queue fails for another reason than ctx. Run may be called once.
func (o *Output) Run(ctx context.Context) error {
	first := false
	o.ran.Do(func() { first = true })
	if !first {
		return errors.New("forward output: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Only the loop spawns servers once it runs (discovery); wg.Wait
	// below comes after the loop has returned.
	o.spawn = func(s *server) {
		sctx, scancel := context.WithCancel(ctx)
		s.cancel = scancel
		wg.Go(func() { s.run(sctx) })
	}
	for _, s := range o.servers {
		o.spawn(s)
	}
	wg.Go(func() { o.loop(ctx) })
	if o.disc != nil {
		wg.Go(func() { o.disc.run(ctx) })
	}
	err := o.eng.Run(ctx)
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("forward output %s: %w", o.id, err)
	}
	return nil
}

// Drain makes the engine send what it holds at once (shutdown).
func (o *Output) Drain() { o.eng.Drain() }

// encoder builds one PackedForward request: the events of one queued
// chunk (cut at buffer.chunk_bytes by the inputs), entries verbatim and
// not copied (a view into the chunk), so a request is a chunk as before
// the engine, with the chunk's id.
type encoder struct {
	o     *Output
	it    item
	chunk buffer.ID
	last  bool
	own   []byte // entries copied when they are not contiguous
}

// NewEncoder implements delivery.Sink.
func (o *Output) NewEncoder() delivery.Encoder {
	return &encoder{o: o, it: item{done: make(chan error, 1)}}
}

func (e *encoder) Add(ev *delivery.Event) error {
	it := &e.it
	if it.count > 0 && ev.Chunk != e.chunk {
		return delivery.ErrFull
	}
	if it.count == 0 {
		e.chunk = ev.Chunk
		it.tag = append(it.tag[:0], ev.Tag...)
		// Stable for the same events: the first event's queue position.
		it.id = wire.ChunkID(wire.NewChunkID(e.o.id, ev.Chunk.Segment, uint64(ev.Chunk.Offset)+uint64(ev.Index)))
	}
	switch {
	case it.count == 0:
		it.entries = ev.Entry // a view into the chunk, which the engine holds until settled
	case adjacent(it.entries, ev.Entry):
		it.entries = it.entries[:len(it.entries)+len(ev.Entry)]
	default: // not contiguous in the chunk (a retry of some events): copy
		e.own = append(append(e.own[:0], it.entries...), ev.Entry...)
		it.entries = e.own
	}
	it.count++
	e.last = ev.Last
	return nil
}

// adjacent reports whether b starts right where a ends, in one array.
func adjacent(a, b []byte) bool {
	return len(b) > 0 && cap(a)-len(a) >= len(b) && &a[:len(a)+1][len(a)] == &b[0]
}

func (e *encoder) Full() bool { return e.last }
func (e *encoder) Len() int   { return e.it.count }
func (e *encoder) Bytes() int { return len(e.it.entries) }
func (e *encoder) Reset() {
	e.it.entries, e.it.count, e.last = nil, 0, false
	select {
	case <-e.it.done: // a verdict that came after Send gave up
	default:
	}
}

// Send implements delivery.Sink: it hands the request to the dispatch
// loop, which picks a server, and waits for the server's verdict.
func (o *Output) Send(ctx context.Context, enc delivery.Encoder, _ []delivery.Result) error {
	it := &enc.(*encoder).it
	select {
	case o.submit <- it:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loop owns the scheduling state: which request goes to which server. It
// returns on ctx.
func (o *Output) loop(ctx context.Context) {
	for {
		o.dispatch()
		select {
		case <-ctx.Done():
			return
		case it := <-o.submit:
			o.ready = append(o.ready, it)
		case ev := <-o.events:
			o.handle(ev)
			if s := ev.srv; s.draining && s.inflight == 0 {
				o.retire(s)
			}
		case set := <-o.discChan():
			o.apply(set)
		}
	}
}

func (o *Output) handle(ev event) {
	s := ev.srv
	switch ev.kind {
	case evUp:
		s.up = true
		return
	case evDown:
		s.up = false
		return
	}
	s.inflight--
	it := ev.it
	switch ev.kind {
	case evAck:
		it.done <- nil
	case evBounce:
		o.ready = append(o.ready, nil)
		copy(o.ready[1:], o.ready)
		o.ready[0] = it
	case evFail:
		s.m.retries.Inc()
		it.done <- fmt.Errorf("server %s: %w", s.name, ev.err)
	}
}

// dispatch hands ready chunks to servers while one can take them.
func (o *Output) dispatch() {
	for len(o.ready) > 0 {
		s := o.pick()
		if s == nil {
			return
		}
		it := o.ready[0]
		n := copy(o.ready, o.ready[1:]) // short list: keep its array
		o.ready[n] = nil
		o.ready = o.ready[:n]
		s.inflight++
		s.requests <- it // never blocks: len(s.requests) ≤ s.inflight ≤ cap(s.requests)
	}
}

// pick chooses a server by smooth weighted round-robin among the healthy
// servers with a free in-flight slot: active servers while any of them is
// up, standby servers only when every active one is down. It returns nil
// when no server can take a chunk now.
func (o *Output) pick() *server {
	activeUp := false
	for _, s := range o.servers {
		if !s.standby && s.up && !s.draining {
			activeUp = true
			break
		}
	}
	var best *server
	total := 0
	for _, s := range o.servers {
		if !s.up || s.draining || s.standby == activeUp || s.inflight >= o.maxInFlight {
			continue
		}
		s.current += s.weight
		total += s.weight
		if best == nil || s.current > best.current {
			best = s
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

// or returns v, or d if v is zero.
func or[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

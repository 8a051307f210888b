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
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Source is what the output needs of its queue; *buffer.Queue satisfies it.
//
// Next returns the next unread chunk, blocking until one exists or ctx is
// done. Ack deletes a delivered chunk for good; Discard deletes one the
// output gave up on, counted apart by reason and never as delivered.
// Chunks may be settled in any order. Rewind makes every unsettled chunk
// readable again.
type Source interface {
	Next(ctx context.Context) (buffer.Chunk, error)
	Ack(id buffer.ID)
	Discard(id buffer.ID, reason string)
	Rewind()
}

// discardMaxRetries is the Discard reason of a chunk dropped after
// max_retries failed sends.
const discardMaxRetries = "max_retries"

// Output sends the chunks of one queue to one or more Forward servers. See
// the package doc for its contract. An Output runs once: Run may be called
// a single time.
type Output struct {
	id  string
	src Source
	log *slog.Logger

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

	servers []*server
	events  chan event

	// Owned by Run's loop.
	ready    []*item // waiting for a server, oldest first
	retry    []*item // waiting for their back-off
	held     int     // items read from src and not yet acked or dropped
	capacity int     // bound on held
	dropped  *metrics.Counter

	ran sync.Once
}

// item is one chunk in memory between src.Next and src.Ack.
type item struct {
	chunk    buffer.Chunk
	id       string    // the request's "chunk" option
	attempts int       // failed sends so far
	due      time.Time // retry: not before
	sentAt   time.Time // owned by the server worker while in flight
}

type evKind uint8

const (
	evUp     evKind = iota // server connected (and authenticated)
	evDown                 // server unreachable or failed
	evAck                  // item delivered
	evFail                 // item's send failed: retry with back-off
	evBounce               // item never sent: dispatch again
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
// valid weight). A nil log discards; a nil set uses a private metrics.Set.
func New(id string, cfg config.ForwardOutput, src Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if id == "" {
		return nil, errors.New("forward output: empty id")
	}
	if src == nil {
		return nil, fmt.Errorf("forward output %s: nil source", id)
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
		src:            src,
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
		dropped:        set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_dropped_chunks_total{output=%q}`, id)),
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
		o.servers = append(o.servers, s)
		o.capacity += o.maxInFlight
	}
	o.events = make(chan event, o.capacity+len(o.servers))
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
	switch {
	case len(cfg.Servers) == 0:
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
	if active == 0 {
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
// goroutine it started has exited. Chunks in flight at that moment stay
// unacked in the queue; Run rewinds src so that they are read again by the
// next consumer (and they are re-read from disk after a restart anyway).
// Run returns a non-nil error only when src.Next fails for another reason
// than ctx. Run may be called once.
func (o *Output) Run(ctx context.Context) error {
	first := false
	o.ran.Do(func() { first = true })
	if !first {
		return errors.New("forward output: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	chunks := make(chan buffer.Chunk)
	fetchErr := make(chan error, 1)
	wg.Go(func() { o.fetch(ctx, chunks, fetchErr) })
	for _, s := range o.servers {
		wg.Go(func() { s.run(ctx) })
	}
	err := o.loop(ctx, chunks, fetchErr)
	cancel()
	wg.Wait()
	o.src.Rewind()
	return err
}

// fetch feeds chunks from src to the loop. It holds at most one chunk the
// loop has not taken.
func (o *Output) fetch(ctx context.Context, out chan<- buffer.Chunk, errc chan<- error) {
	for {
		c, err := o.src.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				errc <- fmt.Errorf("forward output %s: next chunk: %w", o.id, err)
			}
			return
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
	}
}

// loop owns the scheduling state: which chunk goes to which server, and
// retries. It returns on ctx or on a source error.
func (o *Output) loop(ctx context.Context, chunks <-chan buffer.Chunk, fetchErr <-chan error) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		o.dispatch()
		var in <-chan buffer.Chunk
		if len(o.ready) == 0 && o.held < o.capacity {
			in = chunks
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-fetchErr:
			return err
		case c := <-in:
			o.held++
			o.ready = append(o.ready, &item{chunk: c, id: wire.ChunkID(wire.NewChunkID(o.id, c.ID.Segment, uint64(c.ID.Offset)))})
		case ev := <-o.events:
			o.handle(ev)
		case <-timer.C:
			o.promote(time.Now())
		}
		if len(o.retry) > 0 {
			timer.Reset(time.Until(o.nextDue()))
		} else {
			timer.Stop()
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
		o.held--
		o.src.Ack(it.chunk.ID)
	case evBounce:
		o.ready = append(o.ready, nil)
		copy(o.ready[1:], o.ready)
		o.ready[0] = it
	case evFail:
		it.attempts++
		if o.maxRetries > 0 && it.attempts > o.maxRetries {
			o.held--
			o.dropped.Inc()
			o.log.Error("dropping chunk after too many failed sends",
				"tag", string(it.chunk.Tag), "events", it.chunk.Count, "bytes", len(it.chunk.Entries),
				"attempts", it.attempts, "server", s.name, "err", ev.err)
			o.src.Discard(it.chunk.ID, discardMaxRetries)
			return
		}
		s.m.retries.Inc()
		it.due = time.Now().Add(o.backoff(it.attempts))
		o.retry = append(o.retry, it)
	}
}

// backoff is the delay before retry n (n ≥ 1): uniform in
// [0, min(retryMax, retryInitial·2^(n-1))] ("full jitter").
func (o *Output) backoff(n int) time.Duration {
	d := o.retryInitial
	for i := 1; i < n && d < o.retryMax; i++ {
		d *= 2
	}
	d = min(d, o.retryMax)
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

func (o *Output) nextDue() time.Time {
	t := o.retry[0].due
	for _, it := range o.retry[1:] {
		if it.due.Before(t) {
			t = it.due
		}
	}
	return t
}

// promote moves retries that are due to the front of the ready list,
// oldest first.
func (o *Output) promote(now time.Time) {
	var due []*item
	keep := o.retry[:0]
	for _, it := range o.retry {
		if !it.due.After(now) {
			due = append(due, it)
		} else {
			keep = append(keep, it)
		}
	}
	clear(o.retry[len(keep):])
	o.retry = keep
	if len(due) > 0 {
		o.ready = append(due, o.ready...)
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
		if !s.standby && s.up {
			activeUp = true
			break
		}
	}
	var best *server
	total := 0
	for _, s := range o.servers {
		if !s.up || s.standby == activeUp || s.inflight >= o.maxInFlight {
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

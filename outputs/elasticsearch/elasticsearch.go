package elasticsearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Engine defaults of this output type (config.Delivery zero fields).
const (
	DefaultWorkers       = 2
	DefaultFlushInterval = time.Second
)

const (
	// filterPath trims the answer to what the output reads: a 5000-item
	// response shrinks from ~1 MB to ~100 kB.
	filterPath = "filter_path=errors,items.*.status,items.*.error"
	// maxResponseBytes bounds the answer read into memory.
	maxResponseBytes = 64 << 20
	// minBulkLimit is the floor of the byte limit learned from 413s.
	minBulkLimit = 1024
	// maxHostBackoff caps a failing host's exclusion.
	maxHostBackoff = 2 * time.Minute
	// errorLogEvery bounds the error logs about credentials and 413s.
	errorLogEvery = 30 * time.Second
)

// Output is the elasticsearch output: a delivery engine whose sink posts
// _bulk requests.
type Output struct {
	eng *delivery.Engine
	s   *sink
}

// New returns an elasticsearch output for cfg; zero fields of cfg take
// the defaults of config.DefaultElasticsearchOutput, then cfg is checked
// with the rules of config validation. d is the output's delivery section
// (zero fields: Workers 2, FlushInterval 1s, then the engine's defaults);
// the dead-letter queue lives under dataDir/deadletter/<id>.
func New(id string, cfg config.ElasticsearchOutput, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if id == "" {
		return nil, errors.New("elasticsearch output: empty id")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("elasticsearch output %s: %w", id, err)
	}
	s, err := newSink(id, &cfg, d, log, set)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch output %s: %w", id, err)
	}
	opts := delivery.FromConfig(id, dataDir, d, delivery.Defaults{Workers: DefaultWorkers, FlushInterval: DefaultFlushInterval}, log, set)
	eng, err := delivery.New(src, s, opts)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch output %s: %w", id, err)
	}
	return &Output{eng: eng, s: s}, nil
}

// withDefaults fills the zero fields of c.
func withDefaults(c config.ElasticsearchOutput) config.ElasticsearchOutput {
	def := config.DefaultElasticsearchOutput()
	if c.Index == "" && c.DataStream == "" {
		c.Index = def.Index
	}
	or := func(p *string, d string) {
		if *p == "" {
			*p = d
		}
	}
	or(&c.OpType, def.OpType)
	or(&c.IDMode, def.IDMode)
	or(&c.TimeKey, def.TimeKey)
	or(&c.TimeFormat, def.TimeFormat)
	or(&c.Compress, def.Compress)
	ori := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	ori(&c.MaxBulkBytes, def.MaxBulkBytes)
	ori(&c.MaxBulkEvents, def.MaxBulkEvents)
	ori(&c.CompressLevel, def.CompressLevel)
	if c.RequestTimeout == 0 {
		c.RequestTimeout = def.RequestTimeout
	}
	if c.HostBackoff == 0 {
		c.HostBackoff = def.HostBackoff
	}
	return c
}

// Run delivers until ctx is done; unsettled chunks stay in the queue.
func (o *Output) Run(ctx context.Context) error {
	defer o.s.client.CloseIdleConnections()
	return o.eng.Run(ctx)
}

// Drain sends what the engine holds at once (shutdown).
func (o *Output) Drain() { o.eng.Drain() }

// LastError returns the last failure the output met and when.
func (o *Output) LastError() (string, time.Time) { return o.eng.LastError() }

// sink posts bulk requests; it implements delivery.Sink. Its fields are
// fixed at New except the host states (under hosts.mu), the learned byte
// limit, proven and the log limiter (atomic or under mu).
type sink struct {
	id      string
	log     *slog.Logger
	set     *settings
	create  bool
	client  *http.Client
	header  http.Header
	timeout time.Duration
	aws     *awsSigner
	hosts   *hostSet

	// proven is set once the server answered a bulk request with 2xx: a
	// 400 refusing a single event is then that event's fault.
	proven atomic.Bool

	conflicts *metrics.Counter

	mu      sync.Mutex
	lastLog map[string]time.Time
}

func newSink(id string, c *config.ElasticsearchOutput, d config.Delivery, log *slog.Logger, set *metrics.Set) (*sink, error) {
	target := c.Index
	if c.DataStream != "" {
		target = c.DataStream
	}
	tmpl, err := compileTemplate(target)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	tf, err := timeFormat(c.TimeFormat)
	if err != nil {
		return nil, err
	}
	doc, err := jsonl.NewEncoder(jsonl.Options{TimeKey: c.TimeKey, TimeFormat: tf, TagKey: c.TagKey})
	if err != nil {
		return nil, err
	}
	s := &sink{
		id:        id,
		log:       log,
		create:    c.OpType != "index",
		timeout:   c.RequestTimeout,
		conflicts: set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_es_conflicts_total{output=%q}`, id)),
		lastLog:   map[string]time.Time{},
	}
	limit := &bulkLimit{gauge: set.GetOrCreateGauge(fmt.Sprintf(`sluice_output_es_bulk_limit_bytes{output=%q}`, id), nil)}
	limit.v.Store(int64(c.MaxBulkBytes))
	limit.gauge.Set(float64(c.MaxBulkBytes))
	s.set = &settings{
		id:        id,
		tmpl:      tmpl,
		action:    []byte(`{"create":{"_index":`),
		stableIDs: c.StableIDs(),
		doc:       doc,
		maxBytes:  c.MaxBulkBytes,
		maxEvents: c.MaxBulkEvents,
		limit:     limit,
	}
	if !s.create {
		s.set.action = []byte(`{"index":{"_index":`)
	}
	if c.Compress == "gzip" {
		s.set.gzipLevel = c.CompressLevel
	}

	query := "?" + filterPath
	if c.Pipeline != "" {
		query += "&pipeline=" + url.QueryEscape(c.Pipeline)
	}
	var urls []*url.URL
	s.hosts = &hostSet{backoff: c.HostBackoff, log: log}
	for _, h := range c.Hosts {
		u, err := config.ParseElasticsearchHost(h)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", h, err)
		}
		urls = append(urls, u)
		base := strings.TrimSuffix(u.String(), "/")
		s.hosts.list = append(s.hosts.list, &host{
			name:     base,
			bulkURL:  base + "/_bulk" + query,
			failures: set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_es_host_failures_total{output=%q,host=%q}`, id, base)),
		})
	}

	s.header = http.Header{}
	s.header.Set("Content-Type", "application/x-ndjson")
	s.header.Set("User-Agent", "sluice")
	if s.set.gzipLevel > 0 {
		s.header.Set("Content-Encoding", "gzip")
	}
	for _, h := range c.Headers {
		s.header.Set(h.Name, string(h.Value))
	}
	switch {
	case c.Username != "":
		s.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.Username+":"+string(c.Password))))
	case c.APIKey != "":
		s.header.Set("Authorization", "ApiKey "+string(c.APIKey))
	}
	if c.AWS != nil {
		if s.aws, err = newAWSSigner(context.Background(), c.AWS, urls); err != nil {
			return nil, err
		}
	}

	tlsConf, err := clientTLS(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	workers := d.Workers
	if workers == 0 {
		workers = DefaultWorkers
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.MaxIdleConnsPerHost = 2 * workers
	tr.DialContext = (&net.Dialer{Timeout: min(10*time.Second, c.RequestTimeout), KeepAlive: 30 * time.Second}).DialContext
	s.client = &http.Client{
		Transport: tr,
		// A redirect would drop the body's credentials or loop: report it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

func timeFormat(s string) (jsonl.TimeFormat, error) {
	for _, f := range []jsonl.TimeFormat{jsonl.RFC3339Nano, jsonl.EpochMillis, jsonl.EpochSeconds, jsonl.EpochNanos} {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("time_format: unknown %q", s)
}

func clientTLS(c *config.TLS) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c == nil {
		return t, nil
	}
	t.ServerName = c.ServerName
	t.InsecureSkipVerify = c.InsecureSkipVerify //nolint:gosec // explicit opt-in
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

// NewEncoder implements delivery.Sink.
func (s *sink) NewEncoder() delivery.Encoder { return newEncoder(s.set) }

// Send implements delivery.Sink.
func (s *sink) Send(ctx context.Context, enc delivery.Encoder, res []delivery.Result) error {
	e := enc.(*encoder)
	if e.n == 0 {
		return nil
	}
	return s.exchange(ctx, e, 0, e.n, res)
}

// exchange sends the events [lo, hi) of e in one request and sets
// res[lo:hi], or returns the whole request's error. A 400 for the request
// as a whole is bisected (see the package doc); a 413 lowers the byte
// limit of later batches.
func (s *sink) exchange(ctx context.Context, e *encoder, lo, hi int, res []delivery.Result) error {
	raw := e.body[e.offs[lo]:e.end(hi-1)]
	payload := raw
	if s.set.gzipLevel > 0 {
		var err error
		if payload, err = e.compress(raw); err != nil {
			return err
		}
	}
	st, hdr, h, err := s.roundTrip(ctx, e, payload)
	if err != nil {
		return err
	}
	if st >= 200 && st < 300 {
		s.proven.Store(true)
		return s.items(e, h, lo, hi, res)
	}
	typ, msg := describe(e.rbuf.Bytes())
	serr := &statusError{status: st, typ: typ, msg: msg, host: h.name}
	switch {
	case st == http.StatusRequestEntityTooLarge:
		if hi-lo == 1 {
			res[lo] = delivery.Result{Status: delivery.Refuse, Reason: "too_large",
				Detail: fmt.Sprintf("the server refused a request of this event alone (%d bytes) as too large (413)", len(raw))}
			return nil
		}
		limit, lowered := s.set.limit.shrink(len(raw))
		serr.hint = fmt.Sprintf("a request of %d bytes is over the server's http.max_content_length; requests are capped at %d bytes from now on: lower max_bulk_bytes", len(raw), limit)
		if lowered {
			s.logError("413", "bulk request too large for the server; sending smaller requests", "err", serr)
		}
		return serr
	case st == http.StatusBadRequest:
		if hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if err := s.exchange(ctx, e, lo, mid, res); err != nil {
				return err
			}
			return s.exchange(ctx, e, mid, hi, res)
		}
		if s.proven.Load() {
			res[lo] = delivery.Result{Status: delivery.Refuse, Reason: reasonOf(typ, st), Detail: msg}
			return nil
		}
		serr.hint = "the server refused the request as a whole and has accepted none yet: retrying"
		return serr
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		serr.hint = "check username and password, api_key or the AWS credentials and permissions; events stay queued"
		s.logError("auth", "the server refused the credentials; retrying, events stay queued", "err", serr)
		return serr
	case st >= 300 && st < 400:
		serr.hint = "redirected to " + hdr.Get("Location") + ": fix hosts"
	case st == http.StatusNotFound:
		serr.hint = "check the hosts' path prefix"
	}
	if d := retryAfter(hdr.Get("Retry-After"), time.Now()); d > 0 {
		return &delivery.RetryAfterError{Err: serr, After: d}
	}
	return serr
}

// items maps the answer's items onto res[lo:hi].
func (s *sink) items(e *encoder, h *host, lo, hi int, res []delivery.Result) error {
	r := &e.resp
	if err := r.parse(e.rbuf.Bytes()); err != nil {
		return fmt.Errorf("%s: bulk response does not parse: %v", h.name, err)
	}
	if len(r.Items) != hi-lo {
		err := fmt.Errorf("%s: bulk response has %d items for %d documents; retrying them all", h.name, len(r.Items), hi-lo)
		s.logError("items", "bulk response does not match the request", "err", err)
		return err
	}
	for k := range r.Items {
		out, conflict := classify(&r.Items[k], s.create)
		res[lo+k] = out
		if conflict {
			s.conflicts.Inc()
		}
	}
	return nil
}

// roundTrip posts payload to a host, failing over at once to the next
// host on a connection failure or a 502, 503 or 504, each host at most
// once. It returns the last answer's status and header (the body is in
// e.rbuf) and the host, or the last transport error.
func (s *sink) roundTrip(ctx context.Context, e *encoder, payload []byte) (int, http.Header, *host, error) {
	n := len(s.hosts.list)
	if cap(e.tried) < n {
		e.tried = make([]bool, n)
	}
	tried := e.tried[:n]
	clear(tried)
	var hash string
	if s.aws != nil {
		sum := sha256.Sum256(payload)
		hash = hex.EncodeToString(sum[:])
	}
	var (
		lastErr error
		lastSt  int
		lastHdr http.Header
		lastH   *host
	)
	for {
		i := s.hosts.pick(time.Now(), tried)
		if i < 0 {
			if lastSt != 0 {
				return lastSt, lastHdr, lastH, nil
			}
			return 0, nil, nil, lastErr
		}
		tried[i] = true
		h := s.hosts.list[i]
		st, hdr, err := s.post(ctx, e, h, payload, hash)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return 0, nil, nil, ctx.Err()
			}
			s.hosts.fail(i, err)
			if !isDialError(err) {
				return 0, nil, nil, err
			}
			lastErr, lastSt = err, 0
		case st == http.StatusBadGateway || st == http.StatusServiceUnavailable || st == http.StatusGatewayTimeout:
			s.hosts.fail(i, fmt.Errorf("HTTP %d", st))
			lastSt, lastHdr, lastH, lastErr = st, hdr, h, nil
		default:
			s.hosts.ok(i)
			return st, hdr, h, nil
		}
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// post sends one request and reads the answer into e.rbuf.
func (s *sink) post(outer context.Context, e *encoder, h *host, payload []byte, hash string) (int, http.Header, error) {
	ctx, cancel := context.WithTimeout(outer, s.timeout)
	// The transport may still read the body after Do returned (a server
	// that answers before reading it all, as a 413 does): payload is
	// reused only once the transport closed it. Cancelling first ends a
	// write still in progress.
	body := &requestBody{closed: make(chan struct{})}
	body.Reset(payload)
	defer func() {
		cancel()
		select {
		case <-body.closed:
		case <-outer.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.bulkURL, body)
	if err != nil {
		body.Close()
		return 0, nil, err
	}
	req.ContentLength = int64(len(payload))
	req.Header = s.header.Clone()
	if s.aws != nil {
		if err := s.aws.sign(ctx, req, hash); err != nil {
			body.Close()
			return 0, nil, err
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	e.rbuf.Reset()
	_, err = e.rbuf.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("%s: reading the answer: %w", h.name, err)
	}
	return resp.StatusCode, resp.Header, nil
}

// requestBody is a request body that reports when the transport closed
// it.
type requestBody struct {
	bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *requestBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// logError logs at error level at most once per errorLogEvery and kind.
func (s *sink) logError(kind, msg string, args ...any) {
	now := time.Now()
	s.mu.Lock()
	last, ok := s.lastLog[kind]
	if ok && now.Sub(last) < errorLogEvery {
		s.mu.Unlock()
		return
	}
	s.lastLog[kind] = now
	s.mu.Unlock()
	s.log.Error(msg, args...)
}

// bulkLimit is the byte limit of a batch with more than one event:
// max_bulk_bytes, lowered to half of a request the server answered 413.
type bulkLimit struct {
	v     atomic.Int64
	gauge *metrics.Gauge
}

func (l *bulkLimit) get() int { return int(l.v.Load()) }

// shrink lowers the limit below a refused request of sent bytes; it
// reports the limit and whether it changed.
func (l *bulkLimit) shrink(sent int) (int, bool) {
	nv := max(int64(sent/2), minBulkLimit)
	for {
		cur := l.v.Load()
		if nv >= cur {
			return int(cur), false
		}
		if l.v.CompareAndSwap(cur, nv) {
			l.gauge.Set(float64(nv))
			return int(nv), true
		}
	}
}

// host is one server.
type host struct {
	name     string // base URL
	bulkURL  string
	failures *metrics.Counter

	// Under hostSet.mu.
	fails     int
	downUntil time.Time
}

// hostSet rotates requests over the hosts, skipping the ones that failed
// within their back-off.
type hostSet struct {
	backoff time.Duration
	log     *slog.Logger

	mu   sync.Mutex
	list []*host
	next int
}

// pick returns the next host in rotation that is up and not in tried; if
// every untried host is down, the one whose back-off ends first; -1 when
// every host was tried.
func (hs *hostSet) pick(now time.Time, tried []bool) int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	n := len(hs.list)
	best := -1
	for k := range n {
		i := (hs.next + k) % n
		if tried[i] {
			continue
		}
		h := hs.list[i]
		if !h.downUntil.After(now) {
			hs.next = (i + 1) % n
			return i
		}
		if best < 0 || h.downUntil.Before(hs.list[best].downUntil) {
			best = i
		}
	}
	if best >= 0 {
		hs.next = (best + 1) % n
	}
	return best
}

func (hs *hostSet) fail(i int, err error) {
	hs.mu.Lock()
	h := hs.list[i]
	h.fails++
	d := hs.backoff
	for k := 1; k < h.fails && d < maxHostBackoff; k++ {
		d *= 2
	}
	d = min(d, max(maxHostBackoff, hs.backoff))
	h.downUntil = time.Now().Add(d)
	first := h.fails == 1
	hs.mu.Unlock()
	h.failures.Inc()
	if first {
		hs.log.Warn("host down; skipping it while others are up", "host", h.name, "for", d, "err", err)
	}
}

func (hs *hostSet) ok(i int) {
	hs.mu.Lock()
	h := hs.list[i]
	was := h.fails
	h.fails, h.downUntil = 0, time.Time{}
	hs.mu.Unlock()
	if was > 0 {
		hs.log.Info("host up again", "host", h.name, "failures", was)
	}
}

package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Engine defaults of this output type (config.Delivery zero fields).
const (
	DefaultWorkers       = config.KafkaDefaultWorkers
	DefaultFlushInterval = config.KafkaDefaultFlushInterval
	DefaultInFlightBytes = config.KafkaDefaultInFlightBytes
)

// errorLogEvery bounds the error logs of one kind (credentials, unknown
// topics, refused batches).
const errorLogEvery = 30 * time.Second

// Output is the kafka output: a delivery engine whose sink produces each
// batch's records with a franz-go client and waits for the broker's
// acknowledgement of every one.
type Output struct {
	eng *delivery.Engine
	s   *sink
}

// New returns a kafka output for cfg; zero fields of cfg take the
// defaults of config.DefaultKafkaOutput, then cfg is checked with the
// rules of config validation. d is the output's delivery section (zero
// fields: Workers 4, FlushInterval 100ms, MaxInFlightBytes 16 MiB, eager
// batches, then the engine's defaults); the dead-letter queue lives under dataDir/deadletter/<id>.
// The client connects lazily: New does not need a broker up.
func New(id string, cfg config.KafkaOutput, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if id == "" {
		return nil, errors.New("kafka output: empty id")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka output %s: %w", id, err)
	}
	opts := delivery.FromConfig(id, dataDir, d, delivery.Defaults{Workers: DefaultWorkers, FlushInterval: DefaultFlushInterval, Eager: true}, log, set)
	if d.MaxInFlightBytes == 0 {
		opts.MaxInFlightBytes = DefaultInFlightBytes
	}
	s, err := newSink(id, &cfg, opts.Workers, log, set)
	if err != nil {
		return nil, fmt.Errorf("kafka output %s: %w", id, err)
	}
	eng, err := delivery.New(src, s, opts)
	if err != nil {
		s.client.Close()
		return nil, fmt.Errorf("kafka output %s: %w", id, err)
	}
	return &Output{eng: eng, s: s}, nil
}

// withDefaults fills the zero fields of c.
func withDefaults(c config.KafkaOutput) config.KafkaOutput {
	def := config.DefaultKafkaOutput()
	or := func(p *string, d string) {
		if *p == "" {
			*p = d
		}
	}
	or(&c.Topic, def.Topic)
	or(&c.Format, def.Format)
	or(&c.RawKey, def.RawKey)
	or(&c.TimeFormat, def.TimeFormat)
	or(&c.Acks, def.Acks)
	or(&c.Compression, def.Compression)
	or(&c.ClientID, def.ClientID)
	if c.Idempotent == nil {
		c.Idempotent = def.Idempotent
	}
	if c.AutoCreateTopics == nil {
		c.AutoCreateTopics = def.AutoCreateTopics
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = def.MaxMessageBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = def.MaxBatchBytes
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = def.MaxBatchEvents
	}
	for _, p := range []struct{ v, d *time.Duration }{
		{&c.RequestTimeout, &def.RequestTimeout}, {&c.DeliveryTimeout, &def.DeliveryTimeout}, {&c.DialTimeout, &def.DialTimeout},
	} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	// time_key, tag_key, tag_header and linger are taken as given: "" and
	// 0 are meaningful. A config file gets their defaults from decoding.
	return c
}

// Run delivers until ctx is done, then closes the client: records the
// producer still held fail, and their chunks stay in the queue.
func (o *Output) Run(ctx context.Context) error {
	err := o.eng.Run(ctx)
	o.s.close()
	return err
}

// Drain sends what the engine holds at once (shutdown).
func (o *Output) Drain() { o.eng.Drain() }

// LastError returns the last failure the output met and when.
func (o *Output) LastError() (string, time.Time) { return o.eng.LastError() }

// outputMetrics are the output's own series, labelled output=<id>:
//
//	sluice_output_kafka_raw_fallback_events_total (format raw, no raw field)
//	sluice_output_kafka_record_errors_total{error} (per failed record, by
//	  the broker's error name or timeout, retries, canceled, client_closed)
//	sluice_output_kafka_isolated_records_total (records sent again alone
//	  after their partition's batch was refused for good)
type outputMetrics struct {
	set         *metrics.Set
	id          string
	rawFallback *metrics.Counter

	mu     sync.Mutex
	errors map[string]*metrics.Counter
}

func (m *outputMetrics) recordError(name string, n int) {
	m.mu.Lock()
	c, ok := m.errors[name]
	if !ok {
		c = m.set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_kafka_record_errors_total{output=%q,error=%q}`, m.id, name))
		m.errors[name] = c
	}
	m.mu.Unlock()
	c.Add(n)
}

// sink produces batches; it implements delivery.Sink.
type sink struct {
	id     string
	log    *slog.Logger
	set    *settings
	client *kgo.Client
	// deliveryTimeout is the context deadline of a batch's records: the
	// producer fails those not in flight once it passes (its own
	// RecordDeliveryTimeout counts from the record's timestamp, which is
	// the event time).
	deliveryTimeout time.Duration
	opts            []kgo.Opt // the client's, for the probe

	// probe produces records refused for good one at a time (isolate).
	probeMu  sync.Mutex
	probe    *kgo.Client
	isolated *metrics.Counter

	mu      sync.Mutex
	lastLog map[string]time.Time
}

func newSink(id string, c *config.KafkaOutput, workers int, log *slog.Logger, set *metrics.Set) (*sink, error) {
	topic, err := compileTopic(c.Topic)
	if err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	tf, err := timeFormat(c.TimeFormat)
	if err != nil {
		return nil, err
	}
	js, err := jsonl.NewEncoder(jsonl.Options{TimeKey: c.TimeKey, TimeFormat: tf, TagKey: c.TagKey, OmitTime: c.TimeKey == ""})
	if err != nil {
		return nil, err
	}
	m := &outputMetrics{
		set:         set,
		id:          id,
		rawFallback: set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_kafka_raw_fallback_events_total{output=%q}`, id)),
		errors:      map[string]*metrics.Counter{},
	}
	st := &settings{
		id:        id,
		topic:     topic,
		key:       newPath(c.KeyField),
		json:      js,
		maxMsg:    int(c.MaxMessageBytes),
		maxBytes:  int(c.MaxBatchBytes),
		maxEvents: c.MaxBatchEvents,
		m:         m,
	}
	if c.Format == "raw" {
		st.rawKey = []byte(c.RawKey)
	}
	if c.TagHeader != "" {
		st.headers = append(st.headers, header{name: c.TagHeader, tag: true})
	}
	for _, h := range c.Headers {
		hd := header{name: h.Name}
		if h.Field != "" {
			hd.field = newPath(h.Field)
		} else {
			hd.value = []byte(h.Value)
		}
		st.headers = append(st.headers, hd)
	}

	s := &sink{id: id, log: log, set: st, deliveryTimeout: c.DeliveryTimeout, lastLog: map[string]time.Time{},
		isolated: set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_kafka_isolated_records_total{output=%q}`, id))}
	opts, err := clientOptions(c, workers, log)
	if err != nil {
		return nil, err
	}
	s.opts = opts
	if s.client, err = kgo.NewClient(opts...); err != nil {
		return nil, err
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

// clientOptions maps the section to franz-go's options.
func clientOptions(c *config.KafkaOutput, workers int, log *slog.Logger) ([]kgo.Opt, error) {
	acks := kgo.AllISRAcks()
	switch c.Acks {
	case "leader":
		acks = kgo.LeaderAck()
	case "none":
		acks = kgo.NoAck()
	}
	var codec kgo.CompressionCodec
	switch c.Compression {
	case "zstd":
		codec = kgo.ZstdCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	default:
		codec = kgo.NoCompression()
	}
	switch {
	case c.CompressionLevel != 0:
		codec = codec.WithLevel(c.CompressionLevel)
	case c.Compression == "zstd" || c.Compression == "gzip":
		// Their fastest level: log records compress well at any level,
		// and the agent's CPU is the budget (zstd 1 costs about 0.3 µs
		// less per event than zstd's default 2).
		codec = codec.WithLevel(1)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(codec, kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(int32(c.MaxMessageBytes)),
		kgo.ProducerLinger(c.Linger),
		kgo.ProduceRequestTimeout(c.RequestTimeout),
		kgo.DialTimeout(c.DialTimeout),
		// Every batch of every worker (and the one being filled) fits in
		// the producer's buffer: Produce never blocks on it.
		kgo.MaxBufferedRecords((workers + 1) * c.MaxBatchEvents),
		// No telemetry push (KIP-714): Close would wait up to 1s for it.
		kgo.DisableClientMetrics(),
		// Retries of the producer (and of metadata) back off like the
		// Java client's: 100ms doubling to at most 1s, jittered, so that a
		// record's deadline (delivery_timeout) is checked at least every
		// second (franz-go's default goes to 5s).
		kgo.RetryBackoffFn(retryBackoff),
		// A retriable produce error waits for a metadata refresh; at most
		// one a second (franz-go's default is 5s) keeps the deadline
		// check and the move off a dead broker within about a second.
		kgo.MetadataMinAge(time.Second),
		kgo.WithLogger(kgoLogger{log}),
	}
	if !*c.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if *c.AutoCreateTopics {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	if c.TLS != nil && c.TLS.Enabled {
		t, err := clientTLS(c.TLS)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(t))
	}
	if c.SASL != nil {
		var m sasl.Mechanism
		switch c.SASL.Mechanism {
		case "PLAIN":
			m = plain.Auth{User: c.SASL.Username, Pass: string(c.SASL.Password)}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: c.SASL.Username, Pass: string(c.SASL.Password)}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: c.SASL.Username, Pass: string(c.SASL.Password)}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("sasl: unknown mechanism %q", c.SASL.Mechanism)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// retryBackoff is 100ms·2^(fails-1), at most 1s, ±20%.
func retryBackoff(fails int) time.Duration {
	d := time.Second
	if fails < 5 {
		d = 100 * time.Millisecond << max(fails-1, 0)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}

func clientTLS(c *config.TLS) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
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

// kgoLogger passes franz-go's warnings and errors on at debug and warn
// level: the engine reports failed sends itself, and a broker outage
// would otherwise log every reconnection attempt.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if level == kgo.LogLevelError {
		l.log.Warn("kafka client: "+msg, keyvals...)
		return
	}
	l.log.Debug("kafka client: "+msg, keyvals...)
}

// NewEncoder implements delivery.Sink.
func (s *sink) NewEncoder() delivery.Encoder { return newEncoder(s.set) }

// Send implements delivery.Sink: it produces every record of the batch
// and waits for all their promises. Each record's outcome is its event's
// result; a batch whose every record failed for a retriable reason fails
// as a whole (the broker is down or unreachable). If ctx ends first Send
// returns at once, leaving the records to the producer (see flight).
func (s *sink) Send(ctx context.Context, enc delivery.Encoder, res []delivery.Result) error {
	e := enc.(*encoder)
	f, n := e.f, e.n
	if n == 0 {
		return nil
	}
	f.pending.Store(int32(n))
	f.done = make(chan struct{})
	pctx, cancel := context.WithTimeout(ctx, s.deliveryTimeout)
	defer cancel()
	for i := range n {
		s.client.Produce(pctx, &f.recs[i], f.promise)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		select {
		case <-f.done:
		default:
			f.abandoned = true
			return ctx.Err()
		}
	}

	var first error
	retries := 0
	for i := range n {
		err := f.errs[i]
		if err == nil {
			continue
		}
		r := s.classify(err)
		if r.Status == delivery.Refuse {
			// The producer fails every buffered record of a partition
			// with the error of the batch the broker refused: this record
			// may only have shared the partition with the culprit. The
			// broker judges it alone.
			var ok bool
			if r, ok = s.isolate(ctx, &f.recs[i]); !ok {
				f.abandoned = true
				return ctx.Err()
			}
		}
		res[i] = r
		if r.Status == delivery.Retry {
			retries++
			if first == nil {
				first = err
			}
		}
	}
	if retries == n {
		return s.batchError(ctx, first)
	}
	return nil
}

// batchError describes a batch none of whose records was acknowledged.
// Records failed by their deadline say nothing of the cause: the cluster
// is asked (one metadata request), so that the error names it (no broker
// reachable, credentials refused).
func (s *sink) batchError(ctx context.Context, first error) error {
	if errorName(first) != "canceled" || ctx.Err() != nil {
		return fmt.Errorf("no record of the batch was acknowledged: %w", first)
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	perr := s.client.Ping(pctx)
	if perr == nil {
		return fmt.Errorf("no record of the batch was acknowledged within delivery_timeout %s (the cluster answers metadata requests)", s.deliveryTimeout)
	}
	if errors.Is(perr, kerr.SaslAuthenticationFailed) || errors.Is(perr, kerr.IllegalSaslState) || errors.Is(perr, kerr.UnsupportedSaslMechanism) {
		s.logError("auth", "the cluster refused the credentials; retrying, events stay queued", "err", perr)
	}
	return fmt.Errorf("no record of the batch was acknowledged within delivery_timeout %s: %w", s.deliveryTimeout, perr)
}

// isolate produces r alone, in a batch of its own, through the probe
// client (made on first use, used by one Send at a time so that it never
// buffers two records), and returns the broker's verdict on it. ok is
// false if ctx ended first: the probe may still hold r.
func (s *sink) isolate(ctx context.Context, r *kgo.Record) (res delivery.Result, ok bool) {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probe == nil {
		p, err := kgo.NewClient(append(s.opts, kgo.ProducerLinger(0))...)
		if err != nil {
			return delivery.Result{Status: delivery.Retry, Reason: "probe", Detail: err.Error()}, true
		}
		s.probe = p
	}
	pctx, cancel := context.WithTimeout(ctx, s.deliveryTimeout)
	defer cancel()
	done := make(chan error, 1)
	r.Context = nil
	s.probe.Produce(pctx, r, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		s.isolated.Inc()
		if err == nil {
			return delivery.Result{}, true
		}
		return s.classify(err), true
	case <-ctx.Done():
		return delivery.Result{}, false
	}
}

// close closes the clients (after the engine stopped).
func (s *sink) close() {
	s.client.Close()
	s.probeMu.Lock()
	if s.probe != nil {
		s.probe.Close()
	}
	s.probeMu.Unlock()
}

// classify maps one record's error to its event's result: the broker's
// refusals of the records themselves are final (dead letters); anything
// else is retried: timeouts, retriable broker errors, an unreachable or
// unauthorized cluster, a topic that does not exist (yet).
func (s *sink) classify(err error) delivery.Result {
	name := errorName(err)
	s.set.m.recordError(name, 1)
	detail := err.Error()
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		s.logError("too_large", "the broker refused a record batch as too large: keep max_message_bytes at or below the topic's max.message.bytes",
			"err", err)
		return delivery.Result{Status: delivery.Refuse, Reason: "too_large", Detail: detail}
	case errors.Is(err, kerr.InvalidRecord):
		return delivery.Result{Status: delivery.Refuse, Reason: "invalid_record", Detail: detail}
	case errors.Is(err, kerr.InvalidTimestamp):
		return delivery.Result{Status: delivery.Refuse, Reason: "invalid_timestamp", Detail: detail}
	case errors.Is(err, kerr.InvalidTopicException):
		return delivery.Result{Status: delivery.Refuse, Reason: "invalid_topic", Detail: detail}
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState),
		errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		s.logError("auth", "the cluster refused the credentials or permissions; retrying, events stay queued", "err", err)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		s.logError("unknown_topic", "the topic does not exist: create it (or let the broker auto-create topics); retrying, events stay queued", "err", err)
	case errors.Is(err, kerr.UnsupportedCompressionType), errors.Is(err, kerr.UnsupportedVersion),
		errors.Is(err, kerr.InvalidRequiredAcks), errors.Is(err, kerr.PolicyViolation):
		s.logError("config", "the broker refused the producer's settings; retrying, events stay queued", "err", err)
	}
	return delivery.Result{Status: delivery.Retry, Reason: name, Detail: detail}
}

// errorName is a short constant for a record's error (a metrics label).
func errorName(err error) string {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return ke.Message
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "timeout"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "retries"
	case errors.Is(err, kgo.ErrClientClosed):
		return "client_closed"
	case errors.Is(err, kgo.ErrMaxBuffered):
		return "max_buffered"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "other"
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

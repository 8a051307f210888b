package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Output is the s3 output: a delivery engine whose batches become objects.
type Output struct {
	eng  *delivery.Engine
	sink *sink
}

// sink holds what every batch of one output shares; it is immutable after
// New but for its counters and log limiter.
type sink struct {
	id        string
	cfg       config.S3Output
	client    *s3.Client
	key       *keyTemplate
	json      *jsonl.Encoder
	rawKey    string // format raw: the field written; "" for json
	codec     codec
	zenc      *zstd.Encoder
	maxObject int // uncompressed bytes of a batch
	entryCap  int // queued entry bytes of a batch
	maxOpen   int
	hostname  string
	// Object headers.
	contentType, contentEncoding string
	index                        atomic.Uint64 // {index}: objects uploaded (attempted) in this run
	log                          *slog.Logger
	m                            *s3Metrics
	limiter                      logLimiter
	now                          func() time.Time
}

// New returns an s3 output delivering src's chunks, with the engine's
// options from d (the type's defaults for the fields left at zero: see
// config.S3Output) and its dead-letter queue under dataDir. It checks cfg
// and loads the AWS configuration (environment and shared files; no
// request is made).
func New(id string, cfg config.S3Output, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 output %s: %w", id, err)
	}
	if d.MaxInFlightBytes > 0 && d.MaxInFlightBytes < cfg.MaxObjectBytes {
		return nil, fmt.Errorf("s3 output %s: delivery.max_in_flight_bytes %d is below max_object_bytes %d", id, d.MaxInFlightBytes, cfg.MaxObjectBytes)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	opts := delivery.FromConfig(id, dataDir, d, delivery.Defaults{Workers: config.S3DefaultWorkers, FlushInterval: config.S3DefaultFlushPeriod}, log, set)
	opts.MaxInFlightBytes = int64(config.S3InFlightBytes(&cfg, &d))
	s := &sink{
		id: id, cfg: cfg, hostname: host, log: log,
		maxObject: int(cfg.MaxObjectBytes),
		entryCap:  int(max(opts.MaxInFlightBytes-8<<20, opts.MaxInFlightBytes/2)),
		maxOpen:   cfg.MaxOpenObjects,
		m:         newS3Metrics(set, id),
		now:       time.Now,
	}
	ext := ".json"
	if cfg.Format == "raw" {
		ext, s.rawKey = ".log", cfg.RawKey
	}
	switch cfg.Compression {
	case "gzip":
		s.codec, ext = codecGzip, ext+".gz"
	case "zstd":
		s.codec, ext = codecZstd, ext+".zst"
		if s.zenc, err = newZstd(max(opts.Workers, 1) + 1); err != nil {
			return nil, fmt.Errorf("s3 output %s: zstd: %w", id, err)
		}
	}
	s.contentType, s.contentEncoding = contentHeaders(cfg)
	if s.key, err = newKeyTemplate(cfg.Key, host, ext); err != nil {
		return nil, fmt.Errorf("s3 output %s: key: %w", id, err)
	}
	jo := jsonl.Options{TimeKey: cfg.TimeKey, TagKey: cfg.TagKey, OmitTime: cfg.TimeKey == ""}
	switch cfg.TimeFormat {
	case "epoch_seconds":
		jo.TimeFormat = jsonl.EpochSeconds
	case "epoch_millis":
		jo.TimeFormat = jsonl.EpochMillis
	case "epoch_nanos":
		jo.TimeFormat = jsonl.EpochNanos
	}
	if s.json, err = jsonl.NewEncoder(jo); err != nil {
		return nil, fmt.Errorf("s3 output %s: %w", id, err)
	}
	if s.client, err = newClient(cfg, host); err != nil {
		return nil, fmt.Errorf("s3 output %s: %w", id, err)
	}
	eng, err := delivery.New(src, s, opts)
	if err != nil {
		return nil, fmt.Errorf("s3 output %s: %w", id, err)
	}
	return &Output{eng: eng, sink: s}, nil
}

// contentHeaders returns the Content-Type and Content-Encoding of the
// objects (see config.S3Output.ContentType).
func contentHeaders(cfg config.S3Output) (ctype, cenc string) {
	ctype = "application/x-ndjson"
	if cfg.Format == "raw" {
		ctype = "text/plain; charset=utf-8"
	}
	switch {
	case cfg.Compression == "none":
	case cfg.SetContentEncoding:
		cenc = cfg.Compression
	case cfg.Compression == "gzip":
		ctype = "application/gzip"
	default:
		ctype = "application/zstd"
	}
	if cfg.ContentType != "" {
		ctype = cfg.ContentType
	}
	return ctype, cenc
}

// newClient makes the S3 client: credentials from the config or the
// default chain, optionally through an assumed role.
func newClient(cfg config.S3Output, host string) (*s3.Client, error) {
	ctx := context.Background()
	var lo []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		lo = append(lo, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		lo = append(lo, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			cfg.AccessKeyID, string(cfg.SecretAccessKey), string(cfg.SessionToken))))
	}
	if cfg.Checksum == "none" {
		lo = append(lo, awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	// The engine retries a failed object forever with its own back-off;
	// the SDK's few quick retries only smooth over a lost connection or
	// one throttled part, without a retry quota that would turn a long
	// outage into "quota exceeded" errors.
	lo = append(lo, awsconfig.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
	}))
	ac, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if ac.Region == "" {
		if cfg.Endpoint == "" {
			return nil, errors.New("no region: set region, or AWS_REGION, or a region in the shared config profile")
		}
		ac.Region = "us-east-1"
	}
	if cfg.RoleARN != "" {
		stsc := sts.NewFromConfig(ac)
		ac.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsc, cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "sluice-" + host
			if len(o.RoleSessionName) > 64 {
				o.RoleSessionName = o.RoleSessionName[:64]
			}
			if cfg.ExternalID != "" {
				o.ExternalID = aws.String(cfg.ExternalID)
			}
		}))
	}
	return s3.NewFromConfig(ac, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
	}), nil
}

// Run delivers until ctx is done (see the package doc), after starting
// the clean-up of abandoned multipart uploads in the background.
func (o *Output) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if o.sink.cfg.AbortAbandonedUploads == nil || *o.sink.cfg.AbortAbandonedUploads {
		wg.Go(func() { o.sink.abortAbandoned(ctx) })
	}
	err := o.eng.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// Drain makes the output upload its open objects as soon as no more input
// is ready (shutdown).
func (o *Output) Drain() { o.eng.Drain() }

// s3Metrics are the output's own series, besides the engine's.
type s3Metrics struct {
	objects, storedBytes, multipart *metrics.Counter
	abortedFailed, abortedAbandoned *metrics.Counter
	rawFallback                     *metrics.Counter
}

func newS3Metrics(set *metrics.Set, id string) *s3Metrics {
	c := func(name string) *metrics.Counter { return set.GetOrCreateCounter(fmt.Sprintf(name, id)) }
	return &s3Metrics{
		objects:          c(`sluice_s3_objects_total{output=%q}`),
		storedBytes:      c(`sluice_s3_stored_bytes_total{output=%q}`),
		multipart:        c(`sluice_s3_multipart_uploads_total{output=%q}`),
		abortedFailed:    c(`sluice_s3_aborted_uploads_total{output=%q,reason="failed"}`),
		abortedAbandoned: c(`sluice_s3_aborted_uploads_total{output=%q,reason="abandoned"}`),
		rawFallback:      c(`sluice_s3_raw_fallback_events_total{output=%q}`),
	}
}

// logLimiter lets one message per key through per interval.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *logLimiter) allow(key string, every time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < every {
		return false
	}
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	l.last[key] = now
	return true
}

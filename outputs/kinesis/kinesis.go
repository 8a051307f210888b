package kinesis

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/awsout"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Output is the kinesis output.
type Output struct {
	eng *delivery.Engine
	s   *sink
}

// sink sends batches with PutRecords; it implements delivery.Sink. Fixed
// at New but for the counters and the limiter.
type sink struct {
	id         string
	client     *kinesis.Client
	streamName *string
	streamARN  *string
	msg        *awsout.Message
	key        *awsout.Field // nil: random keys
	newline    bool
	maxRecord  int
	maxRecords int
	maxBytes   int
	timeout    time.Duration
	log        *slog.Logger
	limiter    awsout.LogLimiter
	set        *metrics.Set
	randomKeys *metrics.Counter
}

// New returns a kinesis output delivering src's chunks; zero fields of
// cfg take the defaults of config.DefaultKinesisOutput, then cfg is
// checked with the rules of config validation. d is the output's delivery
// section (zero fields: workers 2, flush_interval 1s, then the engine's
// defaults); the dead-letter queue lives under dataDir/deadletter/<id>.
// It loads the AWS configuration (no request is made).
func New(id string, cfg config.KinesisOutput, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kinesis output %s: %w", id, err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	s := &sink{
		id: id, log: log, set: set,
		newline:   *cfg.AppendNewline,
		maxRecord: int(cfg.MaxRecordBytes), maxRecords: cfg.MaxBatchRecords, maxBytes: int(cfg.MaxBatchBytes),
		timeout:    cfg.RequestTimeout,
		randomKeys: set.GetOrCreateCounter(fmt.Sprintf(`sluice_kinesis_random_partition_keys_total{output=%q}`, id)),
	}
	if cfg.StreamARN != "" {
		s.streamARN = &cfg.StreamARN
	} else {
		s.streamName = &cfg.StreamName
	}
	if cfg.PartitionKey != "" {
		f := awsout.NewField(cfg.PartitionKey)
		s.key = &f
	}
	s.msg, err = awsout.NewMessage(awsout.MessageOptions{Format: cfg.Format, RawKey: cfg.RawKey, TimeKey: cfg.TimeKey,
		TimeFormat: cfg.TimeFormat, TagKey: cfg.TagKey,
		Fallback: set.GetOrCreateCounter(fmt.Sprintf(`sluice_kinesis_raw_fallback_events_total{output=%q}`, id))})
	if err != nil {
		return nil, fmt.Errorf("kinesis output %s: %w", id, err)
	}
	ac, err := awsout.Load(context.Background(), awsout.Access{Region: cfg.Region, Endpoint: cfg.Endpoint, AccessKeyID: cfg.AccessKeyID,
		SecretAccessKey: cfg.SecretAccessKey, SessionToken: cfg.SessionToken, RoleARN: cfg.RoleARN, ExternalID: cfg.ExternalID}, host)
	if err != nil {
		return nil, fmt.Errorf("kinesis output %s: %w", id, err)
	}
	s.client = kinesis.NewFromConfig(ac, func(o *kinesis.Options) { o.BaseEndpoint = awsout.Endpoint(cfg.Endpoint) })
	opts := delivery.FromConfig(id, dataDir, d, delivery.Defaults{Workers: config.KinesisDefaultWorkers, FlushInterval: config.KinesisDefaultFlush}, log, set)
	eng, err := delivery.New(src, s, opts)
	if err != nil {
		return nil, fmt.Errorf("kinesis output %s: %w", id, err)
	}
	return &Output{eng: eng, s: s}, nil
}

// withDefaults fills the zero fields of c.
func withDefaults(c config.KinesisOutput) config.KinesisOutput {
	def := config.DefaultKinesisOutput()
	if c.Format == "" {
		c.Format = def.Format
	}
	if c.RawKey == "" {
		c.RawKey = def.RawKey
	}
	if c.TimeFormat == "" {
		c.TimeFormat = def.TimeFormat
	}
	if c.AppendNewline == nil {
		c.AppendNewline = def.AppendNewline
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = def.MaxRecordBytes
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = def.MaxBatchRecords
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = max(def.MaxBatchBytes, c.MaxRecordBytes)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = def.RequestTimeout
	}
	return c
}

// Run delivers until ctx is done; unsettled chunks stay in the queue.
func (o *Output) Run(ctx context.Context) error { return o.eng.Run(ctx) }

// Drain sends what the engine holds at once (shutdown).
func (o *Output) Drain() { o.eng.Drain() }

// LastError returns the last failure the output met and when.
func (o *Output) LastError() (string, time.Time) { return o.eng.LastError() }

// rec is one record of a batch: data then partition key, in buf.
type rec struct {
	off       int32
	data, key int32 // lengths
}

// encoder is the delivery.Encoder of the output: the records of one
// PutRecords request. Add runs on the engine's loop, Send on a worker.
type encoder struct {
	s     *sink
	buf   []byte
	recs  []rec
	bytes int // data + keys

	entries []types.PutRecordsRequestEntry
	keys    []string
}

func (s *sink) NewEncoder() delivery.Encoder { return &encoder{s: s} }

func (e *encoder) Len() int   { return len(e.recs) }
func (e *encoder) Bytes() int { return e.bytes }
func (e *encoder) Reset() {
	e.buf, e.recs, e.bytes = e.buf[:0], e.recs[:0], 0
	clear(e.entries)
	clear(e.keys)
}

// Full reports that the request holds max_batch_records records or has
// no room for a small one.
func (e *encoder) Full() bool {
	return len(e.recs) >= e.s.maxRecords || e.bytes+64 > e.s.maxBytes
}

const hexDigits = "0123456789abcdef"

// Add appends ev's record: its data (JSON or raw, then "\n" unless
// append_newline is off) and its partition key (the partition_key field's
// value cut at 256 characters, or 16 random hex digits). A record over
// max_record_bytes alone is dead-lettered (too_large); one that does not
// fit in the request is ErrFull.
func (e *encoder) Add(ev *delivery.Event) error {
	s := e.s
	if len(e.recs) >= s.maxRecords {
		return delivery.ErrFull
	}
	start := len(e.buf)
	buf, err := s.msg.Append(e.buf, ev)
	if err != nil {
		e.buf = buf[:start]
		return delivery.Reject("undecodable", "%v", err)
	}
	if s.newline {
		buf = append(buf, '\n')
	}
	data := len(buf) - start
	keyStart := len(buf)
	ok := false
	if s.key != nil {
		if buf, ok = s.key.Append(buf, ev.Record); ok {
			buf = buf[:keyStart+truncateRunes(buf[keyStart:], config.KinesisMaxPartitionKey)]
			ok = len(buf) > keyStart
		}
		if !ok {
			s.randomKeys.Inc()
		}
	}
	if !ok {
		r := rand.Uint64()
		for i := range 16 {
			buf = append(buf, hexDigits[r>>(60-4*i)&15])
		}
	}
	key := len(buf) - keyStart
	size := data + key
	switch {
	case size > s.maxRecord:
		e.buf = buf[:start]
		return delivery.Reject("too_large", "the record is %d bytes (data and partition key), more than max_record_bytes (%d)", size, s.maxRecord)
	case len(e.recs) > 0 && e.bytes+size > s.maxBytes:
		e.buf = buf[:start]
		return delivery.ErrFull
	}
	e.buf = buf
	e.recs = append(e.recs, rec{off: int32(start), data: int32(data), key: int32(key)})
	e.bytes += size
	return nil
}

// truncateRunes returns the length of the first n characters of b.
func truncateRunes(b []byte, n int) int {
	i := 0
	for c := 0; i < len(b) && c < n; c++ {
		_, size := utf8.DecodeRune(b[i:])
		i += size
	}
	return i
}

// Send makes the PutRecords call. A failed call as a whole (throttling,
// KMS errors, a missing stream, bad credentials) returns the error: the
// engine retries every record with back-off. Else each record's result is
// its entry's: OK with a sequence number, or Retry with its ErrorCode
// (ProvisionedThroughputExceededException, InternalFailure): only the
// failed records are sent again.
func (s *sink) Send(ctx context.Context, enc delivery.Encoder, res []delivery.Result) error {
	e := enc.(*encoder)
	n := len(e.recs)
	e.entries = slices.Grow(e.entries[:0], n)[:n]
	e.keys = slices.Grow(e.keys[:0], n)[:n]
	for i, r := range e.recs {
		// Views into buf, unchanged until Reset: no copy.
		e.keys[i] = unsafe.String(&e.buf[r.off+r.data], int(r.key))
		e.entries[i] = types.PutRecordsRequestEntry{Data: e.buf[r.off : r.off+r.data : r.off+r.data], PartitionKey: &e.keys[i]}
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: s.streamName, StreamARN: s.streamARN, Records: e.entries})
	if err != nil {
		awsout.LogFailure(s.log, &s.limiter, "PutRecords", err)
		return err
	}
	if len(out.Records) != n {
		return fmt.Errorf("PutRecords answered %d records for %d sent", len(out.Records), n)
	}
	for i, r := range out.Records {
		if r.ErrorCode == nil || *r.ErrorCode == "" {
			continue
		}
		code, msg := *r.ErrorCode, ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		res[i] = delivery.Result{Status: delivery.Retry, Reason: code, Detail: msg}
		s.set.GetOrCreateCounter(`sluice_kinesis_failed_records_total{output=` + strconv.Quote(s.id) + `,code=` + strconv.Quote(code) + `}`).Inc()
	}
	return nil
}

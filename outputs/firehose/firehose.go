package firehose

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/awsout"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Output is the firehose output.
type Output struct {
	eng *delivery.Engine
	s   *sink
}

// sink sends batches with PutRecordBatch; it implements delivery.Sink.
// Fixed at New but for the counters and the limiter.
type sink struct {
	id         string
	client     *firehose.Client
	stream     string
	msg        *awsout.Message
	aggregate  bool
	maxRecord  int
	maxRecords int
	maxBytes   int
	timeout    time.Duration
	log        *slog.Logger
	limiter    awsout.LogLimiter
	set        *metrics.Set
}

// New returns a firehose output delivering src's chunks; zero fields of
// cfg take the defaults of config.DefaultFirehoseOutput, then cfg is
// checked with the rules of config validation. d is the output's delivery
// section (zero fields: workers 2, flush_interval 1s, then the engine's
// defaults); the dead-letter queue lives under dataDir/deadletter/<id>.
// It loads the AWS configuration (no request is made).
func New(id string, cfg config.FirehoseOutput, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("firehose output %s: %w", id, err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	s := &sink{
		id: id, log: log, set: set, stream: cfg.DeliveryStreamName, aggregate: cfg.Aggregate,
		maxRecord: int(cfg.MaxRecordBytes), maxRecords: cfg.MaxBatchRecords, maxBytes: int(cfg.MaxBatchBytes),
		timeout: cfg.RequestTimeout,
	}
	s.msg, err = awsout.NewMessage(awsout.MessageOptions{Format: cfg.Format, RawKey: cfg.RawKey, TimeKey: cfg.TimeKey,
		TimeFormat: cfg.TimeFormat, TagKey: cfg.TagKey,
		Fallback: set.GetOrCreateCounter(fmt.Sprintf(`sluice_firehose_raw_fallback_events_total{output=%q}`, id))})
	if err != nil {
		return nil, fmt.Errorf("firehose output %s: %w", id, err)
	}
	ac, err := awsout.Load(context.Background(), awsout.Access{Region: cfg.Region, Endpoint: cfg.Endpoint, AccessKeyID: cfg.AccessKeyID,
		SecretAccessKey: cfg.SecretAccessKey, SessionToken: cfg.SessionToken, RoleARN: cfg.RoleARN, ExternalID: cfg.ExternalID}, host)
	if err != nil {
		return nil, fmt.Errorf("firehose output %s: %w", id, err)
	}
	s.client = firehose.NewFromConfig(ac, func(o *firehose.Options) { o.BaseEndpoint = awsout.Endpoint(cfg.Endpoint) })
	opts := delivery.FromConfig(id, dataDir, d, delivery.Defaults{Workers: config.FirehoseDefaultWorkers, FlushInterval: config.FirehoseDefaultFlush}, log, set)
	eng, err := delivery.New(src, s, opts)
	if err != nil {
		return nil, fmt.Errorf("firehose output %s: %w", id, err)
	}
	return &Output{eng: eng, s: s}, nil
}

// withDefaults fills the zero fields of c.
func withDefaults(c config.FirehoseOutput) config.FirehoseOutput {
	def := config.DefaultFirehoseOutput()
	if c.Format == "" {
		c.Format = def.Format
	}
	if c.RawKey == "" {
		c.RawKey = def.RawKey
	}
	if c.TimeFormat == "" {
		c.TimeFormat = def.TimeFormat
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = def.MaxRecordBytes
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = def.MaxBatchRecords
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = def.MaxBatchBytes
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

// record is one Firehose record of a batch: buf[off:end].
type record struct {
	off, end int32
}

// encoder is the delivery.Encoder of the output: the records of one
// PutRecordBatch request. Add runs on the engine's loop, Send on a worker.
type encoder struct {
	s     *sink
	buf   []byte
	recs  []record
	evRec []int32 // each event's record
	bytes int

	entries []types.Record
}

func (s *sink) NewEncoder() delivery.Encoder { return &encoder{s: s} }

func (e *encoder) Len() int   { return len(e.evRec) }
func (e *encoder) Bytes() int { return e.bytes }
func (e *encoder) Reset() {
	e.buf, e.recs, e.evRec, e.bytes = e.buf[:0], e.recs[:0], e.evRec[:0], 0
	clear(e.entries)
}

// Full reports that the request holds max_batch_records records, none of
// them open to more lines, or has no room for a small line.
func (e *encoder) Full() bool {
	return e.bytes+64 > e.s.maxBytes || len(e.recs) >= e.s.maxRecords && !e.s.aggregate
}

// Add appends ev's line (JSON or raw, then "\n"): to the last record when
// aggregating and it fits in max_record_bytes, else as a new record. A
// line over max_record_bytes alone is dead-lettered (too_large); one that
// does not fit in the request is ErrFull.
func (e *encoder) Add(ev *delivery.Event) error {
	s := e.s
	start := len(e.buf)
	buf, err := s.msg.Append(e.buf, ev)
	if err != nil {
		e.buf = buf[:start]
		return delivery.Reject("undecodable", "%v", err)
	}
	buf = append(buf, '\n')
	n := len(buf) - start
	switch {
	case n > s.maxRecord:
		e.buf = buf[:start]
		return delivery.Reject("too_large", "the line is %d bytes, more than max_record_bytes (%d)", n, s.maxRecord)
	case len(e.evRec) > 0 && e.bytes+n > s.maxBytes:
		e.buf = buf[:start]
		return delivery.ErrFull
	}
	if last := len(e.recs) - 1; s.aggregate && last >= 0 && int(e.recs[last].end-e.recs[last].off)+n <= s.maxRecord {
		e.recs[last].end = int32(len(buf)) // the last record ends where this line starts
	} else {
		if len(e.recs) >= s.maxRecords {
			e.buf = buf[:start]
			return delivery.ErrFull
		}
		e.recs = append(e.recs, record{off: int32(start), end: int32(len(buf))})
	}
	e.buf = buf
	e.evRec = append(e.evRec, int32(len(e.recs)-1))
	e.bytes += n
	return nil
}

// Send makes the PutRecordBatch call. A failed call as a whole returns
// the error: the engine retries every event with back-off. Else each
// record's result is its entry's: OK, or Retry with its ErrorCode
// (ServiceUnavailableException, InternalFailure) for every event of the
// record: only the failed records are sent again.
func (s *sink) Send(ctx context.Context, enc delivery.Encoder, res []delivery.Result) error {
	e := enc.(*encoder)
	n := len(e.recs)
	e.entries = slices.Grow(e.entries[:0], n)[:n]
	for i, r := range e.recs {
		e.entries[i] = types.Record{Data: e.buf[r.off:r.end:r.end]} // a view: no copy
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.PutRecordBatch(cctx, &firehose.PutRecordBatchInput{DeliveryStreamName: &s.stream, Records: e.entries})
	if err != nil {
		awsout.LogFailure(s.log, &s.limiter, "PutRecordBatch", err)
		return err
	}
	if len(out.RequestResponses) != n {
		return fmt.Errorf("PutRecordBatch answered %d records for %d sent", len(out.RequestResponses), n)
	}
	// FailedPutCount aside, every entry is checked: a 200 answer may hold
	// failures.
	for i, ri := range e.evRec {
		r := out.RequestResponses[ri]
		if r.ErrorCode == nil || *r.ErrorCode == "" {
			continue
		}
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		res[i] = delivery.Result{Status: delivery.Retry, Reason: *r.ErrorCode, Detail: msg}
	}
	for _, r := range out.RequestResponses {
		if r.ErrorCode != nil && *r.ErrorCode != "" {
			s.set.GetOrCreateCounter(`sluice_firehose_failed_records_total{output=` + strconv.Quote(s.id) + `,code=` + strconv.Quote(*r.ErrorCode) + `}`).Inc()
		}
	}
	return nil
}

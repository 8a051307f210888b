package cloudwatchlogs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/awsout"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// maxParallel bounds the PutLogEvents calls of one batch in flight at
// once (one per stream and 24-hour span).
const maxParallel = 4

// Output is the cloudwatch_logs output.
type Output struct {
	eng *delivery.Engine
	s   *sink
}

// sink sends batches with PutLogEvents; it implements delivery.Sink. Its
// fields are fixed at New but for proven, the counters and the limiter.
type sink struct {
	id            string
	client        *cloudwatchlogs.Client
	group, stream *nameTemplate
	msg           *awsout.Message
	maxEvent      int
	maxEvents     int
	maxBytes      int
	createGroup   bool
	createStream  bool
	retention     int32
	groupClass    types.LogGroupClass
	kmsKeyID      string
	timeout       time.Duration
	log           *slog.Logger
	limiter       awsout.LogLimiter
	m             *cwlMetrics

	// proven is set once a PutLogEvents call of this output succeeded: an
	// InvalidParameterException for a single event is then that event's
	// fault, not the configuration's.
	proven atomic.Bool
}

type cwlMetrics struct {
	truncated, split, groups, streams *metrics.Counter
}

// New returns a cloudwatch_logs output delivering src's chunks; zero
// fields of cfg take the defaults of config.DefaultCloudWatchLogsOutput,
// then cfg is checked with the rules of config validation. d is the
// output's delivery section (zero fields: workers 2, flush_interval 5s,
// then the engine's defaults); the dead-letter queue lives under
// dataDir/deadletter/<id>. It loads the AWS configuration (no request is
// made).
func New(id string, cfg config.CloudWatchLogsOutput, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cloudwatch_logs output %s: %w", id, err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	c := func(name string) *metrics.Counter { return set.GetOrCreateCounter(fmt.Sprintf(name, id)) }
	s := &sink{
		id: id, log: log,
		maxEvent: int(cfg.MaxEventBytes), maxEvents: cfg.MaxBatchEvents, maxBytes: int(cfg.MaxBatchBytes),
		createGroup: *cfg.CreateLogGroup, createStream: *cfg.CreateLogStream,
		retention: int32(cfg.RetentionInDays), groupClass: types.LogGroupClass(cfg.LogGroupClass), kmsKeyID: cfg.KMSKeyID,
		timeout: cfg.RequestTimeout,
		m: &cwlMetrics{
			truncated: c(`sluice_output_truncated_events_total{output=%q}`),
			split:     c(`sluice_cloudwatch_logs_split_requests_total{output=%q}`),
			groups:    c(`sluice_cloudwatch_logs_created_total{output=%q,kind="group"}`),
			streams:   c(`sluice_cloudwatch_logs_created_total{output=%q,kind="stream"}`),
		},
	}
	if s.group, err = compileName(cfg.LogGroupName, true, host); err != nil {
		return nil, fmt.Errorf("cloudwatch_logs output %s: %w", id, err)
	}
	if s.stream, err = compileName(cfg.LogStreamName, false, host); err != nil {
		return nil, fmt.Errorf("cloudwatch_logs output %s: %w", id, err)
	}
	s.msg, err = awsout.NewMessage(awsout.MessageOptions{Format: cfg.Format, RawKey: cfg.RawKey, TimeKey: cfg.TimeKey,
		TimeFormat: cfg.TimeFormat, TagKey: cfg.TagKey, ValidUTF8: true,
		Fallback: c(`sluice_cloudwatch_logs_raw_fallback_events_total{output=%q}`)})
	if err != nil {
		return nil, fmt.Errorf("cloudwatch_logs output %s: %w", id, err)
	}
	ac, err := awsout.Load(context.Background(), access(cfg), host)
	if err != nil {
		return nil, fmt.Errorf("cloudwatch_logs output %s: %w", id, err)
	}
	s.client = cloudwatchlogs.NewFromConfig(ac, func(o *cloudwatchlogs.Options) { o.BaseEndpoint = awsout.Endpoint(cfg.Endpoint) })
	opts := delivery.FromConfig(id, dataDir, d, delivery.Defaults{Workers: config.CloudWatchLogsDefaultWorkers, FlushInterval: config.CloudWatchLogsDefaultFlush}, log, set)
	eng, err := delivery.New(src, s, opts)
	if err != nil {
		return nil, fmt.Errorf("cloudwatch_logs output %s: %w", id, err)
	}
	return &Output{eng: eng, s: s}, nil
}

func access(c config.CloudWatchLogsOutput) awsout.Access {
	return awsout.Access{Region: c.Region, Endpoint: c.Endpoint, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
		SessionToken: c.SessionToken, RoleARN: c.RoleARN, ExternalID: c.ExternalID}
}

// withDefaults fills the zero fields of c.
func withDefaults(c config.CloudWatchLogsOutput) config.CloudWatchLogsOutput {
	def := config.DefaultCloudWatchLogsOutput()
	or := func(p *string, d string) {
		if *p == "" {
			*p = d
		}
	}
	or(&c.LogStreamName, def.LogStreamName)
	or(&c.Format, def.Format)
	or(&c.RawKey, def.RawKey)
	or(&c.TimeFormat, def.TimeFormat)
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = def.MaxEventBytes
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = def.MaxBatchEvents
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = def.MaxBatchBytes
	}
	if c.CreateLogGroup == nil {
		c.CreateLogGroup = def.CreateLogGroup
	}
	if c.CreateLogStream == nil {
		c.CreateLogStream = def.CreateLogStream
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

// Send makes the batch's PutLogEvents calls (one per stream and 24-hour
// span, up to 4 at once) and sets each event's result. It returns an
// error, so that the engine retries the whole batch, only when every call
// failed as a whole and none delivered or refused anything.
func (s *sink) Send(ctx context.Context, enc delivery.Encoder, res []delivery.Result) error {
	e := enc.(*encoder)
	e.prepare()
	if len(e.reqs) == 1 {
		e.reqs[0].err = s.put(ctx, e, &e.reqs[0], e.reqs[0].from, e.reqs[0].to, res)
	} else {
		var wg sync.WaitGroup
		next := atomic.Int32{}
		for range min(maxParallel, len(e.reqs)) {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < len(e.reqs); i = int(next.Add(1)) - 1 {
					r := &e.reqs[i]
					r.err = s.put(ctx, e, r, r.from, r.to, res)
				}
			})
		}
		wg.Wait()
	}
	var first error
	failed := 0
	for i := range e.reqs {
		if r := &e.reqs[i]; r.err != nil {
			failed++
			if first == nil {
				first = r.err
			}
		}
	}
	if failed == len(e.reqs) {
		awsout.LogFailure(s.log, &s.limiter, "PutLogEvents", first)
		return first
	}
	for i := range e.reqs {
		if r := &e.reqs[i]; r.err != nil {
			s.markRetry(e, r.from, r.to, r.err, res)
		}
	}
	for i := range e.evs {
		if e.evs[i].trunc && res[i].Status != delivery.Retry {
			s.m.truncated.Inc()
		}
	}
	return nil
}

func (s *sink) markRetry(e *encoder, from, to int, err error, res []delivery.Result) {
	code := awsout.Code(err)
	if code == "" {
		code = "error"
	}
	detail := err.Error()
	for k := from; k < to; k++ {
		res[e.order[k]] = delivery.Result{Status: delivery.Retry, Reason: code, Detail: detail}
	}
}

// put sends input[from:to] of one stream and sets the results of those
// events. It returns an error, without setting results, only when the
// call failed as a whole and none of the events got a final result. An
// InvalidParameterException (a request the service refuses as malformed:
// it should never happen, the batch keeps every limit) is bisected down to
// single events; a single event still refused is dead-lettered (reason
// invalid_parameter) once this output has had a call accepted, else the
// error stands and the event is retried, so that a configuration problem
// never dead-letters the queue.
func (s *sink) put(ctx context.Context, e *encoder, r *request, from, to int, res []delivery.Result) error {
	st := e.streams[r.stream].name
	out, err := s.call(ctx, st, e.input[from:to])
	if err == nil {
		s.proven.Store(true)
		s.rejected(e, from, to, out.RejectedLogEventsInfo, res)
		return nil
	}
	switch awsout.Code(err) {
	case "InvalidParameterException":
		if to-from > 1 {
			s.m.split.Inc()
			if s.limiter.Allow("split", awsout.ErrorEvery) {
				s.log.Error("PutLogEvents refused a request as invalid; splitting it to find the events at fault", "group", st.group, "stream", st.stream,
					"events", to-from, "err", awsout.ErrMessage(err))
			}
			mid := from + (to-from)/2
			e1 := s.put(ctx, e, r, from, mid, res)
			e2 := s.put(ctx, e, r, mid, to, res)
			switch {
			case e1 != nil && e2 != nil:
				return e1
			case e1 != nil:
				s.markRetry(e, from, mid, e1, res)
			case e2 != nil:
				s.markRetry(e, mid, to, e2, res)
			}
			return nil
		}
		if s.proven.Load() {
			res[e.order[from]] = delivery.Result{Status: delivery.Refuse, Reason: "invalid_parameter", Detail: awsout.ErrMessage(err)}
			return nil
		}
	case "DataAlreadyAcceptedException":
		// Obsolete (sequence tokens are ignored now): the service says
		// it has these events already.
		return nil
	}
	return err
}

// call makes one PutLogEvents call, creating the group or stream once
// when it is missing and the options allow it.
func (s *sink) call(ctx context.Context, st *streamName, evs []types.InputLogEvent) (*cloudwatchlogs.PutLogEventsOutput, error) {
	in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: &st.group, LogStreamName: &st.stream, LogEvents: evs}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	out, err := s.client.PutLogEvents(cctx, in)
	cancel()
	if _, ok := errors.AsType[*types.ResourceNotFoundException](err); !ok || !(s.createGroup || s.createStream) {
		return out, err
	}
	if cerr := s.create(ctx, st, err); cerr != nil {
		return nil, cerr
	}
	cctx, cancel = context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.client.PutLogEvents(cctx, in)
}

// create creates what PutLogEvents found missing (notFound): the group
// (then its retention) and the stream, as the options allow; a resource
// that exists meanwhile is fine. It returns an error when the resource
// cannot or may not be created.
func (s *sink) create(ctx context.Context, st *streamName, notFound error) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	groupMissing := strings.Contains(awsout.ErrMessage(notFound), "log group")
	if groupMissing {
		if !s.createGroup {
			s.logMissing("group", st, notFound)
			return notFound
		}
		if err := s.createLogGroup(cctx, st.group); err != nil {
			return err
		}
	}
	if !s.createStream {
		s.logMissing("stream", st, notFound)
		return notFound
	}
	err := s.createLogStream(cctx, st)
	if _, ok := errors.AsType[*types.ResourceNotFoundException](err); ok && !groupMissing && s.createGroup {
		if err = s.createLogGroup(cctx, st.group); err == nil {
			err = s.createLogStream(cctx, st)
		}
	}
	return err
}

func (s *sink) logMissing(what string, st *streamName, err error) {
	if s.limiter.Allow("missing "+what, awsout.ErrorEvery) {
		s.log.Error("log "+what+" does not exist and create_log_"+what+" is off; the events stay queued",
			"group", st.group, "stream", st.stream, "err", awsout.ErrMessage(err))
	}
}

func (s *sink) createLogGroup(ctx context.Context, group string) error {
	in := &cloudwatchlogs.CreateLogGroupInput{LogGroupName: &group, LogGroupClass: s.groupClass}
	if s.kmsKeyID != "" {
		in.KmsKeyId = &s.kmsKeyID
	}
	_, err := s.client.CreateLogGroup(ctx, in)
	if _, ok := errors.AsType[*types.ResourceAlreadyExistsException](err); ok {
		return nil
	}
	if err != nil {
		awsout.LogFailure(s.log, &s.limiter, "CreateLogGroup", err)
		return fmt.Errorf("create log group %s: %w", group, err)
	}
	s.m.groups.Inc()
	s.log.Info("created log group", "group", group, "retention_in_days", s.retention)
	if s.retention > 0 {
		_, err := s.client.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: &group, RetentionInDays: aws.Int32(s.retention)})
		if err != nil {
			// The group exists: deliver to it anyway, and say so.
			s.log.Error("log group created but its retention could not be set; set it by hand", "group", group,
				"retention_in_days", s.retention, "err", awsout.ErrMessage(err))
		}
	}
	return nil
}

func (s *sink) createLogStream(ctx context.Context, st *streamName) error {
	_, err := s.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: &st.group, LogStreamName: &st.stream})
	if _, ok := errors.AsType[*types.ResourceAlreadyExistsException](err); ok {
		return nil
	}
	if err != nil {
		if _, ok := errors.AsType[*types.ResourceNotFoundException](err); !ok {
			awsout.LogFailure(s.log, &s.limiter, "CreateLogStream", err)
		}
		return fmt.Errorf("create log stream %s in %s: %w", st.stream, st.group, err)
	}
	s.m.streams.Inc()
	s.log.Info("created log stream", "group", st.group, "stream", st.stream)
	return nil
}

// rejected maps rejectedLogEventsInfo to Refuse results: the events of
// input[from:to] before tooOldLogEventEndIndex (exclusive) are too_old,
// before expiredLogEventEndIndex (exclusive) expired, from
// tooNewLogEventStartIndex (inclusive) on too_new; the others are
// delivered.
func (s *sink) rejected(e *encoder, from, to int, ri *types.RejectedLogEventsInfo, res []delivery.Result) {
	if ri == nil {
		return
	}
	n := to - from
	bound := func(p *int32, d int) int {
		if p == nil {
			return d
		}
		return max(0, min(int(*p), n))
	}
	old, expired, tooNew := bound(ri.TooOldLogEventEndIndex, 0), bound(ri.ExpiredLogEventEndIndex, 0), bound(ri.TooNewLogEventStartIndex, n)
	for k := range n {
		var reason, detail string
		switch {
		case k < old:
			reason, detail = "too_old", "older than 14 days (CloudWatch Logs tooOldLogEventEndIndex)"
		case k < expired:
			reason, detail = "expired", "older than the log group's retention (CloudWatch Logs expiredLogEventEndIndex)"
		case k >= tooNew:
			reason, detail = "too_new", "more than 2 hours in the future (CloudWatch Logs tooNewLogEventStartIndex)"
		default:
			continue
		}
		res[e.order[from+k]] = delivery.Result{Status: delivery.Refuse, Reason: reason, Detail: detail}
	}
}

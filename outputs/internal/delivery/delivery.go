package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
)

// Source is what the engine needs of its queue; *buffer.Queue satisfies
// it. Next returns the next unread chunk, blocking until one exists or ctx
// is done; Settle ends a chunk for good; Rewind makes every unsettled chunk
// readable again.
type Source interface {
	Next(ctx context.Context) (buffer.Chunk, error)
	Settle(id buffer.ID, s buffer.Settlement)
	Rewind()
}

// Event is one queued event, handed to Encoder.Add. Tag, Record and Entry
// are views into the chunk the engine holds; they stay valid until the
// event is final, but an Encoder must not keep them past Reset.
type Event struct {
	Tag    []byte
	Time   int64     // unix nanoseconds
	Record []byte    // the msgpack map
	Entry  []byte    // the stored [time, record] entry
	Chunk  buffer.ID // the chunk's stable queue position
	Index  int       // the event's index in its chunk
	Last   bool      // the last event of its chunk
}

// ErrFull is returned by Encoder.Add when the event does not fit in the
// batch: the engine sends the batch and adds the event to a fresh one.
// An empty Encoder must accept every event it does not reject.
var ErrFull = errors.New("batch full")

// RejectError is returned by Encoder.Add for an event that can never be
// sent (too large for the destination, not encodable): it is
// dead-lettered. Reason is a short constant (a metrics label), Detail free
// text for the log and the dead-letter record.
type RejectError struct {
	Reason string
	Detail string
}

func (e *RejectError) Error() string { return e.Reason + ": " + e.Detail }

// Reject returns a *RejectError.
func Reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// RetryAfterError wraps a whole-request failure whose destination said how
// long to wait (HTTP Retry-After): the next try waits at least After.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Encoder builds one request from events. The engine calls Add for events
// in order, then Sink.Send with the Encoder, then Reset before reusing it.
// Each Encoder is used by one goroutine at a time.
type Encoder interface {
	// Add adds ev to the batch: nil, ErrFull (not added) or a
	// *RejectError (not added, dead-lettered). Any other error counts as
	// a rejection with reason "encode".
	Add(ev *Event) error
	// Full reports that no further event fits: the batch is sent now.
	Full() bool
	// Len is the number of events added, Bytes the request's size so far.
	Len() int
	Bytes() int
	Reset()
}

// Status is the outcome of one event of a sent batch.
type Status uint8

const (
	OK     Status = iota // accepted by the destination
	Retry                // not taken now (throttled, 5xx, timeout): send again
	Refuse               // refused for good: dead-lettered with Reason
)

// Result is what the destination said about one event.
type Result struct {
	Status Status
	Reason string // Refuse (and optionally Retry): a short constant label
	Detail string // the destination's message, for logs and dead letters
}

// Sink sends batches to one destination.
type Sink interface {
	// NewEncoder returns an empty Encoder; the engine makes Workers+1.
	NewEncoder() Encoder
	// Send delivers the batch built in enc. It returns nil and sets res[i]
	// (zeroed: OK) for the i-th event added when the destination answered
	// per event, or returns an error when the request as a whole failed:
	// then every event of the batch is retried. Send must return soon
	// after ctx is done.
	Send(ctx context.Context, enc Encoder, res []Result) error
}

// Options configures an Engine. Zero fields take the defaults noted.
type Options struct {
	ID            string        // the output id: metrics label, logs
	Workers       int           // concurrent Sends; default 1
	FlushInterval time.Duration // default 1s
	// Eager sends a batch as soon as a worker is free and no more input is
	// ready, instead of waiting for it to fill or for FlushInterval: low
	// latency, and batches still grow under load (streaming outputs).
	Eager            bool
	MaxInFlightBytes int64         // default 8 MiB per worker
	RetryInitial     time.Duration // default 1s
	RetryMax         time.Duration // default 60s
	MaxRetries       int           // 0: forever
	// DeadLetterDir is the dead-letter queue's directory; "" disables it
	// (refused events are dropped, counted by reason).
	DeadLetterDir      string
	DeadLetterMaxBytes int64 // default 256 MiB
	Log                *slog.Logger
	Metrics            *metrics.Set
}

// Defaults are an output type's own defaults for the engine's options.
type Defaults struct {
	Workers       int
	FlushInterval time.Duration
	Eager         bool
}

// FromConfig maps an output's delivery section to Options: zero fields
// take def, then the engine's defaults. The dead-letter queue lives under
// dataDir/deadletter/<id> unless disabled or dataDir is "".
func FromConfig(id, dataDir string, c config.Delivery, def Defaults, log *slog.Logger, set *metrics.Set) Options {
	o := Options{
		ID:                 id,
		Workers:            c.Workers,
		FlushInterval:      c.FlushInterval,
		MaxInFlightBytes:   int64(c.MaxInFlightBytes),
		RetryInitial:       c.RetryInitial,
		RetryMax:           c.RetryMax,
		MaxRetries:         c.MaxRetries,
		Eager:              def.Eager,
		DeadLetterMaxBytes: int64(c.DeadLetter.MaxBytes),
		Log:                log,
		Metrics:            set,
	}
	if o.Workers == 0 {
		o.Workers = def.Workers
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = def.FlushInterval
	}
	if dataDir != "" && (c.DeadLetter.Enabled == nil || *c.DeadLetter.Enabled) {
		o.DeadLetterDir = filepath.Join(dataDir, "deadletter", id)
	}
	return o
}

func (o Options) withDefaults() (Options, error) {
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxInFlightBytes == 0 {
		o.MaxInFlightBytes = int64(o.Workers) * 8 << 20
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = max(60*time.Second, o.RetryInitial)
	}
	if o.DeadLetterMaxBytes == 0 {
		o.DeadLetterMaxBytes = 256 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	switch {
	case o.ID == "":
		return o, errors.New("empty output id")
	case o.Workers < 0 || o.FlushInterval < 0 || o.MaxInFlightBytes < 0 || o.MaxRetries < 0:
		return o, errors.New("workers, flush_interval, max_in_flight_bytes and max_retries must not be negative")
	case o.RetryInitial < 0 || o.RetryMax < o.RetryInitial:
		return o, fmt.Errorf("retry_max %s must be at least retry_initial %s", o.RetryMax, o.RetryInitial)
	}
	return o, nil
}

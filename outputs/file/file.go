// Package file is the "file" output and, through NewWriter, the "stdout"
// output: each event becomes one JSON line (package internal/codec/jsonl)
//
//	{"tag":"app.web","time":"2024-01-02T03:04:05.123456789Z","record":{...}}
//
// It is built on the delivery engine (outputs/internal/delivery): a batch
// is up to MaxBatchBytes of lines, written with one write (retried rest
// only) and one fsync.
//
// # Invariants
//
//   - A chunk is settled only after all its lines were written and, for a
//     regular file, fsynced. A crash in between re-delivers the chunk
//     (at-least-once: duplicate lines are possible, losses are not).
//   - A failed fsync fails the batch: what reached the disk is unknown, so
//     the file is closed, nothing of the batch is acked, and the engine
//     writes the whole batch again (reopening the file) after a back-off.
//     Lines of the failed batch may then appear twice; the earlier,
//     acknowledged batches were fsynced before their ack.
//   - A failed write is retried, rest only, with back-off: no torn or
//     doubled lines within a run.
//   - An event whose record cannot be transcoded (nested deeper than the
//     decoder allows, truncated or invalid inside) is refused alone: it goes
//     to the dead-letter queue with reason "undecodable" (counted in
//     sluice_output_rejected_events_total); the other events of its chunk
//     are delivered.
//   - One worker goroutine (the engine's, Workers is 1) owns the
//     destination; the engine's loop owns the encoders.
//
// # Known limitations
//
//   - No rotation of the output file: use it for debugging and quick starts,
//     not as a long-term sink.
//   - Only regular files are fsynced: a path to a pipe or a device
//     (/dev/stdout) is written without fsync.
//   - A crash in the middle of a write can leave a torn last line; the
//     batch is written again in full after the restart.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// MaxBatchBytes is the size of one batch of lines.
const MaxBatchBytes = 1 << 20

// destination is the open output file; tests replace it.
type destination interface {
	io.Writer
	Sync() error
	Close() error
}

// Output writes JSON lines to a file or to an io.Writer.
type Output struct {
	id   string
	path string    // "" when w is set
	w    io.Writer // stdout variant
	log  *slog.Logger
	// open opens path for appending; sync reports whether to fsync it.
	open func(path string) (f destination, sync bool, err error)
	eng  *delivery.Engine

	errs *metrics.Counter

	// Owned by the worker (Send).
	f     destination
	fsync bool
}

// New returns a file output appending to cfg.Path. d is the output's
// delivery section; the dead-letter queue lives under dataDir ("" for
// none).
func New(id string, cfg config.FileOutput, d config.Delivery, dataDir string, src delivery.Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if cfg.Path == "" {
		return nil, errors.New("file output: path is empty")
	}
	o := newOutput(id, log, set)
	o.path = cfg.Path
	o.open = openFile
	return o, o.engine(d, dataDir, src, set)
}

// NewWriter returns an output writing to w (the stdout output), without a
// dead-letter queue.
func NewWriter(id string, w io.Writer, src delivery.Source, log *slog.Logger, set *metrics.Set) *Output {
	o := newOutput(id, log, set)
	o.w = w
	if err := o.engine(config.Delivery{}, "", src, set); err != nil {
		panic(err) // unreachable: the defaults are valid
	}
	return o
}

func newOutput(id string, log *slog.Logger, set *metrics.Set) *Output {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Output{id: id, log: log}
}

func (o *Output) engine(d config.Delivery, dataDir string, src delivery.Source, set *metrics.Set) error {
	if set == nil {
		set = metrics.NewSet()
	}
	o.errs = set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_errors_total{output=%q}`, o.id))
	if d.Workers > 1 {
		return fmt.Errorf("file output %s: delivery.workers: one file is written by one worker, got %d", o.id, d.Workers)
	}
	opts := delivery.FromConfig(o.id, dataDir, d, delivery.Defaults{Workers: 1, FlushInterval: 100 * time.Millisecond, Eager: true}, o.log, set)
	eng, err := delivery.New(src, o, opts)
	if err != nil {
		return fmt.Errorf("file output %s: %w", o.id, err)
	}
	o.eng = eng
	return nil
}

func openFile(path string) (destination, bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, false, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, st.Mode().IsRegular(), nil
}

// Run delivers chunks until ctx is done, then returns nil once every
// goroutine it started has exited; unsettled chunks stay in the queue.
func (o *Output) Run(ctx context.Context) error {
	defer func() {
		if o.f != nil {
			o.f.Close()
			o.f = nil
		}
	}()
	return o.eng.Run(ctx)
}

// Drain sends what the engine holds at once (shutdown).
func (o *Output) Drain() { o.eng.Drain() }

// encoder is a batch of JSON lines.
type encoder struct {
	buf []byte
	n   int
}

func (e *encoder) Add(ev *delivery.Event) error {
	start := len(e.buf)
	buf, err := jsonl.AppendLine(e.buf, ev.Tag, ev.Time, ev.Record)
	if err != nil {
		return delivery.Reject("undecodable", "%v", err)
	}
	if len(buf) > MaxBatchBytes && e.n > 0 {
		e.buf = buf[:start]
		return delivery.ErrFull
	}
	e.buf = buf
	e.n++
	return nil
}

func (e *encoder) Full() bool { return len(e.buf) >= MaxBatchBytes }
func (e *encoder) Len() int   { return e.n }
func (e *encoder) Bytes() int { return len(e.buf) }
func (e *encoder) Reset()     { e.buf, e.n = e.buf[:0], 0 }

// NewEncoder implements delivery.Sink.
func (o *Output) NewEncoder() delivery.Encoder { return &encoder{} }

// Send implements delivery.Sink: it writes the batch in full, retrying a
// failed write (the rest only) with back-off, then fsyncs a regular file.
func (o *Output) Send(ctx context.Context, enc delivery.Encoder, _ []delivery.Result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := o.w
	if o.path != "" {
		if o.f == nil {
			f, fsync, err := o.open(o.path)
			if err != nil {
				o.errs.Inc()
				return fmt.Errorf("open %s: %w", o.path, err)
			}
			o.f, o.fsync = f, fsync
		}
		w = o.f
	}
	line := enc.(*encoder).buf
	backoff := 100 * time.Millisecond
	for written := 0; written < len(line); {
		n, err := w.Write(line[written:])
		written += n
		if err == nil {
			continue
		}
		o.errs.Inc()
		o.log.Warn("write failed, retrying the rest", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	if o.f == nil || !o.fsync {
		return nil
	}
	if err := o.f.Sync(); err != nil {
		o.errs.Inc()
		o.f.Close()
		o.f = nil
		o.log.Error("fsync failed; the batch will be written again", "path", o.path, "err", err)
		return fmt.Errorf("fsync %s: %w", o.path, err)
	}
	return nil
}

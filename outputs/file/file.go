// Package file is the "file" output and, through NewWriter, the "stdout"
// output: each event becomes one JSON line (package internal/codec/jsonl)
//
//	{"tag":"app.web","time":"2024-01-02T03:04:05.123456789Z","record":{...}}
//
// # Invariants
//
//   - A chunk is acknowledged to its queue only after all its lines were
//     written and, for a regular file, fsynced. A crash in between
//     re-delivers the chunk (at-least-once: duplicate lines are possible,
//     losses are not).
//   - A failed fsync is sticky, as in the buffer: what reached the disk is
//     unknown, and a later fsync may succeed without the lost pages. Run
//     then acks nothing more and returns the error; the chunk and every
//     later one stay in the queue for the next start.
//   - A failed write is retried, rest only, with back-off: no torn or
//     doubled lines within a run.
//   - An event whose record cannot be transcoded (nested deeper than the
//     decoder allows, truncated or invalid inside) is skipped alone,
//     counted in sluice_output_events_skipped_total{output,
//     reason="undecodable"} and logged at most every 10s; the other events
//     of its chunk are delivered and the chunk is acked.
//   - One goroutine (Run) owns the destination, the encode buffer and the
//     log limiter.
//
// # Known limitations
//
//   - No rotation of the output file: use it for debugging and quick starts,
//     not as a long-term sink.
//   - Only regular files are fsynced: a path to a pipe or a device
//     (/dev/stdout) is written without fsync.
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

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
)

// Source is what the output needs of its queue (*buffer.Queue).
type Source interface {
	Next(ctx context.Context) (buffer.Chunk, error)
	Ack(id buffer.ID)
}

// destination is the open output file; tests replace it.
type destination interface {
	io.Writer
	Sync() error
	Close() error
}

// skipLogEvery bounds the logs about skipped events.
const skipLogEvery = 10 * time.Second

// Output writes JSON lines to a file or to an io.Writer. Run must not be
// called concurrently with itself.
type Output struct {
	id   string
	src  Source
	path string    // "" when w is set
	w    io.Writer // stdout variant
	log  *slog.Logger
	// open opens path for appending; sync reports whether to fsync it.
	open func(path string) (f destination, sync bool, err error)

	events  *metrics.Counter
	chunks  *metrics.Counter
	errs    *metrics.Counter
	skipped *metrics.Counter

	// Owned by Run.
	lastSkipLog time.Time
	unlogged    int // skipped events not logged yet
}

// New returns a file output appending to cfg.Path.
func New(id string, cfg config.FileOutput, src Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if cfg.Path == "" {
		return nil, errors.New("file output: path is empty")
	}
	o := newOutput(id, src, log, set)
	o.path = cfg.Path
	o.open = openFile
	return o, nil
}

// NewWriter returns an output writing to w (the stdout output).
func NewWriter(id string, w io.Writer, src Source, log *slog.Logger, set *metrics.Set) *Output {
	o := newOutput(id, src, log, set)
	o.w = w
	return o
}

func newOutput(id string, src Source, log *slog.Logger, set *metrics.Set) *Output {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	return &Output{
		id: id, src: src, log: log,
		events:  set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_events_total{output=%q}`, id)),
		chunks:  set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_chunks_total{output=%q}`, id)),
		errs:    set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_errors_total{output=%q}`, id)),
		skipped: set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_events_skipped_total{output=%q,reason="undecodable"}`, id)),
	}
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

// errStopped reports that ctx ended before a chunk was written in full.
var errStopped = errors.New("stopped")

// Run delivers chunks until ctx is done, then returns nil. It returns an
// error when the queue fails or an fsync fails (see the package doc); the
// unacked chunks stay in the queue.
func (o *Output) Run(ctx context.Context) error {
	w := o.w
	var sync func() error // nil: nothing to fsync
	if o.path != "" {
		f, fsync, err := o.open(o.path)
		if err != nil {
			return fmt.Errorf("file output %s: open: %w", o.id, err)
		}
		defer f.Close()
		w = f
		if fsync {
			sync = f.Sync
		}
	}
	var line []byte
	// A queue fed without pause always has a chunk ready: check ctx first.
	for ctx.Err() == nil {
		c, err := o.src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("file output %s: next chunk: %w", o.id, err)
		}
		var n int
		line, n, err = jsonl.AppendChunk(line[:0], c.Tag, c.Entries)
		if err != nil {
			o.skip(c, c.Count-n, err)
		}
		switch err := o.write(ctx, w, sync, line); {
		case errors.Is(err, errStopped):
			return nil // the chunk stays unacked in the queue
		case err != nil:
			return err
		}
		o.events.Add(n)
		o.chunks.Inc()
		o.src.Ack(c.ID)
	}
	return nil
}

// write writes line in full, retrying a failed write (the rest only) with
// back-off, then calls sync if not nil. It returns errStopped if ctx ends
// during a back-off, and the fsync error, which is final.
func (o *Output) write(ctx context.Context, w io.Writer, sync func() error, line []byte) error {
	backoff := 100 * time.Millisecond
	for written := 0; written < len(line); {
		n, err := w.Write(line[written:])
		written += n
		if err == nil {
			continue
		}
		o.errs.Inc()
		o.log.Warn("write failed, retrying", "output", o.id, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return errStopped
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	if sync == nil || len(line) == 0 {
		return nil
	}
	if err := sync(); err != nil {
		o.errs.Inc()
		o.log.Error("fsync failed; acking nothing more, the chunks stay in the queue", "output", o.id, "path", o.path, "err", err)
		return fmt.Errorf("file output %s: fsync %s: %w", o.id, o.path, err)
	}
	return nil
}

// skip counts the n events of chunk c that could not be transcoded and
// logs it, at most once per skipLogEvery (with the number not logged).
func (o *Output) skip(c buffer.Chunk, n int, err error) {
	o.skipped.Add(n)
	o.unlogged += n
	if now := time.Now(); now.Sub(o.lastSkipLog) >= skipLogEvery {
		o.log.Warn("undecodable events skipped; the rest of their chunks delivered",
			"output", o.id, "chunk", c.ID.String(), "tag", string(c.Tag), "skipped", o.unlogged, "err", err)
		o.lastSkipLog, o.unlogged = now, 0
	}
}

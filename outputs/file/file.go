// Package file is the "file" output and, through NewWriter, the "stdout"
// output: each event becomes one JSON line
//
//	{"tag":"app.web","time":"2024-01-02T03:04:05.123456789Z","record":{...}}
//
// # Invariants
//
//   - A chunk is acknowledged to its queue only after all its lines were
//     written and, for a file, fsynced. A crash in between re-delivers the
//     chunk (at-least-once: duplicate lines are possible, losses are not).
//   - One goroutine (Run) owns the destination and the encode buffer.
//
// # Known limitations
//
//   - No rotation of the output file: use it for debugging and quick starts,
//     not as a long-term sink.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Source is what the output needs of its queue (*buffer.Queue).
type Source interface {
	Next(ctx context.Context) (buffer.Chunk, error)
	Ack(id buffer.ID)
}

// Output writes JSON lines to a file or to an io.Writer.
type Output struct {
	id   string
	src  Source
	path string    // "" when w is set
	w    io.Writer // stdout variant
	log  *slog.Logger

	events *metrics.Counter
	chunks *metrics.Counter
	errs   *metrics.Counter
}

// New returns a file output appending to cfg.Path.
func New(id string, cfg config.FileOutput, src Source, log *slog.Logger, set *metrics.Set) (*Output, error) {
	if cfg.Path == "" {
		return nil, errors.New("file output: path is empty")
	}
	o := newOutput(id, src, log, set)
	o.path = cfg.Path
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
		events: set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_events_total{output=%q}`, id)),
		chunks: set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_chunks_total{output=%q}`, id)),
		errs:   set.GetOrCreateCounter(fmt.Sprintf(`sluice_output_errors_total{output=%q}`, id)),
	}
}

// Run delivers chunks until ctx is done. A write error is retried with
// back-off; the chunk stays unacknowledged meanwhile.
func (o *Output) Run(ctx context.Context) error {
	var f *os.File
	w := o.w
	if o.path != "" {
		if err := os.MkdirAll(filepath.Dir(o.path), 0o755); err != nil {
			return fmt.Errorf("file output %s: %w", o.id, err)
		}
		var err error
		f, err = os.OpenFile(o.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("file output %s: %w", o.id, err)
		}
		defer f.Close()
		w = f
	}
	var line []byte
	backoff := 100 * time.Millisecond
	for {
		c, err := o.src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("file output %s: next chunk: %w", o.id, err)
		}
		line, err = AppendJSONLines(line[:0], c.Tag, c.Entries)
		if err != nil {
			// A chunk that cannot be decoded can never be written; it
			// passed the buffer's CRC, so this is a producer bug.
			o.errs.Inc()
			o.log.Error("undecodable chunk skipped", "output", o.id, "chunk", c.ID.String(), "events", c.Count, "err", err)
			o.src.Ack(c.ID)
			continue
		}
		// After a partial write only the rest is retried: no torn or
		// doubled lines within a run.
		for written := 0; ; {
			n, err := w.Write(line[written:])
			written += n
			if err == nil && f != nil {
				err = f.Sync()
			}
			if err == nil {
				o.events.Add(c.Count)
				o.chunks.Inc()
				break
			}
			o.errs.Inc()
			o.log.Warn("write failed, retrying", "output", o.id, "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
		}
		backoff = 100 * time.Millisecond
		o.src.Ack(c.ID)
	}
}

// AppendJSONLines appends one JSON line per entry of a chunk.
func AppendJSONLines(dst []byte, tag, entries []byte) ([]byte, error) {
	err := wire.ForEachEntry(entries, func(ns int64, record []byte) error {
		dst = append(dst, `{"tag":`...)
		dst = strconv.AppendQuote(dst, string(tag))
		dst = append(dst, `,"time":"`...)
		dst = time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, `","record":`...)
		var err error
		dst, err = appendJSON(dst, record)
		if err != nil {
			return err
		}
		dst = append(dst, "}\n"...)
		return nil
	})
	return dst, err
}

// appendJSON converts one msgpack value to JSON.
func appendJSON(dst []byte, msg []byte) ([]byte, error) {
	buf := appendWriter{b: dst}
	if _, err := msgp.UnmarshalAsJSON(&buf, msg); err != nil {
		return dst, err
	}
	return buf.b, nil
}

type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }

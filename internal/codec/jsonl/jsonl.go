// Package jsonl transcodes stored chunks to JSON lines, one per event:
//
//	{"tag":"app.web","time":"2024-01-02T03:04:05.123456789Z","record":{...}}
//
// It is shared by every output that writes JSON (file, stdout, and later
// Elasticsearch, S3, CloudWatch Logs).
//
// # Invariants
//
//   - An event is transcoded whole or not at all: when its record cannot
//     be converted (nested deeper than the decoder allows, a truncated or
//     invalid value inside it), nothing of it is left in the output and the
//     other events of the chunk are still transcoded.
//   - When the chunk's entries themselves cannot be split (a broken
//     frame), the events before the break are kept and the rest are lost;
//     AppendChunk reports how many lines it made so the caller can count
//     the others.
//   - The package keeps no state; callers own their buffers.
package jsonl

import (
	"fmt"
	"strconv"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

// AppendLine appends the JSON line of one event (with its trailing
// newline) to dst. On error dst is returned unchanged.
func AppendLine(dst, tag []byte, unixNano int64, record []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `{"tag":`...)
	dst = strconv.AppendQuote(dst, string(tag))
	dst = append(dst, `,"time":"`...)
	dst = time.Unix(0, unixNano).UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","record":`...)
	w := appendWriter{b: dst}
	if _, err := msgp.UnmarshalAsJSON(&w, record); err != nil {
		return dst[:start], fmt.Errorf("record: %w", err)
	}
	return append(w.b, "}\n"...), nil
}

// AppendChunk appends the JSON line of every event in entries (a chunk's
// concatenated Forward entries) to dst. It returns the extended dst, the
// number of lines appended and the first problem met, nil if every event
// was transcoded. An event whose record does not transcode is left out and
// the next one tried; a break in the entries themselves ends the chunk.
// A caller that knows the chunk's event count counts count-lines events
// as not delivered.
func AppendChunk(dst, tag, entries []byte) (_ []byte, lines int, err error) {
	i := 0 // index of the current event
	werr := wire.ForEachEntry(entries, func(ns int64, record []byte) error {
		var e error
		if dst, e = AppendLine(dst, tag, ns, record); e != nil {
			if err == nil {
				err = fmt.Errorf("event %d: %w", i, e)
			}
		} else {
			lines++
		}
		i++
		return nil
	})
	if werr != nil && err == nil {
		err = fmt.Errorf("event %d: %w", i, werr)
	}
	return dst, lines, err
}

type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }

package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
)

// DeadLetterKey is the record member a dead-lettered event gains.
const DeadLetterKey = "_dead_letter"

// maxDetail caps the destination's message kept in a dead letter.
const maxDetail = 1024

// deadLetters is an output's dead-letter queue.
type deadLetters struct {
	q       *buffer.Queue
	entries []byte // reused
}

func openDeadLetters(o Options) (*deadLetters, error) {
	seg := min(int64(buffer.DefaultSegmentBytes), o.DeadLetterMaxBytes/2)
	q, err := buffer.Open(o.DeadLetterDir, buffer.Options{
		Name:         o.ID + ".deadletter",
		MaxBytes:     o.DeadLetterMaxBytes,
		SegmentBytes: seg,
		Overflow:     buffer.DropOldest,
		FsyncAlways:  true,
		Logger:       o.Log,
		Metrics:      o.Metrics,
	})
	if err != nil {
		return nil, err
	}
	return &deadLetters{q: q}, nil
}

func (d *deadLetters) close() { _ = d.q.Close() }

// store appends the refused events, grouped in runs of one tag, each
// record with its DeadLetterKey member, fsynced (the queue is
// FsyncAlways), and marks the stored ones. A run too large for one chunk
// is stored event by event; an event too large for the queue alone is not
// stored. Any other error stops and is returned.
func (d *deadLetters) store(output string, rs []rejected) error {
	at := time.Now().Unix()
	for i := 0; i < len(rs); {
		j := i + 1
		for j < len(rs) && string(rs[j].r.t.chunk.Tag) == string(rs[i].r.t.chunk.Tag) {
			j++
		}
		err := d.append(output, rs[i:j], at)
		if errors.Is(err, buffer.ErrChunkTooLarge) && j-i > 1 {
			err = nil
			for k := i; k < j && err == nil; k++ {
				if e := d.append(output, rs[k:k+1], at); !errors.Is(e, buffer.ErrChunkTooLarge) {
					err = e
				}
			}
		}
		if err != nil && !errors.Is(err, buffer.ErrChunkTooLarge) {
			return err
		}
		i = j
	}
	return nil
}

func (d *deadLetters) append(output string, rs []rejected, at int64) error {
	d.entries = d.entries[:0]
	for i := range rs {
		x := &rs[i]
		ev := x.r.event()
		d.entries = AppendDeadLetter(d.entries, ev.Time, ev.Record, output, x.reason, x.detail, at)
	}
	if err := d.q.Append(context.Background(), rs[0].r.t.chunk.Tag, len(rs), d.entries); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	for i := range rs {
		rs[i].stored = true
	}
	return nil
}

// AppendDeadLetter appends the Forward entry [time, record'] where record'
// is record with one more member, DeadLetterKey: {output, reason, detail,
// at}. A record that is not a map is kept whole under the key "record".
func AppendDeadLetter(dst []byte, ns int64, record []byte, output, reason, detail string, at int64) []byte {
	if len(detail) > maxDetail {
		detail = detail[:maxDetail]
	}
	dst = msgp.AppendArrayHeader(dst, 2)
	dst = wire.AppendEventTime(dst, ns)
	n, rest, ok := wire.ReadMapHeader(record)
	if ok {
		dst = msgp.AppendMapHeader(dst, uint32(n)+1)
		dst = append(dst, rest...)
	} else {
		dst = msgp.AppendMapHeader(dst, 2)
		dst = msgp.AppendString(dst, "record")
		dst = append(dst, record...)
	}
	dst = msgp.AppendString(dst, DeadLetterKey)
	dst = msgp.AppendMapHeader(dst, 4)
	dst = msgp.AppendString(msgp.AppendString(dst, "output"), output)
	dst = msgp.AppendString(msgp.AppendString(dst, "reason"), reason)
	dst = msgp.AppendString(msgp.AppendString(dst, "detail"), detail)
	dst = msgp.AppendInt64(msgp.AppendString(dst, "at"), at)
	return dst
}

package receiver

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/sluice-agent/sluice/internal/wire"
)

// Wire is the Codec built on our internal/wire package (zero-copy; no
// allocation per request in steady state).
type Wire struct {
	// MaxBytes caps one request (default wire.DefaultMaxRequestBytes).
	MaxBytes int
	// MaxDecompressed caps one decompressed request (default
	// wire.DefaultMaxDecompressedBytes).
	MaxDecompressed int
	// OnEvent, if set, records one event in b instead of the default
	// (RecordKey's src and seq); tests use it to check each record too.
	OnEvent func(b *Batch, ns int64, rec []byte)
}

// ServeConn implements Codec.
func (w Wire) ServeConn(c net.Conn, t *Tracker) error {
	maxBytes := w.MaxBytes
	if maxBytes <= 0 {
		maxBytes = wire.DefaultMaxRequestBytes
	}
	var (
		buf     = make([]byte, 0, 256<<10)
		off     int // start of unparsed bytes in buf
		scratch []byte
		ack     []byte
		batch   Batch
		tracked func(int64, []byte) error
	)
	tracked = func(ns int64, rec []byte) error {
		if w.OnEvent != nil {
			w.OnEvent(&batch, ns, rec)
		} else if src, seq, ok := RecordKey(rec); ok {
			batch.Add(src, seq, ns)
		} else {
			batch.AddUnkeyed()
		}
		return nil
	}
	for {
		// Parse every complete request in buf[off:].
		for off < len(buf) {
			req, n, err := wire.ReadRequest(buf[off:], maxBytes)
			if errors.Is(err, wire.ErrShort) {
				break
			}
			if errors.Is(err, wire.ErrNotArray) || errors.Is(err, wire.ErrInvalidRequest) {
				off += n // in_forward skips non-array values too
				continue
			}
			if err != nil {
				return fmt.Errorf("read request: %w", err)
			}
			if req.Mode == wire.ModeNil {
				off += n
				continue
			}
			var invalid int
			scratch, invalid, err = req.Events(scratch, w.MaxDecompressed, tracked)
			for range invalid {
				batch.AddUnkeyed()
			}
			if err != nil && !errors.Is(err, wire.ErrMalformed) {
				return fmt.Errorf("events: %w", err)
			}
			batch.AddBytes(n)
			t.Commit(&batch)
			if req.Chunk != nil {
				ack = wire.AppendAck(ack[:0], req.Chunk)
				if _, err := c.Write(ack); err != nil {
					return fmt.Errorf("write ack: %w", err)
				}
			}
			off += n
		}
		// Make room and read more.
		if off == len(buf) {
			buf, off = buf[:0], 0
		} else if off > 0 && len(buf) == cap(buf) {
			buf = buf[:copy(buf, buf[off:])]
			off = 0
		}
		if len(buf) == cap(buf) {
			if cap(buf) >= maxBytes+64 {
				return fmt.Errorf("request larger than %d bytes", maxBytes)
			}
			nb := make([]byte, len(buf), min(2*cap(buf), maxBytes+64))
			copy(nb, buf)
			buf = nb
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				if off < len(buf) {
					return fmt.Errorf("eof inside a request (%d bytes)", len(buf)-off)
				}
				return nil
			}
			return err
		}
	}
}

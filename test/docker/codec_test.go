package dockertest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/wire"
)

// checkCodec is a receiver.Codec that decodes like receiver.Wire (our wire
// codec; the agent under test is the only client) and also checks every
// keyed record against what loggen wrote:
//
//   - a long line carries "len":N at its end; the record's log must be
//     exactly N bytes (reassembled, nothing cut or lost in between),
//     otherwise the event is counted as Unkeyed, so it shows as missing;
//   - container_name must be the source minus its "-<type>" suffix
//     (Docker's "/name" normalised to "name"), and container_id 64 hex;
//   - stream must be stderr exactly for loggen's stderr sequences
//     (stderrEvery).
//
// Problems are counted and the first few kept for the failure message.
type checkCodec struct {
	stderrEvery int64 // loggen's -stderr-every (3 by default); 0 skips the check
	// stderrOverride maps a container name to its own -stderr-every.
	stderrOverride sync.Map

	longOK   atomic.Int64 // long lines received with the right length
	badLen   atomic.Int64
	badMeta  atomic.Int64
	unkeyedN atomic.Int64

	mu      sync.Mutex
	samples []string
}

const maxSamples = 8

func (c *checkCodec) sample(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) < maxSamples {
		c.samples = append(c.samples, fmt.Sprintf(format, a...))
	}
}

// problems describes what went wrong, "" if nothing.
func (c *checkCodec) problems() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.badLen.Load()+c.badMeta.Load()+c.unkeyedN.Load() == 0 {
		return ""
	}
	return fmt.Sprintf("bad length %d, bad metadata %d, unkeyed %d; first: %q",
		c.badLen.Load(), c.badMeta.Load(), c.unkeyedN.Load(), c.samples)
}

var (
	keyLog           = []byte("log")
	keyStream        = []byte("stream")
	keyContainerName = []byte("container_name")
	keyContainerID   = []byte("container_id")
	jsonLen          = []byte(`,"len":`)
)

// check validates one record and adds it to b.
func (c *checkCodec) check(b *receiver.Batch, ns int64, rec []byte) {
	src, seq, ok := receiver.RecordKey(rec)
	log, _ := wire.LookupString(rec, keyLog)
	if !ok {
		c.unkeyedN.Add(1)
		c.sample("unkeyed record, log %d bytes: %.120q", len(log), log)
		b.AddUnkeyed()
		return
	}
	if i := bytes.LastIndex(log, jsonLen); i >= 0 && bytes.HasSuffix(log, []byte("}")) {
		want, err := strconv.Atoi(string(log[i+len(jsonLen) : len(log)-1]))
		if err != nil || want != len(log) {
			c.badLen.Add(1)
			c.sample("%s seq %d: log of %d bytes announces %q", src, seq, len(log), log[i:])
			b.AddUnkeyed()
			return
		}
		c.longOK.Add(1)
	}
	name, _ := wire.LookupString(rec, keyContainerName)
	id, _ := wire.LookupString(rec, keyContainerID)
	stream, _ := wire.LookupString(rec, keyStream)
	wantName := src
	if j := bytes.LastIndexByte(src, '-'); j > 0 {
		wantName = src[:j]
	}
	every := c.stderrEvery
	if v, ok := c.stderrOverride.Load(string(wantName)); ok {
		every = v.(int64)
	}
	wantStream := "stdout"
	if every > 0 && seq%every == every-1 {
		wantStream = "stderr"
	}
	if !bytes.Equal(name, wantName) || len(id) != 64 || string(stream) != wantStream {
		c.badMeta.Add(1)
		c.sample("%s seq %d: container_name %q id %q stream %q (want %q)", src, seq, name, id, stream, wantStream)
	}
	b.Add(src, seq, ns)
}

// ServeConn implements receiver.Codec; it is receiver.Wire's loop with
// check as the per-event hook.
func (c *checkCodec) ServeConn(conn net.Conn, t *receiver.Tracker) error {
	const maxBytes = wire.DefaultMaxRequestBytes
	var (
		buf     = make([]byte, 0, 256<<10)
		off     int
		scratch []byte
		ack     []byte
		batch   receiver.Batch
	)
	fn := func(ns int64, rec []byte) error {
		c.check(&batch, ns, rec)
		return nil
	}
	for {
		for off < len(buf) {
			req, n, err := wire.ReadRequest(buf[off:], maxBytes)
			if errors.Is(err, wire.ErrShort) {
				break
			}
			if errors.Is(err, wire.ErrNotArray) || errors.Is(err, wire.ErrInvalidRequest) {
				off += n
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
			scratch, invalid, err = req.Events(scratch, 0, fn)
			for range invalid {
				batch.AddUnkeyed()
			}
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			batch.AddBytes(n)
			t.Commit(&batch)
			if req.Chunk != nil {
				ack = wire.AppendAck(ack[:0], req.Chunk)
				if _, err := conn.Write(ack); err != nil {
					return fmt.Errorf("write ack: %w", err)
				}
			}
			off += n
		}
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
		n, err := conn.Read(buf[len(buf):cap(buf)])
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

// Package ibmpeer is a Forward receiver whose decoding is done by IBM's
// fluent-forward-go protocol package, an implementation independent of our
// internal/wire codec. It plugs into receiver.Server, so it has the same
// tracking API (Count, Missing, Duplicates, Wait...).
//
// # Invariants
//
//   - Requests are framed with msgp.Raw (the next msgpack value on the
//     stream) and the mode is chosen from the type of the second element,
//     as the spec says. Decoding is IBM's: protocol.Message / MessageExt
//     for Message mode, protocol.PackedForwardMessage for PackedForward
//     (bin), protocol.EntryList.UnmarshalPacked for packed streams (after
//     compress/gzip when option "compressed" is "gzip"),
//     protocol.EntryExt.UnmarshalMsg for each Forward-mode entry and
//     protocol.MessageOptions for options. Two IBM gaps are bridged with
//     plain msgp reads: a str-typed packed stream (Fluentd sends str32;
//     PackedForwardMessage takes bin only) and Forward-mode entries with
//     integer or [time, metadata] times (ForwardMessage's generated
//     decoder takes EventTime only). Nothing here uses internal/wire.
//   - Events are committed to the Tracker before the ack, which is encoded
//     by protocol.AckMessage.
//   - A request IBM's package cannot decode is a connection error (recorded
//     in Server.Errors), never silently skipped.
//
// # Known limitations
//
//   - The protocol package registers msgp extension 0 in its init, so a
//     binary that links this package must not link fluent-logger-golang
//     (both register it; the second panics).
//   - It allocates per event (records are decoded to map[string]any): it is
//     a correctness peer, not a fast one.
package ibmpeer

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/IBM/fluent-forward-go/fluent/protocol"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// Codec is a receiver.Codec decoding with IBM's protocol package.
type Codec struct{}

// New returns a stopped receiver.Server on addr using Codec.
func New(addr string, log *slog.Logger) *receiver.Server {
	return receiver.New(addr, Codec{}, log)
}

// Listen returns a started receiver.Server on addr using Codec.
func Listen(addr string, log *slog.Logger) (*receiver.Server, error) {
	return receiver.Listen(addr, Codec{}, log)
}

// ServeConn implements receiver.Codec.
func (Codec) ServeConn(c net.Conn, t *receiver.Tracker) error {
	r := msgp.NewReaderSize(c, 256<<10)
	var (
		raw   msgp.Raw
		batch receiver.Batch
		d     decoder
	)
	for {
		if err := raw.DecodeMsg(r); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("ibmpeer: read: %w", err)
		}
		if len(raw) == 0 { // nil: TCP heartbeat
			continue
		}
		chunk, err := d.decode(raw, &batch)
		if err != nil {
			return fmt.Errorf("ibmpeer: %w", err)
		}
		batch.AddBytes(len(raw))
		t.Commit(&batch)
		if chunk != "" {
			ack, err := protocol.AckMessage{Ack: chunk}.MarshalMsg(nil)
			if err != nil {
				return fmt.Errorf("ibmpeer: encode ack: %w", err)
			}
			if _, err := c.Write(ack); err != nil {
				return fmt.Errorf("ibmpeer: write ack: %w", err)
			}
		}
	}
}

type decoder struct {
	gz      *gzip.Reader
	plain   bytes.Buffer
	entries protocol.EntryList
}

// decode decodes one request into b and returns its chunk option.
func (d *decoder) decode(raw []byte, b *receiver.Batch) (chunk string, err error) {
	_, rest, err := msgp.ReadArrayHeaderBytes(raw)
	if err != nil {
		return "", fmt.Errorf("request is not an array: %w", err)
	}
	if rest, err = msgp.Skip(rest); err != nil { // tag
		return "", fmt.Errorf("tag: %w", err)
	}
	var opts *protocol.MessageOptions
	switch typ := msgp.NextType(rest); typ {
	case msgp.BinType:
		var m protocol.PackedForwardMessage
		if _, err := m.UnmarshalMsg(raw); err != nil {
			return "", fmt.Errorf("packed forward: %w", err)
		}
		opts = m.Options
		if err := d.packed(b, m.EventStream, opts); err != nil {
			return "", err
		}
	case msgp.StrType:
		// PackedForwardMessage reads the stream with msgp.ReadBytesBytes,
		// which takes bin only; Fluentd sends str32. Unwrap it here and
		// decode the entries with IBM's EntryList.
		stream, rest, err := msgp.ReadStringZC(rest)
		if err != nil {
			return "", fmt.Errorf("packed forward (str): %w", err)
		}
		if opts, err = options(rest); err != nil {
			return "", err
		}
		if err := d.packed(b, stream, opts); err != nil {
			return "", err
		}
	case msgp.ArrayType:
		// ForwardMessage's generated EntryList decoder takes EventTime only;
		// EntryExt.UnmarshalMsg also takes integer times and Fluent Bit's
		// [[time, metadata], record], so decode entry by entry with it.
		n, rest, err := msgp.ReadArrayHeaderBytes(rest)
		if err != nil {
			return "", fmt.Errorf("forward: %w", err)
		}
		for range n {
			var e protocol.EntryExt
			if rest, err = e.UnmarshalMsg(rest); err != nil {
				return "", fmt.Errorf("forward entry: %w", err)
			}
			addEntry(b, &e)
		}
		if opts, err = options(rest); err != nil {
			return "", err
		}
	case msgp.ExtensionType:
		var m protocol.MessageExt
		if _, err := m.UnmarshalMsg(raw); err != nil {
			return "", fmt.Errorf("message (EventTime): %w", err)
		}
		opts = m.Options
		addRecord(b, m.Record, m.Timestamp.UnixNano())
	case msgp.IntType, msgp.UintType:
		var m protocol.Message
		if _, err := m.UnmarshalMsg(raw); err != nil {
			return "", fmt.Errorf("message: %w", err)
		}
		opts = m.Options
		addRecord(b, m.Record, m.Timestamp*1e9)
	default:
		return "", fmt.Errorf("unknown mode: second element is %v", typ)
	}
	if opts != nil {
		chunk = opts.Chunk
	}
	return chunk, nil
}

// packed decodes a PackedForward entry stream (gunzipped first if the
// option says gzip) with IBM's EntryList.
func (d *decoder) packed(b *receiver.Batch, stream []byte, opts *protocol.MessageOptions) error {
	if opts != nil && opts.Compressed == "gzip" {
		var err error
		if stream, err = d.gunzip(stream); err != nil {
			return err
		}
	}
	if _, err := d.entries.UnmarshalPacked(stream); err != nil {
		return fmt.Errorf("packed entries: %w", err)
	}
	for i := range d.entries {
		addEntry(b, &d.entries[i])
	}
	return nil
}

// options decodes the optional option map that ends a request.
func options(rest []byte) (*protocol.MessageOptions, error) {
	if len(rest) == 0 || msgp.IsNil(rest) {
		return nil, nil
	}
	o := &protocol.MessageOptions{}
	if _, err := o.UnmarshalMsg(rest); err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	return o, nil
}

func (d *decoder) gunzip(z []byte) ([]byte, error) {
	var err error
	if d.gz == nil {
		d.gz, err = gzip.NewReader(bytes.NewReader(z))
	} else {
		err = d.gz.Reset(bytes.NewReader(z))
	}
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	d.plain.Reset()
	if _, err := d.plain.ReadFrom(d.gz); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return d.plain.Bytes(), nil
}

func addEntry(b *receiver.Batch, e *protocol.EntryExt) {
	addRecord(b, e.Record, e.Timestamp.UnixNano())
}

// addRecord keys a decoded record: top-level "src" and "seq", or the JSON
// text of "log".
func addRecord(b *receiver.Batch, rec any, ns int64) {
	m, ok := rec.(map[string]any)
	if !ok {
		b.AddUnkeyed()
		return
	}
	if src, ok := m["src"].(string); ok {
		if seq, ok := number(m["seq"]); ok {
			b.Add([]byte(src), seq, ns)
			return
		}
	}
	var log []byte
	switch v := m["log"].(type) {
	case string:
		log = []byte(v)
	case []byte:
		log = v
	}
	if src, seq, ok := receiver.LogKey(log); ok {
		b.Add(src, seq, ns)
		return
	}
	b.AddUnkeyed()
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), true
	case float64:
		return int64(n), true
	case float32:
		return int64(n), true
	case int:
		return int64(n), true
	}
	return 0, false
}

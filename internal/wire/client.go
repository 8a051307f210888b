package wire

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"
)

// maxAckBytes caps one ack (or any short reply) read by ParseAck. Real acks
// are about 30 bytes.
const maxAckBytes = 64 << 10

// Options is the option map of a PackedForward request sent by the forward
// output.
type Options struct {
	// Chunk is the chunk id; when not empty the server must ack it.
	Chunk string
	// Size is the number of entries; it is always sent.
	Size int
	// Compressed marks the entries as gzip data ("compressed": "gzip").
	Compressed bool
}

// AppendPackedForward appends the request [tag, bin(entries), option] with
// option {"size": n, "chunk": id (if set), "compressed": "gzip" (if set)}.
// entries is a packed entry stream, or its gzip compression when
// o.Compressed is set (see Gzipper). It is the concatenation of
// AppendPackedForwardHeader, entries and AppendOptions; use those three with
// net.Buffers to avoid copying a large chunk.
func AppendPackedForward(dst []byte, tag []byte, entries []byte, o Options) []byte {
	dst = AppendPackedForwardHeader(dst, tag, len(entries))
	dst = append(dst, entries...)
	return AppendOptions(dst, o)
}

// AppendPackedForwardHeader appends the start of a PackedForward request up
// to the entries' bytes: a 3-element array header, the tag as str, and a bin
// header for n bytes. The entries and AppendOptions must follow.
func AppendPackedForwardHeader(dst []byte, tag []byte, n int) []byte {
	dst = append(dst, 0x93)
	dst = msgp.AppendStringFromBytes(dst, tag)
	return msgp.AppendBytesHeader(dst, uint32(n))
}

// AppendOptions appends the option map of a PackedForward request.
func AppendOptions(dst []byte, o Options) []byte {
	n := uint32(1)
	if o.Chunk != "" {
		n++
	}
	if o.Compressed {
		n++
	}
	dst = msgp.AppendMapHeader(dst, n)
	dst = msgp.AppendString(dst, "size")
	dst = msgp.AppendInt(dst, o.Size)
	if o.Chunk != "" {
		dst = msgp.AppendString(dst, "chunk")
		dst = msgp.AppendString(dst, o.Chunk)
	}
	if o.Compressed {
		dst = msgp.AppendString(dst, "compressed")
		dst = msgp.AppendString(dst, "gzip")
	}
	return dst
}

// Gzipper is a reusable gzip compressor for PackedForward entries. It is not
// safe for concurrent use; give each sender its own.
type Gzipper struct {
	w   *gzip.Writer
	buf appendWriter
}

// NewGzipper returns a Gzipper at the given level: 1 (fastest) to 9 (best),
// or gzip.DefaultCompression (-1).
func NewGzipper(level int) (*Gzipper, error) {
	g := &Gzipper{}
	w, err := gzip.NewWriterLevel(&g.buf, level)
	if err != nil {
		return nil, fmt.Errorf("gzip level %d: %w", level, err)
	}
	g.w = w
	return g, nil
}

// Compress appends to dst one gzip member holding src and returns the
// extended slice. It does not allocate once the compressor has warmed up and
// dst has room.
func (g *Gzipper) Compress(dst, src []byte) []byte {
	g.buf.b = dst
	g.w.Reset(&g.buf)
	// Writes to an appendWriter cannot fail, so neither can these.
	_, _ = g.w.Write(src)
	_ = g.w.Close()
	dst = g.buf.b
	g.buf.b = nil
	return dst
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// NewChunkID derives the 16 bytes of a chunk id deterministically from a
// chunk's position in a disk queue: the first 16 bytes of SHA-512 over the
// queue id, a zero byte, and segment and offset as big-endian uint64. A
// chunk resent after a restart therefore carries the same id; ids of
// different chunks differ with overwhelming probability.
func NewChunkID(queue string, segment, offset uint64) [16]byte {
	h := sha512.New()
	h.Write([]byte(queue))
	var b [17]byte
	binary.BigEndian.PutUint64(b[1:], segment)
	binary.BigEndian.PutUint64(b[9:], offset)
	h.Write(b[:])
	var sum [sha512.Size]byte
	var id [16]byte
	copy(id[:], h.Sum(sum[:0]))
	return id
}

// ChunkID returns id as the Forward chunk option: standard base64 with
// padding, 24 characters, no newline (the form Fluent Bit and
// fluent-logger-golang send).
func ChunkID(id [16]byte) string {
	return base64.StdEncoding.EncodeToString(id[:])
}

// AppendAck appends the server's reply {"ack": chunk}: 81 a3 "ack" followed
// by chunk as a str (fixstr, str8, str16 or str32 by length, as
// msgp.AppendString writes it). Fluentd and Fluent Bit send the same bytes.
func AppendAck(dst []byte, chunk []byte) []byte {
	dst = append(dst, 0x81, 0xa3, 'a', 'c', 'k')
	return msgp.AppendStringFromBytes(dst, chunk)
}

// ParseAck reads one {"ack": chunk} reply from the front of b and returns
// the chunk (a view into b, str or bin) and the reply's length n. Keys may
// come in any order and unknown keys are ignored. It returns ErrShort if b
// ends inside the value, an error wrapping ErrTooLarge for a value over 64
// KiB, ErrMalformed (n == 0) for bytes that are not msgpack, and
// ErrUnexpected (n set) for a value that is not a map with a str/bin "ack".
func ParseAck(b []byte) (chunk []byte, n int, err error) {
	n, err = readValue(b, maxAckBytes, "ack")
	if err != nil {
		return nil, 0, err
	}
	cnt, rest, ok := ReadMapHeader(b[:n])
	if !ok {
		return nil, n, fmt.Errorf("%w: ack is a %s, not a map", ErrUnexpected, typeName(b[0]))
	}
	for range cnt {
		k, after, isStr := ReadStrBin(rest)
		if !isStr {
			after, _ = Skip(rest)
		}
		l, _ := valueLen(after, 0)
		if isStr && string(k) == "ack" {
			if v, _, ok := ReadStrBin(after[:l]); ok {
				chunk = v
			}
		}
		rest = after[l:]
	}
	if chunk == nil {
		return nil, n, fmt.Errorf("%w: map without a str \"ack\"", ErrUnexpected)
	}
	return chunk, n, nil
}

// readValue returns the length of the first value of b, with errors wrapped
// for a message called what.
func readValue(b []byte, limit int, what string) (int, error) {
	n, err := valueLen(b, limit)
	switch err {
	case nil:
		return n, nil
	case ErrShort:
		return 0, ErrShort
	case ErrTooLarge:
		return 0, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, what, limit)
	}
	return 0, fmt.Errorf("read %s: %w", what, err)
}

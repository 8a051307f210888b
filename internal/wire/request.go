package wire

import (
	"fmt"
)

// Default caps, used when ReadRequest or Events get a cap <= 0. They match
// the forward input's configuration defaults.
const (
	DefaultMaxRequestBytes      = 16 << 20
	DefaultMaxDecompressedBytes = 64 << 20
)

// Mode is the Forward event mode of a request, detected from the type of its
// second element.
type Mode int

// Request modes.
const (
	// ModeNil is a msgpack nil, the TCP heartbeat; it carries no events.
	ModeNil Mode = iota
	// ModeMessage is [tag, time, record, option?]: one event.
	ModeMessage
	// ModeForward is [tag, [entry, ...], option?].
	ModeForward
	// ModePackedForward is [tag, str|bin(entry stream), option?].
	ModePackedForward
	// ModeCompressedPackedForward is PackedForward whose option
	// "compressed" is "gzip" or "zstd": the payload is compressed.
	ModeCompressedPackedForward
)

// String returns the mode's name as the Forward specification spells it.
func (m Mode) String() string {
	switch m {
	case ModeNil:
		return "Nil"
	case ModeMessage:
		return "Message"
	case ModeForward:
		return "Forward"
	case ModePackedForward:
		return "PackedForward"
	case ModeCompressedPackedForward:
		return "CompressedPackedForward"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Request is one decoded Forward request. Its byte slices are views into
// the buffer given to ReadRequest and are valid only while that buffer is
// unchanged.
type Request struct {
	Mode Mode
	// Tag is the request's tag (a str, or a bin). It is nil if the tag is
	// of another type, in which case every event of the request is invalid
	// (Events counts them, as in_forward drops them).
	Tag []byte
	// Chunk is the option "chunk" (str or bin), nil if absent. When it is
	// not nil the server must answer AppendAck(dst, Chunk) once the events
	// are safe, even if some or all of them were invalid.
	Chunk []byte
	// Compressed is the option "compressed" as sent: "" if absent, "text"
	// (uncompressed), "gzip", "zstd", or anything else (treated as
	// uncompressed, as in_forward does).
	Compressed string
	// Size is the option "size" (the client's event count hint), -1 if
	// absent or not a non-negative integer.
	Size int
	// HasOption reports whether the request carried an option map.
	HasOption bool

	tagOK  bool
	body   []byte // Message: the time value; Forward: the entries after the array header; Packed: the payload
	record []byte // Message: the record value, nil if the array had no third element
	count  int    // Forward: number of entries
}

// ReadRequest parses one top-level Forward request from the front of b and
// returns it with its encoded length n. Requests arrive back to back on a
// stream and may be split anywhere, so:
//
//   - If b ends inside the value (even inside a header), it returns ErrShort
//     and n == 0: read more bytes and call again from the same start.
//   - If the value is known to be longer than maxBytes (<= 0 means
//     DefaultMaxRequestBytes), it returns an error wrapping ErrTooLarge as
//     soon as a header announces it, without waiting for the bytes. The
//     caller never needs to buffer more than maxBytes.
//   - A msgpack nil (the TCP heartbeat) gives Mode == ModeNil and n == 1.
//   - A complete value that is not an array gives ErrNotArray, and an array
//     of fewer than two elements ErrInvalidRequest, both with n set so the
//     caller can skip the value.
//   - Bytes that are not msgpack give an error wrapping ErrMalformed with
//     n == 0: the stream cannot be resynchronised.
//
// The mode comes from the type of the second element: str or bin is
// PackedForward (CompressedPackedForward when option "compressed" is "gzip"
// or "zstd"), array is Forward, anything else is Message. Events are not
// validated here; Events does that. ReadRequest allocates only to build an
// error.
func ReadRequest(b []byte, maxBytes int) (req Request, n int, err error) {
	req.Size = -1
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	if n, err = readValue(b, maxBytes, "request"); err != nil {
		return req, 0, err
	}
	v := b[:n:n]
	if v[0] == mNil {
		req.Mode = ModeNil
		return req, n, nil
	}
	cnt, rest, ok := readArrayHeader(v)
	if !ok {
		return req, n, fmt.Errorf("%w: got %s", ErrNotArray, typeName(v[0]))
	}
	if cnt < 2 {
		return req, n, fmt.Errorf("%w: array of %d elements", ErrInvalidRequest, cnt)
	}
	// The whole value was walked by valueLen, so every element is complete.
	elem := func() []byte {
		l, _ := valueLen(rest, 0)
		e := rest[:l:l]
		rest = rest[l:]
		return e
	}
	if req.Tag, _, req.tagOK = ReadStrBin(elem()); !req.tagOK {
		req.Tag = nil
	}
	second := elem()
	optIdx := 2
	switch c := second[0]; {
	case isStrBin(c):
		req.Mode = ModePackedForward
		req.body, _, _ = ReadStrBin(second)
	case isArray(c):
		req.Mode = ModeForward
		req.count, req.body, _ = readArrayHeader(second)
	default:
		req.Mode = ModeMessage
		req.body = second
		optIdx = 3
		if cnt >= 3 {
			req.record = elem()
		}
	}
	if cnt > optIdx {
		req.readOption(elem())
	}
	if req.Mode == ModePackedForward && (req.Compressed == "gzip" || req.Compressed == "zstd") {
		req.Mode = ModeCompressedPackedForward
	}
	return req, n, nil
}

// readOption reads the option map v (a complete value). A value that is not
// a map (nil included) is ignored, as are unknown keys and keys whose value
// has an unexpected type.
func (r *Request) readOption(v []byte) {
	r.HasOption = eachStrKey(v, func(k, val []byte) {
		switch string(k) {
		case "chunk":
			if s, _, ok := ReadStrBin(val); ok {
				r.Chunk = s
			}
		case "size":
			if i, _, ok := readInt(val); ok && i >= 0 && int64(int(i)) == i {
				r.Size = int(i)
			}
		case "compressed":
			if s, _, ok := ReadStrBin(val); ok {
				r.Compressed = compressedName(s)
			}
		}
	})
}

// compressedName returns s as a string, without allocating for the values
// peers send.
func compressedName(s []byte) string {
	switch string(s) {
	case "":
		return ""
	case "text":
		return "text"
	case "gzip":
		return "gzip"
	case "zstd":
		return "zstd"
	}
	return string(s)
}

// Events calls fn for each valid event of the request, in order, with the
// time in nanoseconds since the epoch and the record as a zero-copy view of
// its msgpack map (into the request's buffer, or into the returned scratch
// for a compressed request). fn must not keep record after it returns.
//
// Entries may be [time, record] or Fluent Bit's [[time, metadata], record]
// (the metadata is dropped). A time is any msgpack integer (seconds) or an
// EventTime (ext type 0, 8 bytes, as fixext8 or ext8/16/32), with seconds
// read as uint32; seconds equal to 0 mean now. An event whose time is
// invalid, whose record is not a map, or whose request tag is not a str/bin
// is skipped and counted in invalid, like in_forward's skip_invalid_event.
// The request must still be acked when it has a Chunk, whatever invalid is.
//
// A CompressedPackedForward payload (gzip, possibly several concatenated
// members, or zstd) is decompressed into scratch, grown as needed but never
// beyond maxDecompressed bytes (<= 0 means DefaultMaxDecompressedBytes):
// more gives an error wrapping ErrTooLarge, and a payload that does not
// decompress one wrapping ErrMalformed; in both cases fn is not called.
// Pass the returned scratchOut back in on the next call: in steady state
// Events does not allocate.
//
// An error returned by fn stops the walk and is returned as is. A packed
// entry stream that is truncated or corrupt midway gives an error wrapping
// ErrMalformed after fn was called for the events before the damage; the
// rest cannot be decoded, so the caller should count it, and may ack the
// request since resending it cannot help.
func (r *Request) Events(scratch []byte, maxDecompressed int, fn func(unixNano int64, record []byte) error) (scratchOut []byte, invalid int, err error) {
	switch r.Mode {
	case ModeMessage:
		ns, ok := readTime(r.body, false)
		if !ok || !r.tagOK || r.record == nil || !isMap(r.record[0]) {
			return scratch, 1, nil
		}
		return scratch, 0, fn(ns, r.record)
	case ModeForward:
		rest := r.body
		for range r.count {
			ns, rec, n, valid, err := readEntry(rest)
			if err != nil { // cannot happen: ReadRequest walked the value
				return scratch, invalid, fmt.Errorf("%w: forward entries: %v", ErrMalformed, err)
			}
			rest = rest[n:]
			if !valid || !r.tagOK {
				invalid++
				continue
			}
			if err := fn(ns, rec); err != nil {
				return scratch, invalid, err
			}
		}
		return scratch, invalid, nil
	case ModePackedForward:
		invalid, err = r.packed(r.body, fn)
		return scratch, invalid, err
	case ModeCompressedPackedForward:
		if maxDecompressed <= 0 {
			maxDecompressed = DefaultMaxDecompressedBytes
		}
		scratch, err = inflate(scratch[:0], r.body, r.Compressed, maxDecompressed)
		if err != nil {
			return scratch, 0, err
		}
		invalid, err = r.packed(scratch, fn)
		return scratch, invalid, err
	}
	return scratch, 0, nil
}

// packed walks a PackedForward entry stream.
func (r *Request) packed(stream []byte, fn func(int64, []byte) error) (invalid int, err error) {
	for off := 0; off < len(stream); {
		ns, rec, n, valid, err := readEntry(stream[off:])
		if err != nil {
			return invalid, fmt.Errorf("%w: packed entries truncated or corrupt at offset %d of %d", ErrMalformed, off, len(stream))
		}
		off += n
		if !valid || !r.tagOK {
			invalid++
			continue
		}
		if err := fn(ns, rec); err != nil {
			return invalid, err
		}
	}
	return invalid, nil
}

// typeName names the msgpack type starting with c, for error messages.
func typeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= mUint8 && c <= mInt64):
		return "int"
	case isMap(c):
		return "map"
	case isArray(c):
		return "array"
	case c >= 0xa0 && c <= 0xbf, c == mStr8, c == mStr16, c == mStr32:
		return "str"
	case c == mBin8, c == mBin16, c == mBin32:
		return "bin"
	case c == mNil:
		return "nil"
	case c == mTrue, c == mFalse:
		return "bool"
	case c == 0xca, c == 0xcb:
		return "float"
	case c == mExt8, c == mExt16, c == mExt32, c >= 0xd4 && c <= 0xd8:
		return "ext"
	}
	return fmt.Sprintf("0x%02x", c)
}

// Package wire is the Fluentd Forward protocol v1 codec shared by the
// pipeline (encoding entries), the disk queue (chunks are concatenated
// entries), the forward output (client) and the forward input (server).
//
// # What it implements
//
//   - Entries: AppendEntry writes [EventTime, record] with the time as
//     fixext8 ext type 0 (d7 00, uint32 BE seconds, uint32 BE nanoseconds).
//     A chunk is a concatenation of entries, a PackedForward entry stream;
//     ForEachEntry walks one, LookupString reads a field of a record.
//   - Server side: ReadRequest parses one request (Message, Forward,
//     PackedForward, CompressedPackedForward, or the nil heartbeat) from a
//     stream buffer, and Request.Events yields its events; AppendAck writes
//     {"ack": chunk}.
//   - Client side: AppendPackedForward, Gzipper, NewChunkID/ChunkID and
//     ParseAck.
//   - Handshake (both sides): HELO, PING, PONG and their SHA-512 digests.
//   - Record readers for the forward input: Skip, ReadStrBin and
//     ReadMapHeader (zero-copy, never allocating, like the rest).
//
// # Invariants
//
//   - Decoding is zero-copy and bounded. Every returned byte slice is a view
//     into the caller's buffer (or the caller's scratch buffer). ReadRequest
//     never allocates and never needs more than maxBytes buffered: a header
//     announcing more fails with ErrTooLarge at once. Decompression stops
//     at maxDecompressed bytes whatever the ratio, so gzip bombs cost at
//     most that much memory. Nesting depth costs no stack: values are
//     walked iteratively.
//   - Split input is normal: a value cut anywhere (inside a header, an ext,
//     a str) returns ErrShort, never a decoding error, and the caller
//     retries from the same start with more bytes.
//   - Errors say what the caller can do: ErrShort (read more), ErrNotArray
//     and ErrInvalidRequest with n > 0 (skip n bytes), ErrTooLarge and
//     ErrMalformed with n == 0 (the stream cannot be resynchronised: close
//     it). Invalid events are not errors: Events skips and counts them, and
//     a request with a chunk must still be acked, as in_forward does.
//   - str values are never UTF-8 validated: Fluentd sends binary entries in
//     str32 and Fluent Bit sends random nonces and salts in str.
//   - Encoding appends to the caller's slice and does not allocate when it
//     has room. Nothing here calls msgp.RegisterExtension: EventTime is read
//     and written from raw ext bytes, so the package links with
//     fluent-logger-golang and IBM/fluent-forward-go.
//
// # Accepted input
//
//   - Entries [time, record] and Fluent Bit's [[time, metadata], record].
//   - Time as any msgpack integer width (signed or unsigned; seconds) or an
//     EventTime in fixext8, ext8, ext16 or ext32 form, seconds read as
//     uint32 (valid after 2038). Seconds equal to 0 mean now.
//   - PackedForward entries in bin8/16/32 or str8/16/32; compressed "gzip"
//     (several concatenated members) and "zstd" (several frames); "text",
//     absent or unknown values mean uncompressed, as in in_forward.
//   - The option map present, absent, empty, nil or of another type
//     (ignored), with keys in any order; chunk, size and compressed are
//     read, other keys (fluent_signal, ...) ignored.
//
// # Known limitations
//
//   - Fluent Bit's per-event metadata map is dropped: Events yields the time
//     and record only.
//   - JSON requests (a connection starting with '{' or '['), which
//     in_forward accepts without security, are not supported.
//   - A nil time is an invalid event (in_forward's skip_invalid_event
//     default), not "now".
//   - zstd frames asking for a window over 8 MiB (or over maxDecompressed)
//     are rejected with ErrTooLarge.
//   - An option "chunk" that is not a str or bin is ignored, so such a
//     request gets no ack (in_forward would echo it).
//   - EventTime encodes seconds as uint32: times before 1970 or after 2106
//     wrap around.
package wire

package wire

import "errors"

// Sentinel errors. Functions wrap them with context; test with errors.Is.
var (
	// ErrShort means b ends inside the value: the caller reads more bytes
	// and retries from the same start. It is never wrapped.
	ErrShort = errors.New("wire: short buffer")
	// ErrTooLarge means the value is known to exceed a size cap (the raw
	// request, or its decompressed entries). On a stream the caller cannot
	// resynchronise cheaply and should close the connection.
	ErrTooLarge = errors.New("wire: value too large")
	// ErrMalformed means the bytes are not valid msgpack, or a compressed
	// payload does not decompress. When a Read function returns it with
	// n == 0 the stream cannot be resynchronised.
	ErrMalformed = errors.New("wire: malformed msgpack")
	// ErrNotArray means a complete, well-formed top-level value that is not
	// an array (and not nil) was read. The returned n lets the caller skip it.
	ErrNotArray = errors.New("wire: request is not an array")
	// ErrInvalidRequest means a complete, well-formed array that is not a
	// Forward request (fewer than 2 elements). The returned n lets the
	// caller skip it.
	ErrInvalidRequest = errors.New("wire: invalid request")
	// ErrUnexpected means a complete, well-formed value that is not the
	// handshake message or ack that was expected. The returned n lets the
	// caller skip it, though a handshake usually fails on it.
	ErrUnexpected = errors.New("wire: unexpected message")
)

package forward

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluice-agent/sluice/internal/wire"
)

// maxMessage caps the bytes buffered for one message from a server (acks,
// HELO and PONG are all tiny; the wire parsers reject values over 64 KiB).
const maxMessage = 128 << 10

// msgReader buffers what a server sends, for the wire parsers: call a
// parser on buffered(); on wire.ErrShort call fill and parse again; on
// success call advance(n). Views returned by parsers are valid until the
// next fill.
type msgReader struct {
	r          io.Reader
	buf        []byte
	start, end int
}

func (m *msgReader) reset(r io.Reader) {
	m.r = r
	m.start, m.end = 0, 0
	if m.buf == nil {
		m.buf = make([]byte, 4096)
	}
}

func (m *msgReader) buffered() []byte { return m.buf[m.start:m.end] }

func (m *msgReader) advance(n int) { m.start += n }

// fill reads at least one more byte. It returns io.EOF if the server closed
// the connection between messages and io.ErrUnexpectedEOF if it closed in
// the middle of one.
func (m *msgReader) fill() error {
	if m.start > 0 {
		m.end = copy(m.buf, m.buf[m.start:m.end])
		m.start = 0
	}
	if m.end == len(m.buf) {
		if len(m.buf) >= maxMessage {
			return fmt.Errorf("message from server exceeds %d bytes", maxMessage)
		}
		nb := make([]byte, 2*len(m.buf))
		copy(nb, m.buf[:m.end])
		m.buf = nb
	}
	for {
		n, err := m.r.Read(m.buf[m.end:])
		m.end += n
		if n > 0 {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && m.end > m.start {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
}

// errHelo reports a HELO received on a connection without security.
var errHelo = errors.New("server requires the security handshake (sent HELO) but no security is configured")

// readAck reads the next {"ack": id} and returns the id (valid until the
// next call).
func (m *msgReader) readAck() ([]byte, error) {
	for {
		id, n, err := wire.ParseAck(m.buffered())
		switch {
		case err == nil:
			m.advance(n)
			return id, nil
		case errors.Is(err, wire.ErrShort):
			if err := m.fill(); err != nil {
				return nil, err
			}
		case errors.Is(err, wire.ErrUnexpected):
			if _, _, herr := wire.ReadHelo(m.buffered()); herr == nil {
				return nil, errHelo
			}
			return nil, fmt.Errorf("unexpected message from server: %w", err)
		default:
			return nil, fmt.Errorf("read ack: %w", err)
		}
	}
}

package forward

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/sluice-agent/sluice/internal/wire"
)

// credentials are what a client proves in its PING.
type credentials struct {
	hostname  string // self_hostname
	salt      []byte // shared_key_salt, one per Output
	sharedKey string
	username  string
	password  string
}

// ping builds ["PING", hostname, salt, digest, username, password_digest].
// As Fluentd and Fluent Bit do, the username is "" and the password digest
// is that of "" when no user is configured but the server sent an auth
// salt; both are "" when the auth salt is empty.
func (c *credentials) ping(dst []byte, h wire.Helo) []byte {
	p := wire.Ping{
		Hostname:        []byte(c.hostname),
		Salt:            c.salt,
		SharedKeyDigest: []byte(wire.SharedKeyDigest(c.salt, []byte(c.hostname), h.Nonce, []byte(c.sharedKey))),
	}
	if len(h.Auth) > 0 {
		p.Username = []byte(c.username)
		p.PasswordDigest = []byte(wire.PasswordDigest(h.Auth, []byte(c.username), []byte(c.password)))
	}
	return wire.AppendPing(dst, p)
}

// checkPong verifies that the server accepted us and proved it knows the
// shared key. Errors never contain a secret or a digest.
func (c *credentials) checkPong(p wire.Pong, h wire.Helo) error {
	if !p.OK {
		reason := p.Reason
		if len(reason) > 200 {
			reason = reason[:200]
		}
		return fmt.Errorf("authentication rejected by server: %q", reason)
	}
	if string(p.Hostname) == c.hostname {
		return fmt.Errorf("server self_hostname %q equals ours: invalid configuration", c.hostname)
	}
	want := wire.SharedKeyDigest(c.salt, p.Hostname, h.Nonce, []byte(c.sharedKey))
	if subtle.ConstantTimeCompare(p.SharedKeyDigest, []byte(want)) != 1 {
		return errors.New("server's shared key digest does not match ours (the server does not know our shared key)")
	}
	return nil
}

// handshake runs HELO/PING/PONG on a fresh connection and returns whether
// the server allows more than one request per connection. The caller sets
// the deadline.
func handshake(w io.Writer, rd *msgReader, c *credentials) (keepalive bool, err error) {
	var h wire.Helo
	for {
		var n int
		h, n, err = wire.ReadHelo(rd.buffered())
		if err == nil {
			rd.advance(n)
			break
		}
		if !errors.Is(err, wire.ErrShort) {
			return false, fmt.Errorf("read HELO: %w", err)
		}
		if err := rd.fill(); err != nil {
			return false, fmt.Errorf("read HELO: %w", err)
		}
	}
	// h's slices point into rd's buffer, which fill moves.
	h.Nonce = append([]byte(nil), h.Nonce...)
	h.Auth = append([]byte(nil), h.Auth...)
	if _, err := w.Write(c.ping(make([]byte, 0, 512), h)); err != nil {
		return false, fmt.Errorf("send PING: %w", err)
	}
	for {
		p, n, err := wire.ReadPong(rd.buffered())
		if err == nil {
			rd.advance(n)
			if err := c.checkPong(p, h); err != nil {
				return false, err
			}
			return h.Keepalive, nil
		}
		if !errors.Is(err, wire.ErrShort) {
			return false, fmt.Errorf("read PONG: %w", err)
		}
		if err := rd.fill(); err != nil {
			if errors.Is(err, io.EOF) || isClosed(err) {
				// Fluent Bit closes without a PONG on a wrong shared key.
				return false, fmt.Errorf("server closed the connection after PING without a PONG (wrong shared key?): %w", err)
			}
			return false, fmt.Errorf("read PONG: %w", err)
		}
	}
}

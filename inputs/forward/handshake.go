package forward

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Fluentd's PONG failure reasons (in_forward.rb), sent verbatim.
const (
	reasonInvalidPing = "invalid ping message"
	reasonSharedKey   = "shared_key mismatch"
	reasonUser        = "username/password mismatch"
)

// maxPingBytes caps the first message of a secured connection.
const maxPingBytes = 64 << 10

// security is the server side of the Forward handshake.
type security struct {
	hostname  []byte
	sharedKey []byte
	users     map[string][]byte // username -> password
}

func newSecurity(c *config.Security) (*security, error) {
	s := &security{hostname: []byte(c.SelfHostname), sharedKey: []byte(string(c.SharedKey))}
	if c.SelfHostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("security: self_hostname not set and no host name: %w", err)
		}
		s.hostname = []byte(h)
	}
	if len(c.Users) > 0 {
		s.users = make(map[string][]byte, len(c.Users))
		for i, u := range c.Users {
			if u.Username == "" {
				return nil, fmt.Errorf("security: users[%d]: empty username", i)
			}
			if _, dup := s.users[u.Username]; dup {
				return nil, fmt.Errorf("security: users[%d]: duplicate username %q", i, u.Username)
			}
			s.users[u.Username] = []byte(string(u.Password))
		}
	}
	return s, nil
}

// errHandshake is returned when a client fails the handshake; the
// connection is closed after the failure PONG.
var errHandshake = errors.New("handshake failed")

// handshake runs HELO, PING, PONG on a new connection, like Fluentd's
// in_forward: a HELO with a random nonce and a random auth salt (Fluentd
// 1.14 sends one even without user authentication), then the client's PING
// is checked (shape, shared key digest, then user and password if users are
// configured), and a PONG is sent. On failure the PONG is
// ["PONG", false, reason, "", ""] and errHandshake is returned. Bytes the
// client sent after its PING stay buffered for the transport phase.
func (c *conn) handshake() error {
	s := c.in.sec
	var salts [32]byte
	if _, err := io.ReadFull(c.in.rand, salts[:]); err != nil {
		return fmt.Errorf("handshake: random nonce: %w", err)
	}
	nonce, auth := salts[:16], salts[16:]
	c.out = wire.AppendHelo(c.out[:0], wire.Helo{Nonce: nonce, Auth: auth, Keepalive: true})
	if err := c.write(c.out); err != nil {
		return fmt.Errorf("handshake: send HELO: %w", err)
	}

	frame, err := c.readFrame(maxPingBytes)
	if err != nil {
		if errors.Is(err, io.EOF) && c.end == c.start {
			// A heartbeat-style connection that closes after the HELO.
			return err
		}
		if errors.Is(err, io.EOF) {
			c.in.m.handshakeFailures.Inc() // serve ignores EOF; the rest is counted by handshakeFailed
		}
		return fmt.Errorf("handshake: read PING: %w", err)
	}
	ping, _, perr := wire.ReadPing(frame)
	reason := ""
	switch {
	case perr != nil:
		reason = reasonInvalidPing
	case !digestEqual(ping.SharedKeyDigest, wire.SharedKeyDigest(ping.Salt, ping.Hostname, nonce, s.sharedKey)):
		reason = reasonSharedKey
	case s.users != nil:
		pw, found := s.users[string(ping.Username)]
		want := wire.PasswordDigest(auth, ping.Username, pw)
		// Compare even for an unknown user, so timing does not tell.
		if !digestEqual(ping.PasswordDigest, want) || !found {
			reason = reasonUser
		}
	}
	if reason != "" {
		c.in.m.handshakeFailures.Inc()
		c.out = wire.AppendPong(c.out[:0], wire.Pong{OK: false, Reason: []byte(reason)})
		werr := c.write(c.out)
		if ok, n := c.in.handshakeLog.allow(); ok {
			c.log.Warn("forward handshake refused", "reason", reason, "client_hostname", string(ping.Hostname),
				"username", string(ping.Username), "suppressed_since_last_log", n)
		}
		return errors.Join(errHandshake, werr)
	}
	c.start += len(frame)
	c.out = wire.AppendPong(c.out[:0], wire.Pong{
		OK:              true,
		Hostname:        s.hostname,
		SharedKeyDigest: []byte(wire.SharedKeyDigest(ping.Salt, s.hostname, nonce, s.sharedKey)),
	})
	if err := c.write(c.out); err != nil {
		return fmt.Errorf("handshake: send PONG: %w", err)
	}
	return nil
}

// digestEqual compares a received hex digest with the expected one in
// constant time.
func digestEqual(got []byte, want string) bool {
	return subtle.ConstantTimeCompare(got, []byte(want)) == 1
}

package forward

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// readValue reads one complete msgpack value from c.
func readValue(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	one := make([]byte, 1)
	for {
		if n, ok := valueLen(b); ok {
			return b[:n]
		}
		if _, err := c.Read(one); err != nil {
			t.Fatalf("read value (have %x): %v", b, err)
		}
		b = append(b, one[0])
	}
}

func sha512hex(parts ...string) string {
	h := sha512.New()
	for _, p := range parts {
		io.WriteString(h, p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// clientHandshake plays the client side and returns the HELO and PONG.
func clientHandshake(t testing.TB, c net.Conn, host, key, user, pass string) (wire.Helo, wire.Pong) {
	t.Helper()
	helo, _, err := wire.ReadHelo(readValue(t, c))
	if err != nil {
		t.Fatalf("HELO: %v", err)
	}
	salt := "0123456789abcdef"
	ping := wire.Ping{
		Hostname:        []byte(host),
		Salt:            []byte(salt),
		SharedKeyDigest: []byte(sha512hex(salt, host, string(helo.Nonce), key)),
		Username:        []byte(user),
		PasswordDigest:  []byte(sha512hex(string(helo.Auth), user, pass)),
	}
	if _, err := c.Write(wire.AppendPing(nil, ping)); err != nil {
		t.Fatal(err)
	}
	pong, _, err := wire.ReadPong(readValue(t, c))
	if err != nil {
		t.Fatalf("PONG: %v", err)
	}
	if pong.OK {
		if want := sha512hex(salt, string(pong.Hostname), string(helo.Nonce), key); string(pong.SharedKeyDigest) != want {
			t.Fatalf("PONG digest %s, want %s", pong.SharedKeyDigest, want)
		}
	}
	return helo, pong
}

func TestHandshake(t *testing.T) {
	sec := &config.Security{SelfHostname: "srv", SharedKey: "KEY"}
	users := &config.Security{SelfHostname: "srv", SharedKey: "KEY",
		Users: []config.User{{Username: "alice", Password: "pw"}, {Username: "bob", Password: "pw2"}}}
	for _, tc := range []struct {
		name            string
		sec             *config.Security
		key, user, pass string
		ok              bool
		reason          string
	}{
		{"shared key", sec, "KEY", "", "", true, ""},
		{"wrong key", sec, "WRONGKEY", "", "", false, "shared_key mismatch"},
		{"user", users, "KEY", "alice", "pw", true, ""},
		{"second user", users, "KEY", "bob", "pw2", true, ""},
		{"wrong password", users, "KEY", "alice", "WRONGPW", false, "username/password mismatch"},
		{"unknown user", users, "KEY", "mallory", "pw", false, "username/password mismatch"},
		{"wrong key with users", users, "WRONG", "alice", "pw", false, "shared_key mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, config.ForwardInput{Security: tc.sec}, nil)
			c := s.dial(t)
			helo, pong := clientHandshake(t, c, "cli", tc.key, tc.user, tc.pass)
			if len(helo.Nonce) != 16 || len(helo.Auth) != 16 || !helo.Keepalive || !helo.KeepaliveSet {
				t.Fatalf("HELO %+v", helo)
			}
			if pong.OK != tc.ok || string(pong.Reason) != tc.reason {
				t.Fatalf("PONG ok=%v reason %q, want %v %q", pong.OK, pong.Reason, tc.ok, tc.reason)
			}
			if !tc.ok {
				if len(pong.Hostname) != 0 || len(pong.SharedKeyDigest) != 0 {
					t.Fatalf("failure PONG carries %q %q", pong.Hostname, pong.SharedKeyDigest)
				}
				if rest := readAll(t, c); len(rest) != 0 {
					t.Fatalf("data after a failure PONG: %x", rest)
				}
				if n := s.counter(`sluice_input_handshake_failures_total{input="fw"}`); n != 1 {
					t.Fatalf("handshake failures %d", n)
				}
				return
			}
			if string(pong.Hostname) != "srv" {
				t.Fatalf("PONG hostname %q", pong.Hostname)
			}
			c.Write(message("app", 1700000000, rec("log", "x"), "c1"))
			if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
				t.Fatalf("ack %x", got)
			}
		})
	}
}

// TestHandshakeInvalidPing: a PING of the wrong shape, or data sent without
// a handshake (fluent-logger-golang), gets "invalid ping message".
func TestHandshakeInvalidPing(t *testing.T) {
	five := append([]byte{0x95}, msgp.AppendString(nil, "PING")...)
	for range 4 {
		five = msgp.AppendString(five, "x")
	}
	for name, first := range map[string][]byte{
		"five elements": five,
		"message":       message("app", 1700000000, rec("log", "x"), "c1"),
		"not PING":      msgp.AppendString(nil, "PING"),
	} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, config.ForwardInput{Security: &config.Security{SelfHostname: "srv", SharedKey: "KEY"}}, nil)
			c := s.dial(t)
			readValue(t, c) // HELO
			c.Write(first)
			pong, _, err := wire.ReadPong(readValue(t, c))
			if err != nil || pong.OK || string(pong.Reason) != "invalid ping message" {
				t.Fatalf("PONG %+v, %v", pong, err)
			}
			readAll(t, c)
			if n := len(s.q.snapshot()); n != 0 {
				t.Fatalf("%d events stored without a handshake", n)
			}
		})
	}
}

// TestHandshakeVector checks the HELO bytes and both digests against the
// test vector of formats.md 1.5 (nonce and auth salt injected).
func TestHandshakeVector(t *testing.T) {
	seq := func(from byte) []byte {
		b := make([]byte, 16)
		for i := range b {
			b[i] = from + byte(i)
		}
		return b
	}
	in, _ := newInput(t, config.ForwardInput{Security: &config.Security{SelfHostname: "server.example", SharedKey: "secret",
		Users: []config.User{{Username: "alice", Password: "pw"}}}}, &fakeQueue{})
	in.rand = bytes.NewReader(append(seq(0x00), seq(0x20)...))
	cli, _ := pipeConn(t, in)
	heloHex := "92 a4 48454c4f 83 a5 6e6f6e6365 c4 10 000102030405060708090a0b0c0d0e0f " +
		"a4 61757468 c4 10 202122232425262728292a2b2c2d2e2f a9 6b656570616c697665 c3"
	wantHelo, _ := hex.DecodeString(strings.ReplaceAll(heloHex, " ", ""))
	if got := readValue(t, cli); !bytes.Equal(got, wantHelo) {
		t.Fatalf("HELO\n got %x\nwant %x", got, wantHelo)
	}
	ping := wire.Ping{
		Hostname: []byte("client.example"), Salt: seq(0x10),
		SharedKeyDigest: []byte("857119d9b158e9e98506f52db93b7b30e365b9e5450b3d941139613beea0598374f7cd59184c7c24daf70dc11c07cd789c3de9ddde1dc11d10202721b552b5cc"),
		Username:        []byte("alice"),
		PasswordDigest:  []byte("ee6a0d63367d123c6cb68912c6bfb02863109f6d0345d885f2698331a3c3fe3b036b8bc7ae95bb1f89013dcf453c644c1a229a4c108f172474e3e53b1a753efd"),
	}
	cli.Write(wire.AppendPing(nil, ping))
	pong, _, err := wire.ReadPong(readValue(t, cli))
	if err != nil || !pong.OK {
		t.Fatalf("PONG %+v %v", pong, err)
	}
	const want = "f2f7fcfabfe18179e3a29287f012b7c536025c716ac56acb3f0e7a8a075bc169dbcd8c6eaec9450a50aad4fbaf3cc7c100706f095ce5d26164518151d9ca85bf"
	if string(pong.SharedKeyDigest) != want || string(pong.Hostname) != "server.example" {
		t.Fatalf("PONG %s %s", pong.Hostname, pong.SharedKeyDigest)
	}
}

// TestHandshakeHeartbeatConnection: a secured heartbeat connection (HELO,
// then close) is not a failure.
func TestHandshakeHeartbeatConnection(t *testing.T) {
	s := startServer(t, config.ForwardInput{Security: &config.Security{SelfHostname: "srv", SharedKey: "KEY"}}, nil)
	c := s.dial(t)
	readValue(t, c)
	c.Close() // Fluentd's transport heartbeat: connect, HELO, close
	time.Sleep(50 * time.Millisecond)
	if n := s.counter(`sluice_input_handshake_failures_total{input="fw"}`); n != 0 {
		t.Fatalf("a heartbeat connection counted as failure: %d", n)
	}
}

// TestHandshakeInterruptedByShutdown: a client mid-handshake when the input
// stops (CI: Fluentd's heartbeat connection at the SIGTERM) is not a
// failed handshake: nothing counted, nothing logged above DEBUG.
func TestHandshakeInterruptedByShutdown(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	q := &fakeQueue{}
	set := metrics.NewSet()
	in, err := New("fw", config.ForwardInput{Listen: "127.0.0.1:0", Security: &config.Security{SelfHostname: "srv", SharedKey: "KEY"}}, newRouter(t, q), log, set)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, in, q, set)
	c := s.dial(t)
	defer c.Close()
	readValue(t, c) // HELO; no PING follows
	s.stop()
	if n := s.counter(`sluice_input_handshake_failures_total{input="fw"}`); n != 0 {
		t.Errorf("handshake failures %d, want 0", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "handshake failed") {
		t.Errorf("logged: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

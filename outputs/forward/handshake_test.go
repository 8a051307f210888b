package forward

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// fixture is one recorded handshake connection from testdata (copied from
// shared/fixtures/forward; see its README).
type fixture struct {
	helo, pong []byte // server bytes; pong is nil when the server sent none
	ping       []byte // the client's recorded PING bytes
	salt       []byte // the recorded client's PING salt
}

func loadFixture(t *testing.T, name string) fixture {
	t.Helper()
	read := func(suffix string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name+suffix))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type msg struct {
		Offset, Length int
		Kind           string
		Value          json.RawMessage
	}
	var meta struct {
		ClientToServer struct{ Messages []msg } `json:"client_to_server"`
		ServerToClient struct{ Messages []msg } `json:"server_to_client"`
	}
	if err := json.Unmarshal(read(".json"), &meta); err != nil {
		t.Fatal(err)
	}
	srv, cli := read(".server.bin"), read(".client.bin")
	var f fixture
	for _, m := range meta.ServerToClient.Messages {
		switch m.Kind {
		case "HELO":
			f.helo = srv[m.Offset : m.Offset+m.Length]
		case "PONG":
			f.pong = srv[m.Offset : m.Offset+m.Length]
		}
	}
	for _, m := range meta.ClientToServer.Messages {
		if m.Kind != "PING" {
			continue
		}
		f.ping = cli[m.Offset : m.Offset+m.Length]
		var v []json.RawMessage
		if err := json.Unmarshal(m.Value, &v); err != nil || len(v) != 6 {
			t.Fatalf("fixture %s: PING value: %v", name, err)
		}
		var s string
		if json.Unmarshal(v[2], &s) != nil {
			var h struct {
				Hex string `json:"$str_hex"`
			}
			if err := json.Unmarshal(v[2], &h); err != nil {
				t.Fatal(err)
			}
			b, err := hex.DecodeString(h.Hex)
			if err != nil {
				t.Fatal(err)
			}
			s = string(b)
		}
		f.salt = []byte(s)
	}
	if f.helo == nil || f.ping == nil {
		t.Fatalf("fixture %s: no HELO or PING", name)
	}
	return f
}

// TestHandshakeFixtures replays the servers' recorded HELO and PONG bytes
// (Fluentd 1.14.6 and Fluent Bit 5.1.1) to our client, with the recorded
// client's salt injected: our PING must equal the recorded one byte for
// byte, and the recorded PONG must pass (or fail) our checks.
func TestHandshakeFixtures(t *testing.T) {
	tests := []struct {
		name      string
		key       string
		user, pw  string
		keepalive bool
		wantErr   string
	}{
		{name: "fluentd-1.14.6-to-fluentd-1.14.6-sharedkey", key: "KEY", keepalive: true},
		{name: "fluentd-1.14.6-to-fluentd-1.14.6-sharedkey-heartbeat", key: "KEY", keepalive: true},
		{name: "fluentbit-5.1.1-to-fluentd-1.14.6-sharedkey", key: "KEY", keepalive: true},
		{name: "fluentd-1.14.6-to-fluentbit-5.1.1-sharedkey", key: "KEY", keepalive: true}, // HELO without keepalive
		{name: "fluentd-1.14.6-to-fluentd-1.14.6-userauth", key: "KEY", user: "alice", pw: "pw", keepalive: true},
		{name: "fluentbit-5.1.1-to-fluentd-1.14.6-userauth", key: "KEY", user: "alice", pw: "pw", keepalive: true},
		{name: "fluentd-1.14.6-to-fluentbit-5.1.1-userauth", key: "KEY", user: "alice", pw: "pw", keepalive: true},
		{name: "fluentd-1.14.6-to-fluentd-1.14.6-wrongkey", key: "WRONGKEY", wantErr: `rejected by server: "shared_key mismatch"`},
		{name: "fluentbit-5.1.1-to-fluentd-1.14.6-wrongkey", key: "WRONGKEY", wantErr: `rejected by server: "shared_key mismatch"`},
		{name: "fluentd-1.14.6-to-fluentbit-5.1.1-wrongkey", key: "WRONGKEY", wantErr: "closed the connection after PING without a PONG"},
		{name: "fluentd-1.14.6-to-fluentd-1.14.6-userauth-wrongpw", key: "KEY", user: "alice", pw: "WRONGPW", wantErr: `"username/password mismatch"`},
		{name: "fluentbit-5.1.1-to-fluentd-1.14.6-userauth-wrongpw", key: "KEY", user: "alice", pw: "WRONGPW", wantErr: `"username/password mismatch"`},
		{name: "fluentd-1.14.6-to-fluentbit-5.1.1-userauth-wrongpw", key: "KEY", user: "alice", pw: "WRONGPW", wantErr: `"username/password mismatch"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := loadFixture(t, tc.name)
			creds := &credentials{hostname: "cli", salt: f.salt, sharedKey: tc.key, username: tc.user, password: tc.pw}
			ping, keepalive, err := replay(t, f, creds, f.pong)
			if !bytes.Equal(ping, f.ping) {
				t.Errorf("PING differs from the recorded client's:\n got %x\nwant %x", ping, f.ping)
			}
			if tc.wantErr == "" {
				if err != nil || keepalive != tc.keepalive {
					t.Fatalf("handshake: keepalive %v, err %v", keepalive, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("handshake error %v, want %q", err, tc.wantErr)
			}
			for _, secret := range []string{tc.key, tc.pw} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q contains a secret", err)
				}
			}
		})
	}
}

// TestHandshakeRejectsBadServerDigest: a recorded, valid PONG fails our
// check when the server's digest was not computed for our salt, and a PONG
// from a server that uses another key fails too.
func TestHandshakeRejectsBadServerDigest(t *testing.T) {
	f := loadFixture(t, "fluentd-1.14.6-to-fluentd-1.14.6-sharedkey")
	tests := map[string]*credentials{
		"other salt": {hostname: "cli", salt: []byte("00000000000000000000000000000000"), sharedKey: "KEY"},
		"other key":  {hostname: "cli", salt: f.salt, sharedKey: "KEY2"},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := replay(t, f, c, f.pong)
			if err == nil || !strings.Contains(err.Error(), "shared key digest does not match") {
				t.Fatalf("err = %v, want a digest mismatch", err)
			}
		})
	}
}

// replay plays a scripted server on a pipe: the recorded HELO, then reads
// the client's PING, then sends pong (or closes if nil).
func replay(t *testing.T, f fixture, c *credentials, pong []byte) (ping []byte, keepalive bool, err error) {
	t.Helper()
	cli, srv := net.Pipe()
	defer cli.Close()
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	got := make(chan []byte, 1)
	go func() {
		defer srv.Close()
		srv.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := srv.Write(f.helo); err != nil {
			got <- nil
			return
		}
		b := make([]byte, 0, 512)
		for {
			if _, n, err := wire.ReadPing(b); err == nil {
				got <- b[:n]
				break
			} else if !errors.Is(err, wire.ErrShort) {
				got <- b
				return
			}
			var tmp [512]byte
			n, err := srv.Read(tmp[:])
			b = append(b, tmp[:n]...)
			if err != nil {
				got <- b
				return
			}
		}
		if pong != nil {
			srv.Write(pong)
		}
	}()
	var rd msgReader
	rd.reset(cli)
	keepalive, err = handshake(cli, &rd, c)
	return <-got, keepalive, err
}

// TestFixtureServerEndToEnd runs an Output against a scripted server that
// speaks with the recorded Fluentd HELO and PONG, then acks the chunks.
func TestFixtureServerEndToEnd(t *testing.T) {
	f := loadFixture(t, "fluentd-1.14.6-to-fluentd-1.14.6-sharedkey")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		context.AfterFunc(ctx, func() { c.Close() })
		served <- scriptedFluentd(c, f)
	}()
	src := newFakeSource()
	src.addSeq(3, 4)
	cfg := baseConfig(ln.Addr().String())
	cfg.Security = &config.Security{SelfHostname: "cli", SharedKey: "KEY"}
	start(t, cfg, src, func(o *Output) {
		for _, s := range o.servers {
			s.creds.salt = f.salt
		}
	})
	src.waitAcked(t, 10*time.Second)
	cancel()
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

func scriptedFluentd(c net.Conn, f fixture) error {
	if _, err := c.Write(f.helo); err != nil {
		return err
	}
	got := make([]byte, len(f.ping))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, f.ping) {
		return errors.New("PING differs from the recorded one")
	}
	if _, err := c.Write(f.pong); err != nil {
		return err
	}
	var buf []byte
	tmp := make([]byte, 32<<10)
	for {
		req, n, err := wire.ReadRequest(buf, 0)
		if errors.Is(err, wire.ErrShort) {
			k, err := c.Read(tmp)
			if err != nil {
				return err
			}
			buf = append(buf, tmp[:k]...)
			continue
		}
		if err != nil {
			return err
		}
		if req.Mode != wire.ModePackedForward || req.Chunk == nil {
			return errors.New("not an acked PackedForward request")
		}
		if _, err := c.Write(wire.AppendAck(nil, req.Chunk)); err != nil {
			return err
		}
		buf = buf[n:]
	}
}

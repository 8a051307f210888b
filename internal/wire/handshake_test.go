package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func TestHandshakeRoundTrip(t *testing.T) {
	nonce := []byte{0xff, 0x00, 0xc1, 0x80} // not UTF-8
	ping := Ping{
		Hostname:        []byte("cli"),
		Salt:            []byte{0xfe, 0xed},
		SharedKeyDigest: []byte(SharedKeyDigest([]byte{0xfe, 0xed}, []byte("cli"), nonce, []byte("KEY"))),
		Username:        []byte("alice"),
		PasswordDigest:  []byte(PasswordDigest([]byte("auth"), []byte("alice"), []byte("pw"))),
	}
	b := AppendPing(nil, ping)
	got, n, err := ReadPing(append(b, 0x93))
	if err != nil || n != len(b) || !bytes.Equal(got.Hostname, ping.Hostname) || !bytes.Equal(got.Salt, ping.Salt) ||
		!bytes.Equal(got.SharedKeyDigest, ping.SharedKeyDigest) || !bytes.Equal(got.Username, ping.Username) ||
		!bytes.Equal(got.PasswordDigest, ping.PasswordDigest) {
		t.Errorf("ReadPing(AppendPing) = %+v, %d, %v", got, n, err)
	}
	for i := range len(b) {
		if _, _, err := ReadPing(b[:i]); err != ErrShort {
			t.Fatalf("PING prefix %d: %v", i, err)
		}
	}

	for _, pong := range []Pong{
		{OK: true, Hostname: []byte("srv"), SharedKeyDigest: []byte("abc")},
		{OK: false, Reason: []byte("shared_key mismatch")},
	} {
		b := AppendPong(nil, pong)
		got, n, err := ReadPong(b)
		if err != nil || n != len(b) || got.OK != pong.OK || !bytes.Equal(got.Reason, pong.Reason) ||
			!bytes.Equal(got.Hostname, pong.Hostname) || !bytes.Equal(got.SharedKeyDigest, pong.SharedKeyDigest) {
			t.Errorf("ReadPong(AppendPong) = %+v, %d, %v", got, n, err)
		}
	}

	// Fluent Bit's HELO: str nonce and auth, no keepalive.
	fb := msgp.AppendArrayHeader(nil, 2)
	fb = msgp.AppendString(fb, "HELO")
	fb = msgp.AppendMapHeader(fb, 2)
	fb = msgp.AppendString(fb, "nonce")
	fb = msgp.AppendStringFromBytes(fb, nonce)
	fb = msgp.AppendString(fb, "auth")
	fb = msgp.AppendString(fb, "")
	h, n, err := ReadHelo(fb)
	if err != nil || n != len(fb) || !bytes.Equal(h.Nonce, nonce) || len(h.Auth) != 0 || !h.Keepalive || h.KeepaliveSet {
		t.Errorf("ReadHelo(Fluent Bit form) = %+v, %d, %v", h, n, err)
	}
	h, _, err = ReadHelo(AppendHelo(nil, Helo{Nonce: nonce, Keepalive: false}))
	if err != nil || h.Keepalive || !h.KeepaliveSet {
		t.Errorf("keepalive false: %+v %v", h, err)
	}
}

func TestHandshakeErrors(t *testing.T) {
	s := func(v ...string) []byte {
		b := msgp.AppendArrayHeader(nil, uint32(len(v)))
		for _, x := range v {
			b = msgp.AppendString(b, x)
		}
		return b
	}
	pingInt := append(s("PING", "h", "salt", "d", "u"), 0x01)
	pingInt[0] = 0x96 // six elements, the last an int
	tests := map[string]struct {
		read func([]byte) (int, error)
		b    []byte
		err  error
	}{
		"PING 5 elements":  {readPingN, s("PING", "h", "salt", "d", "u"), ErrUnexpected},
		"PING 7 elements":  {readPingN, s("PING", "h", "salt", "d", "u", "p", "x"), ErrUnexpected},
		"PING wrong name":  {readPingN, s("PONG", "h", "salt", "d", "u", "p"), ErrUnexpected},
		"PING int element": {readPingN, pingInt, ErrUnexpected},
		"PING not array":   {readPingN, rec("PING", "x"), ErrUnexpected},
		"PING is request":  {readPingN, arr(str("tag"), []byte{0x01}, rec("a", "b")), ErrUnexpected},
		"PING too large":   {readPingN, []byte{0x96, 0xa4, 'P', 'I', 'N', 'G', mStr32, 0, 1, 0, 0}, ErrTooLarge},
		"PING reserved":    {readPingN, []byte{0x96, 0xc1}, ErrMalformed},
		"HELO no nonce":    {readHeloN, arr(str("HELO"), rec("auth", "")), ErrUnexpected},
		"HELO not map":     {readHeloN, s("HELO", "x"), ErrUnexpected},
		"HELO 3 elements":  {readHeloN, arr(str("HELO"), rec("nonce", "n"), []byte{0x80}), ErrUnexpected},
		"PONG 4 elements":  {readPongN, arr(str("PONG"), []byte{mTrue}, str(""), str("srv")), ErrUnexpected},
		"PONG result str":  {readPongN, s("PONG", "true", "", "srv", "d"), ErrUnexpected},
		"PONG digest int":  {readPongN, arr(str("PONG"), []byte{mTrue}, str(""), str("srv"), []byte{0x01}), ErrUnexpected},
	}
	for name, tc := range tests {
		n, err := tc.read(tc.b)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", name, err, tc.err)
		}
		wantN := 0
		if tc.err == ErrUnexpected {
			wantN = len(tc.b)
		}
		if n != wantN {
			t.Errorf("%s: n %d, want %d", name, n, wantN)
		}
	}
	// A wrong key gives a digest that does not verify.
	nonce, salt := []byte("nonce"), []byte("salt")
	if SharedKeyDigest(salt, []byte("cli"), nonce, []byte("KEY")) == SharedKeyDigest(salt, []byte("cli"), nonce, []byte("WRONGKEY")) {
		t.Error("digest ignores the key")
	}
}

func readPingN(b []byte) (int, error) { _, n, err := ReadPing(b); return n, err }
func readHeloN(b []byte) (int, error) { _, n, err := ReadHelo(b); return n, err }
func readPongN(b []byte) (int, error) { _, n, err := ReadPong(b); return n, err }

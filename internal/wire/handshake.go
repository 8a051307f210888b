package wire

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"

	"github.com/tinylib/msgp/msgp"
)

// maxHandshakeBytes caps one HELO, PING or PONG. Real ones are under 400
// bytes.
const maxHandshakeBytes = 64 << 10

// SharedKeyDigest returns the lowercase hex SHA-512 of salt ‖ hostname ‖
// nonce ‖ sharedKey. A client sends it in PING with its own hostname; the
// server answers in PONG with the client's salt and its own hostname.
func SharedKeyDigest(salt, hostname, nonce, sharedKey []byte) string {
	return hexSHA512(salt, hostname, nonce, sharedKey)
}

// PasswordDigest returns the lowercase hex SHA-512 of authSalt ‖ username ‖
// password, the PING password digest for user authentication (authSalt is
// the HELO "auth").
func PasswordDigest(authSalt, username, password []byte) string {
	return hexSHA512(authSalt, username, password)
}

func hexSHA512(parts ...[]byte) string {
	h := sha512.New()
	for _, p := range parts {
		h.Write(p)
	}
	var sum [sha512.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// Helo is the server's greeting ["HELO", {"nonce", "auth", "keepalive"}].
type Helo struct {
	// Nonce is the random nonce mixed into both shared-key digests.
	Nonce []byte
	// Auth is the salt of the password digest; empty when user
	// authentication is off (Fluentd sends 16 random bytes anyway).
	Auth []byte
	// Keepalive is false when the server closes the connection after each
	// request. ReadHelo sets it to true when the key is absent.
	Keepalive bool
	// KeepaliveSet reports whether ReadHelo found a "keepalive" key
	// (Fluent Bit's in_forward sends none).
	KeepaliveSet bool
}

// AppendHelo appends ["HELO", {"nonce": bin, "auth": bin, "keepalive":
// bool}], the form Fluentd sends; keepalive is always written.
func AppendHelo(dst []byte, h Helo) []byte {
	dst = append(dst, 0x92)
	dst = msgp.AppendString(dst, "HELO")
	dst = msgp.AppendMapHeader(dst, 3)
	dst = msgp.AppendString(dst, "nonce")
	dst = msgp.AppendBytes(dst, h.Nonce)
	dst = msgp.AppendString(dst, "auth")
	dst = msgp.AppendBytes(dst, h.Auth)
	dst = msgp.AppendString(dst, "keepalive")
	return msgp.AppendBool(dst, h.Keepalive)
}

// ReadHelo reads a HELO from the front of b. nonce and auth may be str or
// bin (Fluent Bit sends str holding random bytes); auth and keepalive may be
// missing; unknown keys are ignored. The slices are views into b. Errors are
// as for ParseAck; a value that is not a 2-element array starting with
// "HELO" and holding a map with a nonce gives ErrUnexpected with n set.
func ReadHelo(b []byte) (Helo, int, error) {
	h := Helo{Keepalive: true}
	n, elems, err := readHandshake(b, "HELO", 2, 2)
	if err != nil {
		return h, n, err
	}
	isMap := eachStrKey(elems[1], func(k, val []byte) {
		switch string(k) {
		case "nonce":
			h.Nonce, _, _ = ReadStrBin(val)
		case "auth":
			h.Auth, _, _ = ReadStrBin(val)
		case "keepalive":
			switch val[0] {
			case mTrue:
				h.Keepalive, h.KeepaliveSet = true, true
			case mFalse:
				h.Keepalive, h.KeepaliveSet = false, true
			}
		}
	})
	if !isMap {
		return h, n, fmt.Errorf("%w: HELO options are not a map", ErrUnexpected)
	}
	if h.Nonce == nil {
		return h, n, fmt.Errorf("%w: HELO without a nonce", ErrUnexpected)
	}
	return h, n, nil
}

// Ping is the client's ["PING", hostname, salt, shared key digest, username,
// password digest].
type Ping struct {
	Hostname, Salt, SharedKeyDigest, Username, PasswordDigest []byte
}

// AppendPing appends a PING with every field as a str.
func AppendPing(dst []byte, p Ping) []byte {
	dst = append(dst, 0x96)
	dst = msgp.AppendString(dst, "PING")
	for _, f := range [...][]byte{p.Hostname, p.Salt, p.SharedKeyDigest, p.Username, p.PasswordDigest} {
		dst = msgp.AppendStringFromBytes(dst, f)
	}
	return dst
}

// ReadPing reads a PING from the front of b. It must be an array of exactly
// 6 elements whose first is "PING" and whose others are str or bin (Fluent
// Bit's salt is random bytes in a str); anything else gives ErrUnexpected
// with n set, for which Fluentd answers "invalid ping message". The slices
// are views into b. Other errors are as for ParseAck.
func ReadPing(b []byte) (Ping, int, error) {
	var p Ping
	n, elems, err := readHandshake(b, "PING", 6, 6)
	if err != nil {
		return p, n, err
	}
	dst := [...]*[]byte{&p.Hostname, &p.Salt, &p.SharedKeyDigest, &p.Username, &p.PasswordDigest}
	for i, d := range dst {
		v, _, ok := ReadStrBin(elems[i+1])
		if !ok {
			return Ping{}, n, fmt.Errorf("%w: PING element %d is a %s", ErrUnexpected, i+1, typeName(elems[i+1][0]))
		}
		*d = v
	}
	return p, n, nil
}

// Pong is the server's ["PONG", ok, reason, hostname, shared key digest].
type Pong struct {
	OK                                bool
	Reason, Hostname, SharedKeyDigest []byte
}

// AppendPong appends a PONG with the strings as str. On failure Fluentd
// sends an empty hostname and digest.
func AppendPong(dst []byte, p Pong) []byte {
	dst = append(dst, 0x95)
	dst = msgp.AppendString(dst, "PONG")
	dst = msgp.AppendBool(dst, p.OK)
	dst = msgp.AppendStringFromBytes(dst, p.Reason)
	dst = msgp.AppendStringFromBytes(dst, p.Hostname)
	return msgp.AppendStringFromBytes(dst, p.SharedKeyDigest)
}

// ReadPong reads a PONG from the front of b: an array of exactly 5 elements,
// "PONG", a bool, then three str or bin. The slices are views into b. Errors
// are as for ReadPing.
func ReadPong(b []byte) (Pong, int, error) {
	var p Pong
	n, elems, err := readHandshake(b, "PONG", 5, 5)
	if err != nil {
		return p, n, err
	}
	switch elems[1][0] {
	case mTrue:
		p.OK = true
	case mFalse:
	default:
		return p, n, fmt.Errorf("%w: PONG auth result is a %s", ErrUnexpected, typeName(elems[1][0]))
	}
	dst := [...]*[]byte{&p.Reason, &p.Hostname, &p.SharedKeyDigest}
	for i, d := range dst {
		v, _, ok := ReadStrBin(elems[i+2])
		if !ok {
			return Pong{}, n, fmt.Errorf("%w: PONG element %d is a %s", ErrUnexpected, i+2, typeName(elems[i+2][0]))
		}
		*d = v
	}
	return p, n, nil
}

// readHandshake reads a complete array of min..max elements whose first
// element is the str or bin name, and returns its length and the elements.
func readHandshake(b []byte, name string, minElems, maxElems int) (n int, elems [6][]byte, err error) {
	n, err = readValue(b, maxHandshakeBytes, name)
	if err != nil {
		return 0, elems, err
	}
	cnt, rest, ok := readArrayHeader(b[:n])
	if !ok {
		return n, elems, fmt.Errorf("%w: expected %s, got a %s", ErrUnexpected, name, typeName(b[0]))
	}
	if cnt < minElems || cnt > maxElems {
		return n, elems, fmt.Errorf("%w: %s with %d elements", ErrUnexpected, name, cnt)
	}
	for i := range cnt {
		l, _ := valueLen(rest, 0)
		elems[i] = rest[:l:l]
		rest = rest[l:]
	}
	if v, _, ok := ReadStrBin(elems[0]); !ok || string(v) != name {
		return n, elems, fmt.Errorf("%w: expected %s", ErrUnexpected, name)
	}
	return n, elems, nil
}

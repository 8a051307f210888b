package wire

import (
	"bytes"
	"testing"
)

// Byte vectors from formats.md §1.9 (produced by fluent-logger-golang +
// tinylib/msgp) and §1.5 (handshake test vector).

const (
	vecSec  = 1700000000
	vecNsec = 123456789
	vecNs   = vecSec*1e9 + vecNsec

	vecEntryStream = `92 d7 00 6553f100 00000000 81 a3 6c6f67 a1 61
	                  92 d7 00 6553f101 1dcd6500 81 a3 6c6f67 a1 62`
)

func TestVectorsDecode(t *testing.T) {
	logHi := unhex(t, "81 a3 6c6f67 a2 6869")
	logA := unhex(t, "81 a3 6c6f67 a1 61")
	logB := unhex(t, "81 a3 6c6f67 a1 62")
	chunk := []byte("AAAAAAAAAAAAAAAAAAAAAA==")
	tests := map[string]struct {
		hex        string
		mode       Mode
		chunk      []byte
		hasOption  bool
		size       int
		wantEvents []event
	}{
		"message int time": {
			hex:  "94 a3 617070 d2 6553f100 81 a3 6c6f67 a2 6869 80",
			mode: ModeMessage, hasOption: true, size: -1,
			wantEvents: []event{{vecSec * 1e9, logHi}},
		},
		"message EventTime": {
			hex:  "94 a3 617070 d7 00 6553f100 075bcd15 81 a3 6c6f67 a2 6869 80",
			mode: ModeMessage, hasOption: true, size: -1,
			wantEvents: []event{{vecNs, logHi}},
		},
		"message EventTime with ack": {
			hex: `94 a3 617070 d7 00 6553f100 075bcd15 81 a3 6c6f67 a2 6869
			      81 a5 6368756e6b b8 414141414141414141414141414141414141414141413d3d`,
			mode: ModeMessage, chunk: chunk, hasOption: true, size: -1,
			wantEvents: []event{{vecNs, logHi}},
		},
		"packed forward": {
			hex:  "93 a3 617070 c4 24 " + vecEntryStream + " 81 a4 73697a65 02",
			mode: ModePackedForward, hasOption: true, size: 2,
			wantEvents: []event{{vecSec * 1e9, logA}, {(vecSec+1)*1e9 + 5e8, logB}},
		},
		"forward": {
			hex:  "92 a3 617070 92 " + vecEntryStream,
			mode: ModeForward, size: -1,
			wantEvents: []event{{vecSec * 1e9, logA}, {(vecSec+1)*1e9 + 5e8, logB}},
		},
		"forward with Fluent Bit v2 entry": {
			hex:  "92 a3 617070 91 92 92 d7 00 6553f100 00000000 80 81 a3 6c6f67 a1 61",
			mode: ModeForward, size: -1,
			wantEvents: []event{{vecSec * 1e9, logA}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := unhex(t, tc.hex)
			req, n, err := ReadRequest(b, 0)
			if err != nil || n != len(b) {
				t.Fatalf("ReadRequest = n %d, err %v; want n %d", n, err, len(b))
			}
			if req.Mode != tc.mode || string(req.Tag) != "app" || !bytes.Equal(req.Chunk, tc.chunk) ||
				req.HasOption != tc.hasOption || req.Size != tc.size {
				t.Fatalf("got mode %v tag %q chunk %q option %v size %d", req.Mode, req.Tag, req.Chunk, req.HasOption, req.Size)
			}
			evs, invalid, err := collect(t, &req, 0)
			if err != nil || invalid != 0 {
				t.Fatalf("Events: invalid %d, err %v", invalid, err)
			}
			if len(evs) != len(tc.wantEvents) {
				t.Fatalf("got %d events, want %d", len(evs), len(tc.wantEvents))
			}
			for i, ev := range evs {
				if ev.ns != tc.wantEvents[i].ns || !bytes.Equal(ev.record, tc.wantEvents[i].record) {
					t.Errorf("event %d = %d %x, want %d %x", i, ev.ns, ev.record, tc.wantEvents[i].ns, tc.wantEvents[i].record)
				}
			}
		})
	}
}

func TestVectorsEncode(t *testing.T) {
	logA := unhex(t, "81 a3 6c6f67 a1 61")
	logB := unhex(t, "81 a3 6c6f67 a1 62")
	stream := AppendEntry(nil, vecSec*1e9, logA)
	stream = AppendEntry(stream, (vecSec+1)*1e9+5e8, logB)
	tests := map[string]struct {
		got, want []byte
	}{
		"EventTime":    {AppendEventTime(nil, vecNs), unhex(t, "d7 00 6553f100 075bcd15")},
		"entry stream": {stream, unhex(t, vecEntryStream)},
		"packed forward": {
			AppendPackedForward(nil, []byte("app"), stream, Options{Size: 2}),
			unhex(t, "93 a3 617070 c4 24 "+vecEntryStream+" 81 a4 73697a65 02"),
		},
		"ack": {
			AppendAck(nil, []byte("AAAAAAAAAAAAAAAAAAAAAA==")),
			unhex(t, "81 a3 61636b b8 414141414141414141414141414141414141414141413d3d"),
		},
		"ack with Fluentd newline": {
			AppendAck(nil, []byte("p8n9gmxTQVC8/nh2wlKKeQ==\n")),
			append(unhex(t, "81 a3 61636b b9"), "p8n9gmxTQVC8/nh2wlKKeQ==\n"...),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if !bytes.Equal(tc.got, tc.want) {
				t.Errorf("got  % x\nwant % x", tc.got, tc.want)
			}
		})
	}
}

func TestHandshakeVector(t *testing.T) {
	seq := func(from byte) []byte {
		b := make([]byte, 16)
		for i := range b {
			b[i] = from + byte(i)
		}
		return b
	}
	nonce, salt, auth := seq(0x00), seq(0x10), seq(0x20)
	key := []byte("secret")
	tests := map[string]struct{ got, want string }{
		"PING shared key digest": {
			SharedKeyDigest(salt, []byte("client.example"), nonce, key),
			"857119d9b158e9e98506f52db93b7b30e365b9e5450b3d941139613beea0598374f7cd59184c7c24daf70dc11c07cd789c3de9ddde1dc11d10202721b552b5cc",
		},
		"PONG shared key digest": {
			SharedKeyDigest(salt, []byte("server.example"), nonce, key),
			"f2f7fcfabfe18179e3a29287f012b7c536025c716ac56acb3f0e7a8a075bc169dbcd8c6eaec9450a50aad4fbaf3cc7c100706f095ce5d26164518151d9ca85bf",
		},
		"PING password digest": {
			PasswordDigest(auth, []byte("alice"), []byte("pw")),
			"ee6a0d63367d123c6cb68912c6bfb02863109f6d0345d885f2698331a3c3fe3b036b8bc7ae95bb1f89013dcf453c644c1a229a4c108f172474e3e53b1a753efd",
		},
	}
	for name, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", name, tc.got, tc.want)
		}
	}

	wantHelo := unhex(t, `92 a4 48454c4f 83 a5 6e6f6e6365 c4 10 000102030405060708090a0b0c0d0e0f
		a4 61757468 c4 10 202122232425262728292a2b2c2d2e2f a9 6b656570616c697665 c3`)
	if got := AppendHelo(nil, Helo{Nonce: nonce, Auth: auth, Keepalive: true}); !bytes.Equal(got, wantHelo) {
		t.Errorf("AppendHelo = % x\nwant % x", got, wantHelo)
	}
	h, n, err := ReadHelo(wantHelo)
	if err != nil || n != len(wantHelo) || !bytes.Equal(h.Nonce, nonce) || !bytes.Equal(h.Auth, auth) || !h.Keepalive || !h.KeepaliveSet {
		t.Errorf("ReadHelo = %+v, %d, %v", h, n, err)
	}
}

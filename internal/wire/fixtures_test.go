package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// The fixtures are byte-exact Forward connections recorded between Fluent
// Bit 5.1.1, Fluentd 1.14.6 and a sink (see testdata/forward/README.md).
// testdata/forward is a copy of the shared fixtures, so the tests run from
// any checkout; TestFixtureCopiesMatchShared checks the copy when the shared
// directory is present.

const fixtureDir = "testdata/forward"

// sharedFixtureDir is <repo root>/../shared/fixtures/forward.
var sharedFixtureDir = filepath.Join("..", "..", "..", "shared", "fixtures", "forward")

type fixture struct {
	Name       string       `json:"name"`
	ServerPeer string       `json:"server_peer"`
	C2S        fixtureSide  `json:"client_to_server"`
	S2C        fixtureSide  `json:"server_to_client"`
	Summary    fixtureSumry `json:"summary"`
}

type fixtureSide struct {
	File     string       `json:"file"`
	Bytes    int          `json:"bytes"`
	Messages []fixtureMsg `json:"messages"`
}

type fixtureSumry struct {
	Acks     []string `json:"acks"`
	ChunkIDs []string `json:"chunk_ids"`
	Events   int      `json:"events"`
	Requests int      `json:"requests"`
}

type fixtureMsg struct {
	Offset        int                        `json:"offset"`
	Length        int                        `json:"length"`
	Kind          string                     `json:"kind"`
	Mode          string                     `json:"mode"`
	Tag           string                     `json:"tag"`
	Option        map[string]json.RawMessage `json:"option"`
	OptionPresent bool                       `json:"option_present"`
	Events        []fixtureEvent             `json:"events"`
	Value         json.RawMessage            `json:"value"`
	Checks        map[string]json.RawMessage `json:"checks"`
	Gzip          *struct {
		Members           int `json:"members"`
		DecompressedBytes int `json:"decompressed_bytes"`
	} `json:"gzip"`
}

type fixtureEvent struct {
	Time struct {
		Sec    int64  `json:"sec"`
		Nsec   int64  `json:"nsec"`
		Format string `json:"format"`
	} `json:"time"`
	Record    json.RawMessage `json:"record"`
	EntryForm string          `json:"entry_form"`
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixtureDir, err)
	}
	var fs []fixture
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f fixture
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		fs = append(fs, f)
	}
	return fs
}

func readFixtureFile(t *testing.T, name string, size int) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != size {
		t.Fatalf("%s: %d bytes, JSON says %d", name, len(b), size)
	}
	return b
}

func TestFixtureCopiesMatchShared(t *testing.T) {
	shared, err := filepath.Glob(filepath.Join(sharedFixtureDir, "*"))
	if err != nil || len(shared) == 0 {
		t.Skipf("shared fixtures not found at %s", sharedFixtureDir)
	}
	for _, p := range shared {
		if !strings.HasSuffix(p, ".bin") && !strings.HasSuffix(p, ".json") {
			continue
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(fixtureDir, filepath.Base(p)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: testdata copy missing or different (%v)", filepath.Base(p), err)
		}
	}
}

var (
	sharedKeyCheck = regexp.MustCompile(`^shared_key_hexdigest_matches shared_key="(.*)"$`)
	serverKeyCheck = regexp.MustCompile(`^server_hexdigest_matches shared_key="(.*)"$`)
	passwordCheck  = regexp.MustCompile(`^password_hexdigest_matches username="(.*)" password="(.*)"$`)
)

// TestFixtures replays every recorded connection: the client stream through
// ReadPing/ReadRequest/Events, the server stream through ReadHelo/ReadPong/
// ParseAck, comparing with the decoded JSON and re-encoding byte-exact where
// our encoder makes the same choices as the peer.
func TestFixtures(t *testing.T) {
	fixtures := loadFixtures(t)
	if len(fixtures) != 28 {
		t.Errorf("found %d fixtures, want 28", len(fixtures))
	}
	for _, f := range fixtures {
		t.Run(f.Name, func(t *testing.T) {
			client := readFixtureFile(t, f.C2S.File, f.C2S.Bytes)
			server := readFixtureFile(t, f.S2C.File, f.S2C.Bytes)

			// Server side first: the HELO nonce is needed to check the PING.
			var helo Helo
			var pong Pong
			var acks []string
			off := 0
			for _, m := range f.S2C.Messages {
				if m.Offset != off {
					t.Fatalf("server message at %d, expected %d", m.Offset, off)
				}
				raw := server[off : off+m.Length]
				var n int
				var err error
				switch m.Kind {
				case "HELO":
					helo, n, err = ReadHelo(server[off:])
					checkHelo(t, helo, m)
					if helo.KeepaliveSet { // Fluentd's form, which AppendHelo writes
						if got := AppendHelo(nil, helo); !bytes.Equal(got, raw) {
							t.Errorf("AppendHelo = % x\nrecorded     % x", got, raw)
						}
					}
				case "PONG":
					pong, n, err = ReadPong(server[off:])
					if got := AppendPong(nil, pong); !bytes.Equal(got, raw) {
						t.Errorf("AppendPong = % x\nrecorded     % x", got, raw)
					}
				case "ack":
					var chunk []byte
					chunk, n, err = ParseAck(server[off:])
					acks = append(acks, string(chunk))
					if got := AppendAck(nil, chunk); !bytes.Equal(got, raw) {
						t.Errorf("AppendAck = % x\nrecorded    % x", got, raw)
					}
				default:
					t.Fatalf("unknown server message kind %q", m.Kind)
				}
				if err != nil || n != m.Length {
					t.Fatalf("%s at %d: n %d err %v, want n %d", m.Kind, off, n, err, m.Length)
				}
				off += n
			}
			if off != len(server) {
				t.Errorf("server stream: %d trailing bytes", len(server)-off)
			}
			if fmt.Sprint(acks) != fmt.Sprint(nonNil(f.Summary.Acks)) {
				t.Errorf("acks %q, want %q", acks, f.Summary.Acks)
			}

			// Client side.
			var ping Ping
			var chunks []string
			requests, events := 0, 0
			off = 0
			for _, m := range f.C2S.Messages {
				if m.Offset != off {
					t.Fatalf("client message at %d, expected %d", m.Offset, off)
				}
				raw := client[off : off+m.Length]
				switch m.Kind {
				case "PING":
					var n int
					var err error
					ping, n, err = ReadPing(client[off:])
					if err != nil || n != m.Length {
						t.Fatalf("PING: n %d err %v", n, err)
					}
					if got := AppendPing(nil, ping); !bytes.Equal(got, raw) {
						t.Errorf("AppendPing = % x\nrecorded     % x", got, raw)
					}
					checkPing(t, ping, m)
					checkDigests(t, helo, ping, pong, m, f.S2C.Messages)
				case "request":
					req := checkRequest(t, raw, m)
					requests++
					events += len(m.Events)
					if req.Chunk != nil {
						chunks = append(chunks, string(req.Chunk))
					}
				default:
					t.Fatalf("unknown client message kind %q", m.Kind)
				}
				off += m.Length
			}
			if off != len(client) {
				t.Errorf("client stream: %d trailing bytes", len(client)-off)
			}
			if requests != f.Summary.Requests || events != f.Summary.Events {
				t.Errorf("%d requests, %d events; summary says %d, %d", requests, events, f.Summary.Requests, f.Summary.Events)
			}
			if fmt.Sprint(chunks) != fmt.Sprint(nonNil(f.Summary.ChunkIDs)) {
				t.Errorf("chunks %q, want %q", chunks, f.Summary.ChunkIDs)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkRequest decodes one recorded request: every prefix is ErrShort, the
// whole is one request matching the JSON, and its events match.
func checkRequest(t *testing.T, raw []byte, m fixtureMsg) Request {
	t.Helper()
	for i := range len(raw) {
		if _, _, err := ReadRequest(raw[:i], 0); err != ErrShort {
			t.Fatalf("request prefix %d/%d: %v, want ErrShort", i, len(raw), err)
		}
	}
	// Followed by more bytes, as on a stream.
	req, n, err := ReadRequest(append(bytes.Clone(raw), 0xc0, 0x93), 0)
	if err != nil || n != len(raw) {
		t.Fatalf("request: n %d err %v, want n %d", n, err, len(raw))
	}
	if req.Mode.String() != m.Mode || string(req.Tag) != m.Tag || req.HasOption != m.OptionPresent {
		t.Errorf("request: mode %v tag %q option %v; want %s %q %v", req.Mode, req.Tag, req.HasOption, m.Mode, m.Tag, m.OptionPresent)
	}
	wantChunk, wantCompressed, wantSize := "", "", -1
	if v, ok := m.Option["chunk"]; ok {
		mustJSON(t, v, &wantChunk)
		if req.Chunk == nil {
			t.Errorf("option chunk missing")
		}
	} else if req.Chunk != nil {
		t.Errorf("chunk %q not in the recording", req.Chunk)
	}
	if v, ok := m.Option["compressed"]; ok {
		mustJSON(t, v, &wantCompressed)
	}
	if v, ok := m.Option["size"]; ok {
		mustJSON(t, v, &wantSize)
	}
	if string(req.Chunk) != wantChunk || req.Compressed != wantCompressed || req.Size != wantSize {
		t.Errorf("options: chunk %q compressed %q size %d; want %q %q %d", req.Chunk, req.Compressed, req.Size, wantChunk, wantCompressed, wantSize)
	}

	i := 0
	scratch, invalid, err := req.Events(nil, 0, func(ns int64, rec []byte) error {
		if i >= len(m.Events) {
			return fmt.Errorf("more events than the %d recorded", len(m.Events))
		}
		ev := m.Events[i]
		if want := ev.Time.Sec*1e9 + ev.Time.Nsec; ns != want {
			t.Errorf("event %d: time %d, want %d (%s)", i, ns, want, ev.Time.Format)
		}
		if err := matchJSON(decodeOrdered(t, ev.Record), rec); err != nil {
			t.Errorf("event %d record: %v", i, err)
		}
		i++
		return nil
	})
	if err != nil || invalid != 0 || i != len(m.Events) {
		t.Errorf("Events: %d of %d events, invalid %d, err %v", i, len(m.Events), invalid, err)
	}
	if m.Gzip != nil && len(scratch) != m.Gzip.DecompressedBytes {
		t.Errorf("decompressed %d bytes, want %d", len(scratch), m.Gzip.DecompressedBytes)
	}
	return req
}

func checkHelo(t *testing.T, h Helo, m fixtureMsg) {
	t.Helper()
	var v []json.RawMessage
	mustJSON(t, m.Value, &v)
	opts := decodeOrdered(t, v[1]).(*omap)
	for _, k := range opts.keys {
		var got any
		switch k {
		case "nonce":
			got = h.Nonce
		case "auth":
			got = h.Auth
		case "keepalive":
			got = h.Keepalive
			if !h.KeepaliveSet {
				t.Errorf("keepalive present but not KeepaliveSet")
			}
		default:
			continue
		}
		if err := matchGo(opts.vals[k], got); err != nil {
			t.Errorf("HELO %s: %v", k, err)
		}
	}
	if _, ok := opts.vals["keepalive"]; !ok && (h.KeepaliveSet || !h.Keepalive) {
		t.Errorf("HELO without keepalive: got set=%v keepalive=%v, want unset and true", h.KeepaliveSet, h.Keepalive)
	}
}

func checkPing(t *testing.T, p Ping, m fixtureMsg) {
	t.Helper()
	var v []json.RawMessage
	mustJSON(t, m.Value, &v)
	if len(v) != 6 {
		t.Fatalf("recorded PING has %d elements", len(v))
	}
	for i, got := range [][]byte{p.Hostname, p.Salt, p.SharedKeyDigest, p.Username, p.PasswordDigest} {
		if err := matchGo(decodeOrdered(t, v[i+1]), got); err != nil {
			t.Errorf("PING element %d: %v", i+1, err)
		}
	}
	if string(p.Hostname) != "cli" {
		t.Errorf("PING hostname %q, want cli", p.Hostname)
	}
}

// checkDigests recomputes every digest check of the recording with
// SharedKeyDigest and PasswordDigest.
func checkDigests(t *testing.T, helo Helo, ping Ping, pong Pong, pingMsg fixtureMsg, serverMsgs []fixtureMsg) {
	t.Helper()
	if helo.Nonce == nil {
		t.Fatal("PING without a recorded HELO")
	}
	checks := map[string]json.RawMessage{}
	for k, v := range pingMsg.Checks {
		checks[k] = v
	}
	hasPong := false
	for _, m := range serverMsgs {
		if m.Kind == "PONG" {
			hasPong = true
			for k, v := range m.Checks {
				checks[k] = v
			}
		}
	}
	n := 0
	for k, v := range checks {
		var want bool
		if sm := sharedKeyCheck.FindStringSubmatch(k); sm != nil {
			mustJSON(t, v, &want)
			got := SharedKeyDigest(ping.Salt, ping.Hostname, helo.Nonce, []byte(sm[1])) == string(ping.SharedKeyDigest)
			if got != want {
				t.Errorf("%s: recomputed %v, recorded %v", k, got, want)
			}
			n++
		} else if sm := serverKeyCheck.FindStringSubmatch(k); sm != nil {
			mustJSON(t, v, &want)
			got := SharedKeyDigest(ping.Salt, []byte("srv"), helo.Nonce, []byte(sm[1])) == string(pong.SharedKeyDigest)
			if got != want {
				t.Errorf("%s: recomputed %v, recorded %v", k, got, want)
			}
			n++
		} else if sm := passwordCheck.FindStringSubmatch(k); sm != nil {
			mustJSON(t, v, &want)
			got := PasswordDigest(helo.Auth, []byte(sm[1]), []byte(sm[2])) == string(ping.PasswordDigest)
			if got != want {
				t.Errorf("%s: recomputed %v, recorded %v", k, got, want)
			}
			if want && string(ping.Username) != sm[1] {
				t.Errorf("PING username %q, want %q", ping.Username, sm[1])
			}
			n++
		}
	}
	if n < 2 {
		t.Errorf("only %d digest checks found", n)
	}
	if hasPong && pong.OK {
		if string(pong.Hostname) != "srv" || len(pong.Reason) != 0 ||
			SharedKeyDigest(ping.Salt, pong.Hostname, helo.Nonce, []byte("KEY")) != string(pong.SharedKeyDigest) {
			t.Errorf("successful PONG %q/%q does not verify with KEY", pong.Hostname, pong.Reason)
		}
	}
	if hasPong && !pong.OK && (len(pong.Reason) == 0 || len(pong.Hostname) != 0) {
		t.Errorf("failed PONG: reason %q hostname %q", pong.Reason, pong.Hostname)
	}
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("fixture JSON %s: %v", raw, err)
	}
}

// omap is a JSON object with its key order.
type omap struct {
	keys []string
	vals map[string]any
}

// hexBytes is a fixture's {"$str_hex": ...} or {"$bin_hex": ...}.
type hexBytes struct {
	bin bool
	b   []byte
}

// decodeOrdered decodes JSON keeping object key order and numbers as
// json.Number, and turns the fixture's $str_hex/$bin_hex objects into
// hexBytes.
func decodeOrdered(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		m := &omap{vals: map[string]any{}}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			m.keys = append(m.keys, k.(string))
			m.vals[k.(string)] = v
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		if len(m.keys) == 1 && (m.keys[0] == "$str_hex" || m.keys[0] == "$bin_hex") {
			b, err := hex.DecodeString(m.vals[m.keys[0]].(string))
			return hexBytes{bin: m.keys[0] == "$bin_hex", b: b}, err
		}
		return m, nil
	case json.Delim('['):
		var a []any
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return tok, nil
}

// matchJSON compares a decoded fixture value with a msgpack value, walking
// maps in wire order so key order is checked too. Scalars are decoded with
// msgp.ReadIntfBytes.
func matchJSON(want any, raw []byte) error {
	rest, err := matchJSONRest(want, raw)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d trailing bytes", len(rest))
	}
	return err
}

func matchJSONRest(want any, raw []byte) ([]byte, error) {
	switch w := want.(type) {
	case *omap:
		n, rest, err := msgp.ReadMapHeaderBytes(raw)
		if err != nil {
			return nil, err
		}
		if int(n) != len(w.keys) {
			return nil, fmt.Errorf("map of %d keys, want %d", n, len(w.keys))
		}
		for _, k := range w.keys {
			var key []byte
			if key, rest, err = msgp.ReadMapKeyZC(rest); err != nil {
				return nil, err
			}
			if string(key) != k {
				return nil, fmt.Errorf("key %q, want %q (order)", key, k)
			}
			if rest, err = matchJSONRest(w.vals[k], rest); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
		return rest, nil
	case []any:
		n, rest, err := msgp.ReadArrayHeaderBytes(raw)
		if err != nil {
			return nil, err
		}
		if int(n) != len(w) {
			return nil, fmt.Errorf("array of %d, want %d", n, len(w))
		}
		for i := range w {
			if rest, err = matchJSONRest(w[i], rest); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return rest, nil
	}
	got, rest, err := msgp.ReadIntfBytes(raw)
	if err != nil {
		return nil, err
	}
	return rest, matchGo(want, got)
}

// matchGo compares a decoded fixture scalar with a Go value from msgp or
// from our decoder.
func matchGo(want, got any) error {
	bad := fmt.Errorf("got %#v, want %#v", got, want)
	switch w := want.(type) {
	case nil:
		if got != nil {
			return bad
		}
	case bool:
		if g, ok := got.(bool); !ok || g != w {
			return bad
		}
	case string:
		switch g := got.(type) {
		case string:
			if g != w {
				return bad
			}
		case []byte:
			if string(g) != w {
				return bad
			}
		default:
			return bad
		}
	case hexBytes:
		var g []byte
		switch v := got.(type) {
		case string:
			if w.bin {
				return bad
			}
			g = []byte(v)
		case []byte:
			g = v
		default:
			return bad
		}
		if !bytes.Equal(g, w.b) {
			return bad
		}
	case json.Number:
		s := w.String()
		if strings.ContainsAny(s, ".eE") {
			wf, _ := w.Float64()
			var gf float64
			switch g := got.(type) {
			case float64:
				gf = g
			case float32:
				gf = float64(g)
			default:
				return bad
			}
			if gf != wf {
				return bad
			}
			return nil
		}
		wi, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return bad
		}
		var gi *big.Int
		switch g := got.(type) {
		case int64:
			gi = big.NewInt(g)
		case uint64:
			gi = new(big.Int).SetUint64(g)
		default:
			return bad
		}
		if gi.Cmp(wi) != 0 {
			return bad
		}
	default:
		return errors.New("unsupported fixture value")
	}
	return nil
}

package forward

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// fixture is the part of a fixture's JSON the replay needs.
type fixture struct {
	Name           string `json:"name"`
	ServerPeer     string `json:"server_peer"`
	ClientToServer struct {
		Messages []struct {
			Kind   string `json:"kind"`
			Tag    string `json:"tag"`
			Option struct {
				Chunk string `json:"chunk"`
			} `json:"option"`
			Events []struct {
				Time struct {
					Sec  int64 `json:"sec"`
					Nsec int64 `json:"nsec"`
				} `json:"time"`
				Record map[string]any `json:"record"`
			} `json:"events"`
		} `json:"messages"`
	} `json:"client_to_server"`
}

const fixtureDir = "testdata/forward"

func loadFixture(t *testing.T, name string) (fx fixture, client, server []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtureDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fx); err != nil {
		t.Fatal(err)
	}
	if client, err = os.ReadFile(filepath.Join(fixtureDir, name+".client.bin")); err != nil {
		t.Fatal(err)
	}
	if server, err = os.ReadFile(filepath.Join(fixtureDir, name+".server.bin")); err != nil {
		t.Fatal(err)
	}
	return fx, client, server
}

// TestFixtureReplay plays every recorded client transcript against the
// input and checks what it answers against what the recorded real server
// answered, and what it stores against the decoded events.
//
// Handshake fixtures: the recorded HELO's nonce and auth salt are injected
// as the input's random bytes, so the recorded PING digests verify and the
// whole answer can be compared. Against a Fluentd 1.14.6 server (and the
// ack-only sink) the answer must be byte-identical, HELO and PONG included.
// Fluent Bit's in_forward encodes its HELO differently (str nonce, no
// keepalive): there our HELO must carry the same nonce and auth, and the
// bytes after the HELO (PONG, acks) must be identical, except that on a
// wrong key Fluent Bit closes without a PONG while we answer as Fluentd
// does. Fluentd 1.14.6 itself resets on Fluent Bit's default
// [[time, meta], record] entries ("default-rejected"); we accept and ack
// them, as the sink does.
func TestFixtureReplay(t *testing.T) {
	names, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil || len(names) < 28 {
		t.Fatalf("fixtures: %d, %v", len(names), err)
	}
	for _, path := range names {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			fx, client, server := loadFixture(t, name)
			secured := strings.Contains(name, "sharedkey") || strings.Contains(name, "wrongkey") || strings.Contains(name, "userauth")
			refused := strings.Contains(name, "wrongkey") || strings.Contains(name, "wrongpw")
			fluentBitServer := strings.HasPrefix(fx.ServerPeer, "Fluent Bit")

			cfg := config.ForwardInput{Listen: "127.0.0.1:0"}
			var recHelo wire.Helo
			var recHeloLen int
			if secured {
				cfg.Security = &config.Security{SelfHostname: "srv", SharedKey: "KEY"}
				if strings.Contains(name, "userauth") {
					cfg.Security.Users = []config.User{{Username: "alice", Password: "pw"}}
				}
				recHelo, recHeloLen, err = wire.ReadHelo(server)
				if err != nil || len(recHelo.Nonce) != 16 || len(recHelo.Auth) != 16 {
					t.Fatalf("recorded HELO: %+v %v", recHelo, err)
				}
			}
			q := &fakeQueue{}
			in, set := newInput(t, cfg, q)
			if secured {
				in.rand = bytes.NewReader(append(bytes.Clone(recHelo.Nonce), recHelo.Auth...))
			}
			s := runServer(t, in, q, set)
			c := s.dial(t)
			if _, err := c.Write(client); err != nil && !refused {
				t.Fatal(err)
			}
			c.(*net.TCPConn).CloseWrite()
			got := readAll(t, c)
			s.stop()

			// The answer.
			switch {
			case strings.HasSuffix(name, "default-rejected"):
				want := ack(fx.ClientToServer.Messages[0].Option.Chunk)
				if !bytes.Equal(got, want) {
					t.Errorf("answer %x, want the ack %x", got, want)
				}
			case !fluentBitServer:
				if !bytes.Equal(got, server) {
					t.Errorf("answer differs from the recorded server\n got %x\nwant %x", got, server)
				}
			default:
				rest, wantRest := got, server
				if secured {
					helo, n, err := wire.ReadHelo(got)
					if err != nil || !bytes.Equal(helo.Nonce, recHelo.Nonce) || !bytes.Equal(helo.Auth, recHelo.Auth) {
						t.Fatalf("our HELO %+v %v", helo, err)
					}
					rest, wantRest = got[n:], server[recHeloLen:]
				}
				if strings.HasSuffix(name, "wrongkey") {
					if len(wantRest) != 0 {
						t.Fatalf("fixture changed: Fluent Bit sent %x after HELO", wantRest)
					}
					wantRest = wire.AppendPong(nil, wire.Pong{Reason: []byte("shared_key mismatch")})
				}
				if !bytes.Equal(rest, wantRest) {
					t.Errorf("answer after HELO differs from Fluent Bit's\n got %x\nwant %x", rest, wantRest)
				}
			}

			// What was stored.
			var wantEvents []storedEvent
			var wantRecords []map[string]any
			if !refused {
				for _, m := range fx.ClientToServer.Messages {
					for _, e := range m.Events {
						wantEvents = append(wantEvents, storedEvent{Tag: m.Tag, Time: e.Time.Sec*1e9 + e.Time.Nsec})
						wantRecords = append(wantRecords, normalize(e.Record).(map[string]any))
					}
				}
			}
			// The pipeline keeps order per tag (a flush appends one chunk
			// per tag), so compare in a stable order by tag.
			stored := q.snapshot()
			sort.SliceStable(stored, func(i, j int) bool { return stored[i].Tag < stored[j].Tag })
			idx := make([]int, len(wantEvents))
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(i, j int) bool { return wantEvents[idx[i]].Tag < wantEvents[idx[j]].Tag })
			we, wr := make([]storedEvent, len(idx)), make([]map[string]any, len(idx))
			for i, k := range idx {
				we[i], wr[i] = wantEvents[k], wantRecords[k]
			}
			wantEvents, wantRecords = we, wr
			if len(stored) != len(wantEvents) {
				t.Fatalf("stored %d events, want %d", len(stored), len(wantEvents))
			}
			for i, e := range stored {
				if e.Tag != wantEvents[i].Tag || e.Time != wantEvents[i].Time {
					t.Errorf("event %d: %q %d, want %q %d", i, e.Tag, e.Time, wantEvents[i].Tag, wantEvents[i].Time)
				}
				if r := decodeRecord(t, e.Record); !reflect.DeepEqual(r, wantRecords[i]) {
					t.Errorf("event %d record\n got %.300v\nwant %.300v", i, r, wantRecords[i])
				}
			}
		})
	}
}

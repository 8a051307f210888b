package interop

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/loggen"
)

// TestSluiceToPeer sends numbered Docker json-file lines through Sluice's
// docker input and forward output into each peer's forward input, for
// every scenario, and checks every sequence number in what the peer wrote
// (Fluentd: out_stdout lines in its log; Fluent Bit: its file output).
// With a wrong shared key nothing may arrive and Sluice must log why. The
// shared key must never appear in Sluice's log.
func TestSluiceToPeer(t *testing.T) {
	for _, kind := range []peerKind{fluentd, fluentBit} {
		for _, sc := range scenarios {
			if (sc.onlyFor != "" && sc.onlyFor != kind) || sc.opts.Legacy {
				continue // Legacy is a setting of the peer's sender
			}
			t.Run(string(kind)+"/"+sc.name, func(t *testing.T) {
				kind.need(t)
				sluiceToPeer(t, kind, sc)
			})
		}
	}
}

func sluiceToPeer(t *testing.T, kind peerKind, sc scenario) {
	t0 := time.Now()
	dir := t.TempDir()
	srv, cli := sc.links(t, dir)
	peer := startReceiver(t, kind, string(kind), dir, srv)

	root := filepath.Join(dir, "containers")
	c, err := loggen.New(root, loggen.Options{Name: "c-" + sc.name, LogType: "app", Payload: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := eventsPerScenario
	if err := c.Write(n); err != nil {
		t.Fatal(err)
	}
	s := startSluice(t, "sluice", dir, sluiceConf{
		DockerRoot: root,
		Servers:    []peerServer{{Port: peer.port}},
		Fwd:        cli,
	})
	dead := func() bool { return peer.Exited() || s.proc.Exited() }

	if sc.wrongKey {
		// The handshake fails: Sluice marks the server down, saying why,
		// and nothing is delivered while it keeps retrying.
		s.waitLog(`"forward server down"`, 20*time.Second)
		time.Sleep(3 * time.Second) // several heartbeat/retry rounds (200 ms, ≤1 s)
		down := logLines(s.Log(), `"forward server down"`)
		tl := peer.read()
		if got := tl.distinct(c.Src(), n); got != 0 {
			t.Errorf("wrong shared key: %s received %d of %d events, want 0", kind, got, n)
		}
		if !strings.Contains(first(down), "shared key") && !strings.Contains(first(down), "authentication") {
			t.Errorf("wrong shared key: Sluice's down line does not say the handshake failed: %s", first(down))
		}
		t.Logf("wrong shared key: %s received 0 of %d events; Sluice logged %d down/up line(s): %s", kind, n, len(down), first(down))
		t.Logf("%s logged: %s", kind, first(peerAuthLines(peer)))
		s.checkNoSecret(srv.SharedKey, cli.SharedKey)
		return
	}

	tl := waitTally(t, peer.read, c.Src(), n, 60*time.Second, dead)
	r := tl.check(c.Src(), n)
	if r.Missing > 0 {
		t.Errorf("%s received %s", kind, r)
	}
	if r.Extra > 0 || tl.unkeyed > 0 {
		t.Errorf("%s received %d unexpected and %d unkeyed events", kind, r.Extra, tl.unkeyed)
	}
	s.term()
	s.checkNoSecret(srv.SharedKey)
	// A clean link has no reconnects, retries or rejected events on
	// either side.
	for _, l := range peer.problems(benignPeerWarnings, tlsEOF) {
		t.Errorf("%s logged: %s", kind, l)
	}
	for _, l := range s.problems() {
		t.Errorf("sluice logged: %s", l)
	}
	t.Logf("sluice -> %s [%s]: %s in %v", kind, sc.name, r, time.Since(t0).Round(time.Millisecond))
}

// peerAuthLines are the peer's log lines about a failed handshake.
func peerAuthLines(p *receiver) []string {
	var out []string
	for _, l := range strings.Split(p.Log(), "\n") {
		ll := strings.ToLower(l)
		if !strings.Contains(ll, "warn") && !strings.Contains(ll, "error") {
			continue
		}
		if strings.Contains(ll, "shared_key") || strings.Contains(ll, "shared key") || strings.Contains(ll, "handshake") || strings.Contains(ll, "auth") {
			out = append(out, l)
		}
	}
	return out
}

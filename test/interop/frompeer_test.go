package interop

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeerToSluice has each peer tail a file of numbered JSON lines and send
// them with its forward output into Sluice's forward input, for every
// scenario; Sluice's file output (JSON lines) must then hold every sequence
// number. With a wrong shared key nothing may arrive and Sluice must log the
// refused handshake. The shared key must never appear in Sluice's log.
func TestPeerToSluice(t *testing.T) {
	for _, kind := range []peerKind{fluentd, fluentBit} {
		for _, sc := range scenarios {
			if sc.onlyFor != "" && sc.onlyFor != kind {
				continue
			}
			t.Run(string(kind)+"/"+sc.name, func(t *testing.T) {
				kind.need(t)
				peerToSluice(t, kind, sc)
			})
		}
	}
}

func peerToSluice(t *testing.T, kind peerKind, sc scenario) {
	t0 := time.Now()
	dir := t.TempDir()
	srv, cli := sc.links(t, dir)
	out := filepath.Join(dir, "out.jsonl")
	s := startSluice(t, "sluice", dir, sluiceConf{Listen: listenAddr(t), FilePath: out, Fwd: srv})
	port := s.port()

	src := string(kind) + "-" + sc.name
	n := eventsPerScenario
	input := filepath.Join(dir, "input.jsonl")
	writeSeqLines(t, input, src, 0, n)
	peer := startSender(t, kind, string(kind), dir, input, []peerServer{{Port: port}}, cli)
	read := func() *tally { return readTally(jsonLine, out) }
	dead := func() bool { return peer.Exited() || s.proc.Exited() }

	if sc.wrongKey {
		// Sluice refuses the PING; the peer keeps retrying; nothing is stored.
		s.waitLog(`"forward handshake refused"`, 30*time.Second)
		time.Sleep(3 * time.Second)
		refused := logLines(s.Log(), `"forward handshake refused"`)
		if got := read().distinct(src, n); got != 0 {
			t.Errorf("wrong shared key: Sluice stored %d of %d events from %s, want 0", got, n, kind)
		}
		if !strings.Contains(first(refused), "shared_key mismatch") {
			t.Errorf("wrong shared key: Sluice's refusal does not give the reason: %s", first(refused))
		}
		t.Logf("wrong shared key: Sluice stored 0 of %d events from %s; logged %d refusal(s): %s", n, kind, len(refused), first(refused))
		t.Logf("%s logged: %s", kind, first(peerAuthLines(peer)))
		s.checkNoSecret(srv.SharedKey, cli.SharedKey)
		return
	}

	tl := waitTally(t, read, src, n, 60*time.Second, dead)
	r := tl.check(src, n)
	if r.Missing > 0 {
		t.Errorf("Sluice stored %s from %s", r, kind)
	}
	if r.Extra > 0 || tl.unkeyed > 0 {
		t.Errorf("Sluice stored %d unexpected and %d unkeyed events", r.Extra, tl.unkeyed)
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
	t.Logf("%s -> sluice [%s]: %s in %v", kind, sc.name, r, time.Since(t0).Round(time.Millisecond))
}

// startSender starts a peer of kind that tails input and forwards it to
// servers (Fluent Bit: to the first one only).
func startSender(t *testing.T, kind peerKind, name, dir, input string, servers []peerServer, o fwdOpts) *receiver {
	t.Helper()
	conf := filepath.Join(dir, name+".conf")
	switch kind {
	case fluentd:
		writeFile(t, conf, fluentdSenderConf(input, filepath.Join(dir, name+".pos"), servers, o))
	case fluentBit:
		writeFile(t, conf, fluentBitSenderConf(t, dir, input, servers[0].Port, o))
	}
	return &receiver{peerProc: startPeer(t, kind, name, dir, conf)}
}

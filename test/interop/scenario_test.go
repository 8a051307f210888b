package interop

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scenario is one Forward link configuration, run in both directions
// against both peers.
type scenario struct {
	name     string
	opts     fwdOpts // the server's settings; TLS and SharedKey are filled in
	tls      bool
	key      bool
	wrongKey bool // the client's shared key differs from the server's
	onlyFor  peerKind
}

var scenarios = []scenario{
	{name: "no_ack"},
	{name: "ack", opts: fwdOpts{Ack: true}},
	{name: "gzip_ack", opts: fwdOpts{Ack: true, Gzip: true}},
	{name: "shared_key", opts: fwdOpts{Ack: true}, key: true},
	{name: "shared_key_wrong", opts: fwdOpts{Ack: true}, key: true, wrongKey: true},
	{name: "tls", opts: fwdOpts{Ack: true}, tls: true},
	{name: "tls_shared_key_gzip", opts: fwdOpts{Ack: true, Gzip: true}, tls: true, key: true},
	// Fluent Bit's forward output in its pre-v2 entry form [time, record].
	{name: "legacy_entries", opts: fwdOpts{Ack: true, Legacy: true}, onlyFor: fluentBit},
}

// eventsPerScenario is how many numbered events each scenario sends.
const eventsPerScenario = 5000

// links returns the server's and the client's settings of sc, generating
// certificates under dir and fresh random keys.
func (sc scenario) links(t *testing.T, dir string) (server, client fwdOpts) {
	server = sc.opts
	if sc.tls {
		server.TLS = newCerts(t, dir)
	}
	if sc.key {
		server.SharedKey = randomKey(t)
	}
	client = server
	if sc.wrongKey {
		client.SharedKey = randomKey(t)
	}
	return server, client
}

// randomKey is a shared key distinctive enough to be searched for in logs.
func randomKey(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "interop-key-" + hex.EncodeToString(b)
}

// receiver is a peer running as a forward server, with a reader of what it
// received.
type receiver struct {
	*peerProc
	port int
	read func() *tally
}

// startReceiver starts a peer of kind as a forward server on a free port
// and waits until it listens.
func startReceiver(t *testing.T, kind peerKind, name, dir string, o fwdOpts) *receiver {
	t.Helper()
	port := freePort(t)
	return startReceiverOn(t, kind, name, dir, port, o)
}

// startReceiverOn is startReceiver on a given port. A Fluent Bit receiver
// keeps its buffer in <dir>/<name>-storage, so that it survives a kill -9
// and a restart of the receiver (same name and dir) flushes it.
func startReceiverOn(t *testing.T, kind peerKind, name, dir string, port int, o fwdOpts) *receiver {
	t.Helper()
	conf := filepath.Join(dir, name+".conf")
	r := &receiver{port: port}
	switch kind {
	case fluentd:
		writeFile(t, conf, fluentdReceiverConf(port, o))
		r.peerProc = startPeer(t, kind, name, dir, conf)
		r.read = func() *tally { return readTally(fluentdStdoutLine, r.logPath) }
	case fluentBit:
		out := filepath.Join(dir, name+"-out")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, conf, fluentBitReceiverConf(port, o, out, filepath.Join(dir, name+"-storage")))
		r.peerProc = startPeer(t, kind, name, dir, conf)
		r.read = func() *tally { return readTally(jsonLine, filepath.Join(out, "*")) }
	}
	r.waitListening(port)
	return r
}

// logLines returns the lines of log that contain every one of substrs.
func logLines(log string, substrs ...string) []string {
	var out []string
	for line := range strings.SplitSeq(log, "\n") {
		ok := true
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			out = append(out, line)
		}
	}
	return out
}

func first(lines []string) string {
	if len(lines) == 0 {
		return "(none)"
	}
	return fmt.Sprintf("%s (and %d more)", lines[0], len(lines)-1)
}

// benignPeerWarnings are peer log warnings that say nothing about the
// link: Fluentd's missing capng library (in_tail, see the peers' README)
// and its advice to encrypt the TLS key. tlsEOF is the peers' complaint
// about a TLS connection closed without close_notify, which
// TestSluiceTLSCloseNotify checks on its own.
var (
	benignPeerWarnings = []string{"[warn]: LoadError", "setting private_key_passphrase is recommended"}
	tlsEOF             = []string{"unexpected eof while reading"}
)

// problems are the warning and error lines of a peer's log (Fluentd
// "[warn]:"/"[error]:", Fluent Bit "[ warn]"/"[error]"), without those
// containing any of ignore.
func (p *peerProc) problems(ignore ...[]string) []string {
	var out []string
next:
	for _, l := range strings.Split(p.Log(), "\n") {
		if !strings.Contains(l, "[warn]") && !strings.Contains(l, "[ warn]") && !strings.Contains(l, "[error]") {
			continue
		}
		for _, list := range ignore {
			for _, s := range list {
				if strings.Contains(l, s) {
					continue next
				}
			}
		}
		out = append(out, l)
	}
	return out
}

// sluiceProblems are the WARN and ERROR lines of the agent's log.
func (s *sluiceProc) problems() []string {
	return append(logLines(s.Log(), `"level":"WARN"`), logLines(s.Log(), `"level":"ERROR"`)...)
}

package forward

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ptr[T any](v T) *T { return &v }

func TestNewValidation(t *testing.T) {
	src := newFakeSource()
	ok := baseConfig("127.0.0.1:24224")
	tests := map[string]struct {
		mod  func(c *config.ForwardOutput)
		want string
	}{
		"no servers":       {func(c *config.ForwardOutput) { c.Servers = nil }, "servers: none configured"},
		"bad compress":     {func(c *config.ForwardOutput) { c.Compress = "zstd" }, `compress: "zstd"`},
		"bad level":        {func(c *config.ForwardOutput) { c.Compress, c.CompressLevel = "gzip", 12 }, "compress_level: 12"},
		"negative flight":  {func(c *config.ForwardOutput) { c.MaxInFlight = -1 }, "max_in_flight"},
		"retry order":      {func(c *config.ForwardOutput) { c.RetryInitial, c.RetryMax = time.Minute, time.Second }, "retry_max"},
		"negative retries": {func(c *config.ForwardOutput) { c.MaxRetries = -1 }, "max_retries"},
		"bad address":      {func(c *config.ForwardOutput) { c.Servers[0].Address = "nohostport" }, "servers[0]: address"},
		"bad scheme":       {func(c *config.ForwardOutput) { c.Servers[0].Address = "http://x:1" }, "unknown scheme"},
		"empty unix":       {func(c *config.ForwardOutput) { c.Servers[0].Address = "unix://" }, "empty unix socket path"},
		"negative weight":  {func(c *config.ForwardOutput) { c.Servers[0].Weight = -3 }, "weight"},
		"only standby":     {func(c *config.ForwardOutput) { c.Servers[0].Standby = true }, "every server is a standby"},
		"duplicate":        {func(c *config.ForwardOutput) { c.Servers = append(c.Servers, c.Servers[0]) }, "duplicate address"},
		"user no security": {func(c *config.ForwardOutput) { c.Servers[0].Username = "alice" }, "security"},
		"tls disabled":     {func(c *config.ForwardOutput) { c.TLS = &config.TLS{CAFile: "x"} }, "enabled is false"},
		"tls missing ca":   {func(c *config.ForwardOutput) { c.TLS = &config.TLS{Enabled: true, CAFile: "/nonexistent/ca.pem"} }, "ca_file"},
		"tls half pair":    {func(c *config.ForwardOutput) { c.TLS = &config.TLS{Enabled: true, CertFile: "c.pem"} }, "cert_file and key_file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := ok
			c.Servers = append([]config.ForwardServer(nil), ok.Servers...)
			tc.mod(&c)
			_, err := New("out1", c, config.Delivery{}, "", src, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "forward output out1: ") {
				t.Errorf("error %q does not name the output", err)
			}
		})
	}
	if _, err := New("out1", ok, config.Delivery{}, "", src, nil, nil); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// TestDeliver sends chunks to one acking server and checks the requests'
// exact form: PackedForward (or compressed), option size and chunk id.
func TestDeliver(t *testing.T) {
	tests := map[string]struct {
		compress string
		noAck    bool
		mode     wire.Mode
	}{
		"packed":      {mode: wire.ModePackedForward},
		"gzip":        {compress: "gzip", mode: wire.ModeCompressedPackedForward},
		"no ack":      {noAck: true, mode: wire.ModePackedForward},
		"gzip no ack": {compress: "gzip", noAck: true, mode: wire.ModeCompressedPackedForward},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{})
			src := newFakeSource()
			src.addSeq(40, 25)
			cfg := baseConfig(srv.addr)
			cfg.Compress = tc.compress
			if tc.noAck {
				cfg.RequireAck = ptr(false)
			}
			r := start(t, cfg, src)
			src.waitAcked(t, 10*time.Second)
			srv.waitRequests(t, 40, 5*time.Second)
			reqs := srv.requests()
			seen := make(map[int]int)
			for _, q := range reqs {
				if q.mode != tc.mode || q.tag != "test.tag" || q.size != 25 || len(q.seqs) != 25 {
					t.Fatalf("request %+v: want mode %s, tag test.tag, size 25", q, tc.mode)
				}
				if tc.noAck != (q.chunk == "") {
					t.Fatalf("request chunk %q with require_ack=%v", q.chunk, !tc.noAck)
				}
				for _, k := range q.seqs {
					seen[k]++
				}
			}
			if len(seen) != 1000 || len(reqs) != 40 {
				t.Fatalf("server saw %d requests, %d distinct seqs; want 40 and 1000", len(reqs), len(seen))
			}
			if !tc.noAck {
				// Chunk ids are deterministic per (output, chunk position).
				want := make(map[string]bool)
				for _, c := range src.chunks {
					want[wire.ChunkID(wire.NewChunkID("out1", c.ID.Segment, uint64(c.ID.Offset)))] = true
				}
				for _, q := range reqs {
					if !want[q.chunk] {
						t.Fatalf("unexpected chunk id %q", q.chunk)
					}
				}
			}
			if got := r.counter("sluice_output_chunks_acked_total", srv.addr); got != 40 {
				t.Errorf("chunks acked metric = %d, want 40", got)
			}
			if got := r.counter("sluice_output_events_sent_total", srv.addr); got != 1000 {
				t.Errorf("events sent metric = %d, want 1000", got)
			}
			if r.counter("sluice_output_bytes_sent_total", srv.addr) == 0 || r.gauge(srv.addr) != 1 {
				t.Errorf("bytes sent or up gauge not set")
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServerDownAtStart(t *testing.T) {
	addr := freeAddr(t)
	src := newFakeSource()
	src.addSeq(20, 10)
	r := start(t, baseConfig(addr), src)
	eventually(t, 5*time.Second, "connection failures", func() bool {
		return r.counter("sluice_output_connection_failures_total", addr) >= 2
	})
	if src.ackedCount() != 0 || r.gauge(addr) != 0 {
		t.Fatalf("acked %d chunks with no server / gauge %v", src.ackedCount(), r.gauge(addr))
	}
	srv := startServer(t, "tcp", addr, srvOpts{})
	src.waitAcked(t, 10*time.Second)
	checkAllSeqs(t, 200, srv)
	logs := r.logs.String()
	if n := strings.Count(logs, `msg="forward server down"`); n != 1 {
		t.Errorf("logged %d down transitions, want exactly 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, `msg="forward server up again"`) {
		t.Errorf("recovery not logged:\n%s", logs)
	}
}

// TestServerKilledMidStream kills the server while chunks are in flight
// and restarts it: nothing is lost and duplicates stay within MaxInFlight.
func TestServerKilledMidStream(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{ackDelay: 5 * time.Millisecond})
	addr := srv.addr
	src := newFakeSource()
	src.addSeq(200, 10)
	cfg := baseConfig(addr)
	cfg.MaxInFlight = 4
	r := start(t, cfg, src)
	srv.waitRequests(t, 60, 10*time.Second)
	srv.Close()
	srv2 := startServer(t, "tcp", addr, srvOpts{})
	src.waitAcked(t, 20*time.Second)
	dups := checkAllSeqs(t, 2000, srv, srv2)
	if dups > cfg.MaxInFlight*10 {
		t.Fatalf("%d duplicate events, want at most MaxInFlight chunks (%d events)", dups, cfg.MaxInFlight*10)
	}
	if r.counter("sluice_output_retries_total", addr) == 0 {
		t.Errorf("no retries counted although the server was killed mid-stream")
	}
	t.Logf("duplicates: %d events", dups)
}

func TestAckTimeout(t *testing.T) {
	// The first connection never acks; later ones do.
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{neverFirst: 1})
	src := newFakeSource()
	src.addSeq(10, 5)
	cfg := baseConfig(srv.addr)
	cfg.AckTimeout = 200 * time.Millisecond
	r := start(t, cfg, src)
	src.waitAcked(t, 10*time.Second)
	checkAllSeqs(t, 50, srv)
	if got := r.counter("sluice_output_ack_timeouts_total", srv.addr); got != 1 {
		t.Errorf("ack timeouts = %d, want 1", got)
	}
	if !strings.Contains(r.logs.String(), "ack timeout") {
		t.Errorf("ack timeout not logged:\n%s", r.logs.String())
	}
}

func TestOutOfOrderAcks(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{ack: "reverse", reverseN: 4})
	src := newFakeSource()
	src.addSeq(40, 5)
	cfg := baseConfig(srv.addr)
	cfg.MaxInFlight = 4
	r := start(t, cfg, src)
	src.waitAcked(t, 10*time.Second)
	checkAllSeqs(t, 200, srv)
	if r.counter("sluice_output_ack_timeouts_total", srv.addr) != 0 || r.counter("sluice_output_retries_total", srv.addr) != 0 {
		t.Fatal("reverse-order acks caused timeouts or retries")
	}
	if n := len(srv.requests()); n != 40 {
		t.Fatalf("server saw %d requests, want exactly 40 (no resends)", n)
	}
}

func TestMaxRetriesDrops(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{ack: "never"})
	src := newFakeSource()
	src.addSeq(1, 3)
	cfg := baseConfig(srv.addr)
	cfg.AckTimeout = 50 * time.Millisecond
	cfg.MaxRetries = 2
	r := start(t, cfg, src)
	src.waitSettled(t, 10*time.Second, true)
	// No dead-letter queue in this test (no data dir): the events are
	// dropped, counted by reason.
	if got := r.set.GetOrCreateCounter(`sluice_output_dropped_events_total{output="out1",reason="max_retries"}`).Get(); got != 3 {
		t.Fatalf("dropped = %d, want 3", got)
	}
	if d := src.discards(); len(d) != 1 || src.ackedCount() != 0 {
		t.Fatalf("source: discards %v, %d acked; want one discard and no ack", d, src.ackedCount())
	}
	for _, reason := range src.discards() {
		if reason != "max_retries" {
			t.Fatalf("discard reason %q, want max_retries", reason)
		}
	}
	if n := len(srv.requests()); n != 3 {
		t.Errorf("server saw %d sends, want 3 (1 + max_retries 2)", n)
	}
	if !strings.Contains(r.logs.String(), "reason=max_retries") {
		t.Errorf("drop not logged:\n%s", r.logs.String())
	}
}

func TestWeights(t *testing.T) {
	a := startServer(t, "tcp", "127.0.0.1:0", srvOpts{})
	b := startServer(t, "tcp", "127.0.0.1:0", srvOpts{})
	cfg := baseConfig()
	cfg.Servers = []config.ForwardServer{{Address: a.addr, Weight: 1}, {Address: b.addr, Weight: 3}}
	cfg.MaxInFlight = 500 // weights hold while servers have free slots
	src := newFakeSource()
	r := start(t, cfg, src)
	eventually(t, 5*time.Second, "both servers up", func() bool { return r.gauge(a.addr) == 1 && r.gauge(b.addr) == 1 })
	src.addSeq(400, 2)
	src.waitAcked(t, 10*time.Second)
	checkAllSeqs(t, 800, a, b)
	na, nb := len(a.requests()), len(b.requests())
	if na < 90 || na > 110 || na+nb != 400 {
		t.Fatalf("weights 1:3 gave %d:%d chunks, want about 100:300", na, nb)
	}
}

func TestFailoverToStandby(t *testing.T) {
	a1, a2 := freeAddr(t), freeAddr(t)
	sb := startServer(t, "tcp", "127.0.0.1:0", srvOpts{})
	cfg := baseConfig()
	standby := withServer(sb.addr)
	standby.Standby = true
	cfg.Servers = []config.ForwardServer{withServer(a1), withServer(a2), standby}
	cfg.MaxInFlight = 100
	src := newFakeSource()
	src.addSeq(20, 2)
	r := start(t, cfg, src)
	src.waitAcked(t, 10*time.Second)
	if n := len(sb.requests()); n != 20 {
		t.Fatalf("standby got %d of 20 chunks while the actives were down", n)
	}
	// The actives come back: new chunks go to them only.
	s1 := startServer(t, "tcp", a1, srvOpts{})
	s2 := startServer(t, "tcp", a2, srvOpts{})
	eventually(t, 5*time.Second, "actives up", func() bool { return r.gauge(a1) == 1 && r.gauge(a2) == 1 })
	src.addSeq(40, 2)
	src.waitAcked(t, 10*time.Second)
	checkAllSeqs(t, 120, s1, s2, sb)
	if n := len(sb.requests()); n != 20 {
		t.Fatalf("standby got %d chunks after the actives recovered, want none", n-20)
	}
	if n1, n2 := len(s1.requests()), len(s2.requests()); n1+n2 != 40 || n1 < 15 || n2 < 15 {
		t.Fatalf("equal weights gave %d:%d chunks", n1, n2)
	}
	// One active down again: the other one takes everything, not the standby.
	s1.Close()
	eventually(t, 5*time.Second, "a1 down", func() bool { return r.gauge(a1) == 0 })
	src.addSeq(10, 2)
	src.waitAcked(t, 10*time.Second)
	if n := len(sb.requests()); n != 20 {
		t.Fatalf("standby used while one active was still up")
	}
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fwd.sock")
	srv := startServer(t, "unix", path, srvOpts{})
	src := newFakeSource()
	src.addSeq(5, 4)
	start(t, baseConfig(srv.addr), src)
	src.waitAcked(t, 10*time.Second)
	checkAllSeqs(t, 20, srv)
}

func TestKeepaliveFalse(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{sharedKey: "KEY", noKeepaliv: true})
	src := newFakeSource()
	src.addSeq(10, 3)
	cfg := baseConfig(srv.addr)
	cfg.Security = &config.Security{SelfHostname: "cli", SharedKey: "KEY"}
	start(t, cfg, src)
	src.waitAcked(t, 10*time.Second)
	checkAllSeqs(t, 30, srv)
	perConn := make(map[int]int)
	for _, q := range srv.requests() {
		perConn[q.conn]++
		if perConn[q.conn] > 1 {
			t.Fatalf("connection %d carried %d requests although HELO said keepalive false", q.conn, perConn[q.conn])
		}
	}
}

func TestSecurity(t *testing.T) {
	tests := map[string]struct {
		srv      srvOpts
		key      string
		user, pw string
		ok       bool
		logWant  string
	}{
		"shared key":       {srv: srvOpts{sharedKey: "KEY"}, key: "KEY", ok: true},
		"wrong shared key": {srv: srvOpts{sharedKey: "KEY"}, key: "WRONGKEY", logWant: "shared_key mismatch"},
		"user auth":        {srv: srvOpts{sharedKey: "KEY", users: map[string]string{"alice": "pw"}}, key: "KEY", user: "alice", pw: "pw", ok: true},
		"wrong password":   {srv: srvOpts{sharedKey: "KEY", users: map[string]string{"alice": "pw"}}, key: "KEY", user: "alice", pw: "WRONGPW", logWant: "username/password mismatch"},
		"no user":          {srv: srvOpts{sharedKey: "KEY", users: map[string]string{"alice": "pw"}}, key: "KEY", logWant: "username/password mismatch"},
		"same hostname":    {srv: srvOpts{sharedKey: "KEY", hostname: "cli"}, key: "KEY", logWant: "equals ours"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, "tcp", "127.0.0.1:0", tc.srv)
			src := newFakeSource()
			src.addSeq(5, 2)
			cfg := baseConfig(srv.addr)
			cfg.Servers[0].Username, cfg.Servers[0].Password = tc.user, config.Secret(tc.pw)
			cfg.Security = &config.Security{SelfHostname: "cli", SharedKey: config.Secret(tc.key)}
			r := start(t, cfg, src)
			if tc.ok {
				src.waitAcked(t, 10*time.Second)
				checkAllSeqs(t, 10, srv)
				return
			}
			eventually(t, 5*time.Second, "handshake failures", func() bool {
				return r.counter("sluice_output_connection_failures_total", srv.addr) >= 2
			})
			if src.ackedCount() != 0 || len(srv.requests()) != 0 {
				t.Fatal("data sent although the handshake failed")
			}
			logs := r.logs.String()
			if !strings.Contains(logs, tc.logWant) || strings.Count(logs, `msg="forward server down"`) != 1 {
				t.Fatalf("want one down log with %q, got:\n%s", tc.logWant, logs)
			}
			for _, secret := range []string{tc.key, tc.pw} {
				if secret != "" && strings.Contains(logs, secret) {
					t.Fatalf("log contains a secret %q:\n%s", secret, logs)
				}
			}
		})
	}
}

func TestHeloWithoutSecurity(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{helo: true})
	src := newFakeSource()
	src.addSeq(1, 1)
	r := start(t, baseConfig(srv.addr), src)
	eventually(t, 5*time.Second, "down log", func() bool {
		return strings.Contains(r.logs.String(), "server requires the security handshake")
	})
	if src.ackedCount() != 0 {
		t.Fatal("chunk acked by a server that wanted a handshake")
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	serverCert := ca.issue(t, "sluice.test", false)
	clientCert := ca.issue(t, "client", true)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o600)
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	os.WriteFile(certFile, clientCert.certPEM, 0o600)
	os.WriteFile(keyFile, clientCert.keyPEM, 0o600)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{serverCert.pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}

	tests := map[string]struct {
		tls *config.TLS
		ok  bool
	}{
		"verified with client cert": {tls: &config.TLS{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "sluice.test"}, ok: true},
		"wrong server name":         {tls: &config.TLS{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "wrong.test"}},
		"unknown CA":                {tls: &config.TLS{Enabled: true, CertFile: certFile, KeyFile: keyFile, ServerName: "sluice.test"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{tls: srvTLS, sharedKey: "KEY"})
			src := newFakeSource()
			src.addSeq(5, 2)
			cfg := baseConfig(srv.addr)
			cfg.TLS = tc.tls
			cfg.Security = &config.Security{SelfHostname: "cli", SharedKey: "KEY"}
			r := start(t, cfg, src)
			if tc.ok {
				src.waitAcked(t, 10*time.Second)
				checkAllSeqs(t, 10, srv)
				return
			}
			eventually(t, 5*time.Second, "tls failures", func() bool {
				return r.counter("sluice_output_connection_failures_total", srv.addr) >= 2
			})
			if src.ackedCount() != 0 {
				t.Fatal("data sent over an unverified TLS connection")
			}
			if !strings.Contains(r.logs.String(), "tls handshake") {
				t.Fatalf("TLS failure not logged:\n%s", r.logs.String())
			}
		})
	}
}

// TestRewindOnStop: chunks read but not acked are handed back to the
// source when Run returns.
func TestRewindOnStop(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{ack: "never"})
	src := newFakeSource()
	src.addSeq(3, 1)
	r := start(t, baseConfig(srv.addr), src)
	srv.waitRequests(t, 3, 5*time.Second)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if src.ackedCount() != 0 || src.rewinds != 1 {
		t.Fatalf("after stop: %d acked, %d rewinds; want 0 and 1", src.ackedCount(), src.rewinds)
	}
	if err := r.o.Run(t.Context()); err == nil {
		t.Fatal("second Run did not fail")
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

type issued struct {
	pair            tls.Certificate
	certPEM, keyPEM []byte
}

func newCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) issue(t *testing.T, name string, client bool) issued {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return issued{pair: pair, certPEM: certPEM, keyPEM: keyPEM}
}

// TestStuckServer: a server that accepts but never reads makes writes
// block; the write deadline breaks the connection, and cancelling Run
// returns at once even while a write is blocked.
func TestStuckServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // never read
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	src := newFakeSource()
	big := seqRecord(0, 4<<20)
	for i := range 4 {
		src.chunks = append(src.chunks, bufferChunk(i, big))
	}
	cfg := baseConfig(ln.Addr().String())
	cfg.AckTimeout = 300 * time.Millisecond
	r := start(t, cfg, src)
	eventually(t, 10*time.Second, "write deadline", func() bool {
		return strings.Contains(r.logs.String(), "i/o timeout")
	})
	if src.ackedCount() != 0 {
		t.Fatal("chunk acked by a server that never read it")
	}
	begin := time.Now()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("Run took %s to return after cancel", d)
	}
}

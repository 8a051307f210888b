package ibmtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/IBM/fluent-forward-go/fluent/client"
	"github.com/IBM/fluent-forward-go/fluent/protocol"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/forward"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type event struct {
	tag    string
	time   int64
	record map[string]any
}

type memQueue struct {
	mu     sync.Mutex
	events []event
}

func (q *memQueue) Append(_ context.Context, tag []byte, _ int, entries []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return wire.ForEachEntry(entries, func(ns int64, rec []byte) error {
		v, _, err := msgp.ReadIntfBytes(rec)
		if err != nil {
			return err
		}
		q.events = append(q.events, event{string(tag), ns, v.(map[string]any)})
		return nil
	})
}
func (q *memQueue) Sync() error { return nil }

func (q *memQueue) Mark() uint64 { return 1 }

func (q *memQueue) SyncTo(uint64) error { return nil }

func (q *memQueue) snapshot() []event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]event(nil), q.events...)
}

func (q *memQueue) wait(t *testing.T, n int) []event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := q.snapshot()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events, want %d", len(ev), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func start(t *testing.T, cfg config.ForwardInput) (string, *memQueue) {
	t.Helper()
	q := &memQueue{}
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"q"}}}, "",
		[]pipeline.OutputQueue{{ID: "q", Queue: q}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	in, err := forward.New("fw", cfg, r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	addr := in.Addr().String()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return addr, q
}

func entries(n int, prefix string) protocol.EntryList {
	var el protocol.EntryList
	base := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for i := range n {
		el = append(el, protocol.EntryExt{
			Timestamp: protocol.EventTime{Time: base.Add(time.Duration(i) * time.Millisecond)},
			Record:    map[string]any{"log": fmt.Sprintf("%s %d", prefix, i), "seq": i},
		})
	}
	return el
}

// sendAll sends every mode with acks on one connection of c and checks
// what the input stored.
func sendAll(t *testing.T, c *client.Client, q *memQueue) {
	t.Helper()
	before := len(q.snapshot())
	if err := c.SendMessage("ibm.message", map[string]any{"log": "message", "seq": 0}); err != nil {
		t.Fatalf("Message: %v", err)
	}
	if err := c.SendMessageExt("ibm.messageext", map[string]any{"log": "message ext", "seq": 0}); err != nil {
		t.Fatalf("MessageExt: %v", err)
	}
	if err := c.SendForward("ibm.forward", entries(50, "forward")); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	if err := c.SendPacked("ibm.packed", entries(100, "packed")); err != nil {
		t.Fatalf("PackedForward: %v", err)
	}
	if err := c.SendCompressed("ibm.gzip", entries(200, "gzip")); err != nil {
		t.Fatalf("CompressedPackedForward: %v", err)
	}
	raw, _ := entries(10, "raw").MarshalPacked()
	if err := c.SendPackedFromBytes("ibm.rawpacked", raw); err != nil {
		t.Fatalf("PackedFromBytes: %v", err)
	}
	got := q.wait(t, before+362)[before:]
	count := map[string]int{}
	for _, e := range got {
		count[e.tag]++
	}
	want := map[string]int{"ibm.message": 1, "ibm.messageext": 1, "ibm.forward": 50, "ibm.packed": 100, "ibm.gzip": 200, "ibm.rawpacked": 10}
	for tag, n := range want {
		if count[tag] != n {
			t.Errorf("%s: %d events, want %d", tag, count[tag], n)
		}
	}
	seq := map[string]int64{}
	for _, e := range got {
		if e.tag == "ibm.message" || e.tag == "ibm.messageext" {
			continue
		}
		s, _ := e.record["seq"].(int64)
		if s != seq[e.tag] {
			t.Fatalf("%s: seq %d, want %d (order or loss)", e.tag, s, seq[e.tag])
		}
		wantT := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC).Add(time.Duration(s) * time.Millisecond)
		if e.time != wantT.UnixNano() {
			t.Fatalf("%s %d: time %d, want %d", e.tag, s, e.time, wantT.UnixNano())
		}
		seq[e.tag]++
	}
}

func TestAllModesWithAck(t *testing.T) {
	addr, q := start(t, config.ForwardInput{})
	c := client.New(client.ConnectionOptions{
		Factory:           &client.ConnFactory{Address: addr, Timeout: 3 * time.Second},
		RequireAck:        true,
		ConnectionTimeout: 5 * time.Second,
	})
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	sendAll(t, c, q)
}

func TestSharedKey(t *testing.T) {
	addr, q := start(t, config.ForwardInput{Security: &config.Security{SelfHostname: "srv", SharedKey: "KEY"}})
	newClient := func(key string) *client.Client {
		c := client.New(client.ConnectionOptions{
			Factory:           &client.ConnFactory{Address: addr, Timeout: 3 * time.Second},
			RequireAck:        true,
			ConnectionTimeout: 5 * time.Second,
			AuthInfo:          client.AuthInfo{SharedKey: []byte(key)},
		})
		c.Hostname = "cli"
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Disconnect() })
		return c
	}
	good := newClient("KEY")
	if err := good.Handshake(); err != nil {
		t.Fatalf("handshake with the right key: %v", err)
	}
	sendAll(t, good, q)

	bad := newClient("WRONGKEY")
	if err := bad.Handshake(); err == nil {
		t.Fatal("handshake with a wrong key succeeded")
	}
	before := len(q.snapshot())
	// The server closed the connection: sending fails or is never stored.
	bad.SendRaw([]byte{0x92})
	time.Sleep(100 * time.Millisecond)
	if n := len(q.snapshot()); n != before {
		t.Fatalf("%d events stored after a refused handshake", n-before)
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := serverCert(t)
	addr, q := start(t, config.ForwardInput{
		TLS:      &config.TLS{Enabled: true, CertFile: certFile, KeyFile: keyFile},
		Security: &config.Security{SelfHostname: "srv", SharedKey: "KEY"},
	})
	c := client.New(client.ConnectionOptions{
		Factory: &client.ConnFactory{Address: addr, Timeout: 3 * time.Second,
			TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}},
		RequireAck:        true,
		ConnectionTimeout: 5 * time.Second,
		AuthInfo:          client.AuthInfo{SharedKey: []byte("KEY")},
	})
	c.Hostname = "cli"
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	sendAll(t, c, q)
}

func serverCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, pool
}

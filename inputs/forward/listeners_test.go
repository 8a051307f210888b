package forward

import (
	"bytes"
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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, server bool) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "peer"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := &testPKI{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server.key"),
		pool: x509.NewCertPool(),
	}
	p.pool.AddCert(ca)
	os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	sc, sk := issue(2, true)
	os.WriteFile(p.certFile, sc, 0o600)
	os.WriteFile(p.keyFile, sk, 0o600)
	cc, ck := issue(3, false)
	if p.client, err = tls.X509KeyPair(cc, ck); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name       string
		clientAuth bool
		clientCert bool
		ok         bool
	}{
		{"server only", false, false, true},
		{"client auth with certificate", true, true, true},
		{"client auth without certificate", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsCfg := &config.TLS{Enabled: true, CertFile: pki.certFile, KeyFile: pki.keyFile}
			if tc.clientAuth {
				tlsCfg.CAFile, tlsCfg.ClientAuth = pki.caFile, true
			}
			s := startServer(t, config.ForwardInput{TLS: tlsCfg, Security: &config.Security{SelfHostname: "srv", SharedKey: "KEY"}}, nil)
			cc := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
			if tc.clientCert {
				cc.Certificates = []tls.Certificate{pki.client}
			}
			c, err := tls.Dial("tcp", s.addr, cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !tc.ok {
				// TLS 1.3: the refusal shows on the first read.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err == nil {
					t.Fatal("server accepted a client without certificate")
				}
				// The server counts the failure after sending its alert.
				var n uint64
				for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
					if n = s.counter(`sluice_input_handshake_failures_total{input="fw"}`); n == 1 {
						break
					}
				}
				if n != 1 {
					t.Fatalf("handshake failures %d", n)
				}
				return
			}
			// The Forward handshake runs inside TLS.
			if _, pong := clientHandshake(t, c, "cli", "KEY", "", ""); !pong.OK {
				t.Fatalf("PONG %+v", pong)
			}
			c.Write(message("app", 1700000000, rec("log", "secret"), "c1"))
			if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
				t.Fatalf("ack %x", got)
			}
		})
	}
	t.Run("plain client refused", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{TLS: &config.TLS{Enabled: true, CertFile: pki.certFile, KeyFile: pki.keyFile}}, nil)
		c := s.dial(t)
		c.Write(message("app", 1700000000, rec("log", "x"), "c1"))
		got := readAll(t, c)
		if bytes.Contains(got, ack("c1")) {
			t.Fatal("plain-text request acked on a TLS port")
		}
		if n := len(s.q.snapshot()); n != 0 {
			t.Fatalf("%d events", n)
		}
	})
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fluent.sock")
	// A stale socket left by a killed agent.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("stale socket not left behind")
	}
	mode := uint32(0o660)
	s := startServer(t, config.ForwardInput{Unix: path, UnixMode: &mode}, nil)
	if s.in.Addr() != nil {
		t.Fatalf("Addr %v with TCP disabled", s.in.Addr())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(message("app", 1700000000, rec("log", "via unix"), "c1"))
	if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
		t.Fatalf("ack %x", got)
	}

	// A second input on the same live socket is refused.
	in2, _ := newInput(t, config.ForwardInput{Unix: path}, &fakeQueue{})
	if err := in2.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("second Run: %v", err)
	}
	// A regular file is never deleted.
	file := filepath.Join(dir, "regular")
	os.WriteFile(file, []byte("keep"), 0o600)
	in3, _ := newInput(t, config.ForwardInput{Unix: file}, &fakeQueue{})
	if err := in3.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file touched")
	}
	s.stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after stop: %v", err)
	}
}

func TestUDPHeartbeat(t *testing.T) {
	s := startServer(t, config.ForwardInput{}, nil)
	c, err := net.Dial("udp", s.addr) // same port number as TCP
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 16)
	n, err := c.Read(b)
	if err != nil || n != 1 || b[0] != 0 {
		t.Fatalf("heartbeat reply %x, %v", b[:n], err)
	}
}

// TestReadyFast: the port accepts within 100 ms of Run, whatever the
// outputs do (the queue here blocks every Append).
func TestReadyFast(t *testing.T) {
	q := &fakeQueue{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	in, set := newInput(t, config.ForwardInput{Listen: "127.0.0.1:0"}, q)
	start := time.Now()
	s := runServer(t, in, q, set)
	c, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("ready after %s", d)
	}
}

// TestUnixSocketDefaultModeAndGroup: with no unix_mode the socket is 0660
// (not world-writable), and unix_group (a name or a gid) sets its group.
func TestUnixSocketDefaultModeAndGroup(t *testing.T) {
	gid := os.Getgid()
	for _, group := range []string{"", strconv.Itoa(gid)} {
		path := filepath.Join(t.TempDir(), "fluent.sock")
		s := startServer(t, config.ForwardInput{Unix: path, UnixGroup: group}, nil)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o660 {
			t.Fatalf("group %q: socket %v mode %v, want 0660", group, err, fi.Mode())
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid {
			t.Fatalf("group %q: socket gid %d, want %d", group, st.Gid, gid)
		}
		s.stop()
	}
	in, _ := newInput(t, config.ForwardInput{Unix: filepath.Join(t.TempDir(), "x.sock"), UnixGroup: "no-such-group-sluice"}, &fakeQueue{})
	if err := in.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "no-such-group-sluice") {
		t.Fatalf("unknown group: %v", err)
	}
}

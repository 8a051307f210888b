package loggertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/forward"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

func TestMain(m *testing.M) {
	// fluent-logger-golang's async sender and reconnect goroutines end with
	// Close; nothing may be left behind.
	goleak.VerifyTestMain(m)
}

type event struct {
	tag    string
	time   int64
	record map[string]any
}

// memQueue stores decoded events.
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

func (q *memQueue) wait(t *testing.T, n int) []event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		ev := append([]event(nil), q.events...)
		q.mu.Unlock()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events, want %d", len(ev), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start runs a forward input and returns it with its queue.
func start(t *testing.T, cfg config.ForwardInput) (*forward.Input, *memQueue) {
	t.Helper()
	q := &memQueue{}
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"q"}}}, "",
		[]pipeline.OutputQueue{{ID: "q", Queue: q}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := forward.New("fw", cfg, r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	if cfg.Listen != "" {
		in.Addr()
	} else {
		waitSocket(t, cfg.Unix)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return in, q
}

func waitSocket(t *testing.T, path string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("unix socket not ready")
		}
		time.Sleep(time.Millisecond)
	}
}

// dockerConfig is how Docker's driver configures fluent-logger-golang
// (moby daemon/logger/fluentd), with the given options.
func dockerConfig(ack, subSecond, async bool) fluent.Config {
	return fluent.Config{
		Timeout:            3 * time.Second,
		RetryWait:          100,
		MaxRetry:           3,
		Async:              async,
		ForceStopAsyncSend: false,
		SubSecondPrecision: subSecond,
		RequestAck:         ack,
		ReadTimeout:        5 * time.Second,
		WriteTimeout:       5 * time.Second,
	}
}

const cid = "3b9e55d0c2aabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// dockerLine is the record Docker's driver posts for one line.
func dockerLine(source, log string, extra ...string) map[string]string {
	m := map[string]string{"container_id": cid, "container_name": "/web", "source": source, "log": log}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// TestDockerDriverModes posts numbered lines with every combination of the
// options Docker exposes, over TCP and the unix socket, and checks every
// line arrives once, in order, in the docker input's record shape.
func TestDockerDriverModes(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fluent.sock")
	in, queue := start(t, config.ForwardInput{Listen: "127.0.0.1:0", Unix: sock})
	host, port, _ := net.SplitHostPort(in.Addr().String())
	p, _ := strconv.Atoi(port)
	const n = 200
	for _, tc := range []struct {
		network        string
		ack, sub, asyn bool
	}{
		{"unix", true, true, false},
		{"unix", false, true, true},
		{"tcp", false, false, false},
		{"tcp", true, false, false},
		{"tcp", true, true, true},
	} {
		name := fmt.Sprintf("%s/ack=%v/subsecond=%v/async=%v", tc.network, tc.ack, tc.sub, tc.asyn)
		t.Run(name, func(t *testing.T) {
			cfg := dockerConfig(tc.ack, tc.sub, tc.asyn)
			if tc.network == "unix" {
				cfg.FluentNetwork, cfg.FluentSocketPath = "unix", sock
			} else {
				cfg.FluentNetwork, cfg.FluentHost, cfg.FluentPort = "tcp", host, p
			}
			queue.mu.Lock()
			before := len(queue.events)
			queue.mu.Unlock()
			f, err := fluent.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			base := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)
			for i := range n {
				src := "stdout"
				if i%3 == 0 {
					src = "stderr"
				}
				if err := f.PostWithTime(name, base.Add(time.Duration(i)*time.Millisecond),
					dockerLine(src, fmt.Sprintf("line %d", i), "team", "pay")); err != nil {
					t.Fatalf("post %d: %v", i, err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got := queue.wait(t, before+n)[before:]
			if len(got) != n {
				t.Fatalf("%d events, want %d", len(got), n)
			}
			for i, e := range got {
				wantT := base.Add(time.Duration(i) * time.Millisecond)
				if !tc.sub {
					wantT = wantT.Truncate(time.Second)
				}
				if e.tag != name || e.time != wantT.UnixNano() {
					t.Fatalf("event %d: tag %q time %d, want %d", i, e.tag, e.time, wantT.UnixNano())
				}
				if e.record["log"] != fmt.Sprintf("line %d", i) || e.record["container_name"] != "web" ||
					e.record["container_id"] != cid {
					t.Fatalf("event %d: %v", i, e.record)
				}
				if l, ok := e.record["labels"].(map[string]any); !ok || l["team"] != "pay" {
					t.Fatalf("event %d labels: %v", i, e.record["labels"])
				}
				if _, ok := e.record["source"]; ok {
					t.Fatalf("event %d keeps source: %v", i, e.record)
				}
			}
		})
	}
}

// TestDockerPartialLines posts a 40000-byte line the way Docker's copier
// splits it (16 KiB fragments with partial metadata): without ack it is
// stored joined; with ack each fragment is stored (and acked) on its own.
func TestDockerPartialLines(t *testing.T) {
	in, q := start(t, config.ForwardInput{Listen: "127.0.0.1:0"})
	host, port, _ := net.SplitHostPort(in.Addr().String())
	p, _ := strconv.Atoi(port)
	line := strings.Repeat("0123456789abcdef", 2500)
	for _, ack := range []bool{false, true} {
		t.Run(fmt.Sprint("ack=", ack), func(t *testing.T) {
			q.mu.Lock()
			before := len(q.events)
			q.mu.Unlock()
			cfg := dockerConfig(ack, true, false)
			cfg.FluentNetwork, cfg.FluentHost, cfg.FluentPort = "tcp", host, p
			f, err := fluent.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Now()
			pid := strings.Repeat("ab", 32)
			for i, off := 0, 0; off < len(line); i++ {
				end := min(off+16384, len(line))
				rec := dockerLine("stdout", line[off:end], "partial_message", "true", "partial_id", pid,
					"partial_ordinal", strconv.Itoa(i+1), "partial_last", strconv.FormatBool(end == len(line)))
				if err := f.PostWithTime("web", ts, rec); err != nil {
					t.Fatal(err)
				}
				off = end
			}
			f.Close()
			if !ack {
				got := q.wait(t, before+1)[before:]
				if len(got) != 1 || got[0].record["log"] != line || got[0].time != ts.UnixNano() {
					t.Fatalf("joined: %d events, log of %d bytes", len(got), len(fmt.Sprint(got[0].record["log"])))
				}
				return
			}
			got := q.wait(t, before+3)[before:]
			var joined bytes.Buffer
			for i, e := range got {
				if e.record["partial_ordinal"] != strconv.Itoa(i+1) || e.record["partial_id"] != pid {
					t.Fatalf("fragment %d: %v", i, e.record["partial_ordinal"])
				}
				joined.WriteString(e.record["log"].(string))
			}
			if joined.String() != line {
				t.Fatal("fragments do not join to the line")
			}
		})
	}
}

// TestDockerDriverTLS: fluent-logger-golang's "tls" network (the only TLS
// knob Docker has is the scheme; it skips verification here because the
// test CA is not in the system roots).
func TestDockerDriverTLS(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	in, q := start(t, config.ForwardInput{Listen: "127.0.0.1:0",
		TLS: &config.TLS{Enabled: true, CertFile: certFile, KeyFile: keyFile}})
	host, port, _ := net.SplitHostPort(in.Addr().String())
	p, _ := strconv.Atoi(port)
	cfg := dockerConfig(true, true, false)
	cfg.FluentNetwork, cfg.FluentHost, cfg.FluentPort, cfg.TlsInsecureSkipVerify = "tls", host, p, true
	f, err := fluent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := f.Post("tls", dockerLine("stdout", fmt.Sprint("tls ", i))); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if got := q.wait(t, 20); got[19].record["log"] != "tls 19" {
		t.Fatalf("last %v", got[19].record)
	}
}

func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

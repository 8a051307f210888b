package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/agent"
	"github.com/sluice-agent/sluice/config"
)

// TestHealthCommand: `agent health` exits 0 when the agent's /healthz
// answers 200, 1 on 503 (printing the agent's answer) and when nothing
// listens; --ready asks /readyz; --config takes the config's
// metrics_addr.
func TestHealthCommand(t *testing.T) {
	healthy, ready := true, false
	mux := http.NewServeMux()
	answer := func(ok bool, w http.ResponseWriter) {
		if ok {
			fmt.Fprint(w, "ok\n")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"unavailable","problems":[{"component":"input x","state":"failed"}]}`)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { answer(healthy, w) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { answer(ready, w) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)

	cfgFile := filepath.Join(t.TempDir(), "agent.yml")
	os.WriteFile(cfgFile, []byte("metrics_addr: 0.0.0.0:"+port+"\ninputs: [{id: f, type: forward}]\noutputs: [{id: o, type: stdout}]\n"), 0o644)
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()

	for _, c := range []struct {
		name    string
		healthy bool
		args    []string
		code    int
		stderr  string
	}{
		{"healthy", true, []string{"--addr", addr}, 0, ""},
		{"unhealthy", false, []string{"--addr", addr}, 1, "input x"},
		{"not ready", true, []string{"--addr", addr, "--ready"}, 1, "/readyz: 503"},
		{"config's metrics_addr", true, []string{"--config", cfgFile}, 0, ""},
		{"nothing listens", true, []string{"--addr", dead, "--timeout", "2s"}, 1, "connection refused"},
		{"bad flag", true, []string{"--nope"}, 2, ""},
	} {
		healthy = c.healthy
		var out, errb bytes.Buffer
		code := run(append([]string{"health"}, c.args...), &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.stderr) {
			t.Errorf("%s: code %d, stderr %q; want %d and %q", c.name, code, errb.String(), c.code, c.stderr)
		}
		if c.code == 0 && out.String() != "ok\n" {
			t.Errorf("%s: stdout %q", c.name, out.String())
		}
	}
}

// TestHealthCommandAgainstAgent: `agent health` and `agent health
// --ready` against a real running agent.
func TestHealthCommandAgainstAgent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf("data_dir: %s\nmetrics_addr: %s\ninputs: [{id: f, type: forward, listen: \"127.0.0.1:0\"}]\noutputs: [{id: o, type: file, path: %s}]\n",
		dir, metricsAddr, filepath.Join(dir, "out.jsonl"))), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out, errb bytes.Buffer
		if run([]string{"health", "--addr", metricsAddr, "--ready"}, &out, &errb) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never ready: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"health", "--addr", metricsAddr}, &out, &errb); code != 0 || out.String() != "ok\n" {
		t.Errorf("health: code %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	fwdin "github.com/sluice-agent/sluice/inputs/forward"
	"github.com/sluice-agent/sluice/internal/wire"
)

// freeAddr returns a loopback address nothing listens on (bound, then
// closed).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// get GETs http://addr/path and returns the status code and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func getStatus(t *testing.T, addr string) Status {
	t.Helper()
	code, body := get(t, addr, "/status")
	if code != http.StatusOK {
		t.Fatalf("/status: %d %s", code, body)
	}
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	return s
}

func outputOf(t *testing.T, s Status, id string) OutputStatus {
	t.Helper()
	for _, o := range s.Outputs {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("no output %s in %+v", id, s.Outputs)
	return OutputStatus{}
}

// sendForward sends n events as one PackedForward request with a chunk id
// and waits for its ack (the events are then on disk in every queue).
// Their time is 30 s ago, so the oldest unacked event is that old.
func sendForward(t *testing.T, addr string, n int, chunk string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var entries []byte
	ts := time.Now().Add(-30 * time.Second).UnixNano()
	for i := range n {
		rec := msgp.AppendMapHeader(nil, 1)
		rec = msgp.AppendString(rec, "log")
		rec = msgp.AppendString(rec, fmt.Sprintf("line %s-%d", chunk, i))
		entries = wire.AppendEntry(entries, ts, rec)
	}
	req := wire.AppendPackedForward(nil, []byte("app.test"), entries, wire.Options{Chunk: chunk, Size: n})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	got := 0
	for {
		m, err := c.Read(buf[got:])
		if err != nil {
			t.Fatalf("waiting for the ack of %s: %v", chunk, err)
		}
		got += m
		if id, _, err := wire.ParseAck(buf[:got]); err == nil {
			if string(id) != chunk {
				t.Fatalf("ack %q, want %q", id, chunk)
			}
			return
		}
	}
}

// waitFor polls cond every 20 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStatusEndpoints runs an agent with a forward input and two outputs,
// one of them (dead) pointing at a server that does not exist: the agent
// is alive and ready, /status shows the dead output's last error, its
// queue growing and the age of its oldest event, and no secret; a stopped
// output leaves it healthy; once the shutdown begins /readyz answers 503
// while /healthz still answers 200.
func TestStatusEndpoints(t *testing.T) {
	dir := t.TempDir()
	metricsAddr, dead := freeAddr(t), freeAddr(t)
	yml := fmt.Sprintf(`data_dir: %s
metrics_addr: %s
shutdown_grace: 3s
inputs:
  - {id: fwd, type: forward, listen: "127.0.0.1:0"}
outputs:
  - {id: live, type: file, path: %s, buffer: {fsync_interval: 50ms}}
  - id: dead
    type: forward
    servers: [{address: "%s", username: alice, password: "pw-never-shown"}]
    connect_timeout: 200ms
    heartbeat_interval: 100ms
    security: {self_hostname: agent, shared_key: "key-never-shown"}
routes:
  - {match: "**", outputs: [live, dead]}
`, filepath.Join(dir, "data"), metricsAddr, filepath.Join(dir, "out.jsonl"), dead)
	cfg, err := config.Parse([]byte(yml), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.SetVersion("v-test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// The forward input's bound address, once it listens.
	var in *fwdin.Input
	waitFor(t, "the forward input", func() bool {
		in, _ = a.sup.state(ref{"input", "fwd"}).c.(*fwdin.Input)
		return in != nil
	})
	fwdAddr := in.Addr().String()
	waitFor(t, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if code, body := get(t, metricsAddr, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	sendForward(t, fwdAddr, 5, "c1")
	var first OutputStatus
	waitFor(t, "dead's last error and queue", func() bool {
		first = outputOf(t, getStatus(t, metricsAddr), "dead")
		return first.LastError != "" && first.Queue.PendingEvents >= 5
	})
	sendForward(t, fwdAddr, 7, "c2")
	s := getStatus(t, metricsAddr)
	d := outputOf(t, s, "dead")
	if d.State != stateRunning || d.Type != "forward" || d.LastErrorAt == nil || !strings.Contains(d.LastError, dead) {
		t.Errorf("dead output: state %s type %s last error %q at %v", d.State, d.Type, d.LastError, d.LastErrorAt)
	}
	if d.Queue.PendingEvents != first.Queue.PendingEvents+7 || d.Queue.PendingChunks <= first.Queue.PendingChunks || d.Queue.Bytes == 0 {
		t.Errorf("dead queue did not grow: %+v then %+v", first.Queue, d.Queue)
	}
	if d.Queue.OldestAgeSeconds < 29 || d.Queue.OldestEventTime == nil {
		t.Errorf("dead queue oldest age %.1fs (%v), want about 30s", d.Queue.OldestAgeSeconds, d.Queue.OldestEventTime)
	}
	if !s.Healthy || !s.Ready || s.Agent.Version != "v-test" || s.Agent.UptimeSeconds <= 0 ||
		s.Agent.ConfigFile != "t.yml" || s.Agent.DataDir != cfg.DataDir {
		t.Errorf("agent: healthy %v ready %v %+v", s.Healthy, s.Ready, s.Agent)
	}
	if len(s.Inputs) != 1 || s.Inputs[0].State != stateRunning || !s.Inputs[0].Ready || s.Inputs[0].Detail == nil {
		t.Errorf("inputs %+v", s.Inputs)
	}
	// The live output delivers: its queue empties.
	waitFor(t, "live output's queue to empty", func() bool {
		return outputOf(t, getStatus(t, metricsAddr), "live").Queue.PendingChunks == 0
	})
	_, body := get(t, metricsAddr, "/status")
	if testing.Verbose() {
		t.Logf("/status:\n%s", body)
	}
	for _, secret := range []string{"pw-never-shown", "key-never-shown", "alice"} {
		if strings.Contains(body, secret) {
			t.Errorf("/status holds %q:\n%s", secret, body)
		}
	}
	for _, want := range []string{`"servers"`, `"state": "down"`, `"delivery"`, `"listeners"`, `"sources"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/status lacks %s:\n%s", want, body)
		}
	}

	// Stopped on purpose: still healthy and ready; reported stopped.
	if err := a.StopOutput("dead"); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, metricsAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with an output stopped: %d %s", code, body)
	}
	if d := outputOf(t, getStatus(t, metricsAddr), "dead"); d.State != stateStopped || d.Queue.PendingEvents == 0 {
		t.Errorf("stopped output: %+v", d)
	}
	if err := a.StartOutput("dead"); err != nil {
		t.Fatal(err)
	}

	// Shutdown: readiness is down from the start of it (the dead output is
	// not waited for long: it keeps failing).
	cancel()
	waitFor(t, "/readyz 503 after shutdown began", func() bool {
		code, body := get(t, metricsAddr, "/readyz")
		if code == http.StatusServiceUnavailable && !strings.Contains(body, "shutting down") {
			t.Fatalf("/readyz: %s", body)
		}
		return code == http.StatusServiceUnavailable
	})
	if code, body := get(t, metricsAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the shutdown: %d %s", code, body)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil
}

// failing is a component whose Run returns an error at once.
type failing struct{}

func (failing) Run(context.Context) error { return errors.New("disk on fire") }

// TestHealthzComponentFailed: a component whose Run returned an error by
// itself makes /healthz answer 503 naming it (and /readyz too, being an
// input); one that is running does not.
func TestHealthzComponentFailed(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte("data_dir: "+dir+"\ninputs:\n  - {id: boom, type: forward, listen: \"127.0.0.1:0\"}\noutputs:\n  - {id: o, type: stdout}\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeQueues()
	mux := http.NewServeMux()
	a.handleStatus(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	if code, body := get(t, addr, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz before anything failed: %d %s", code, body)
	}
	// In place of the input: a component that fails.
	r := ref{"input", "boom"}
	if err := a.sup.start(r, metrics.NewSet(), failing{}); err != nil {
		t.Fatal(err)
	}
	<-a.sup.exited(r)
	<-a.sup.failed // what Run would act on by shutting down

	code, body := get(t, addr, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"input boom"`) ||
		!strings.Contains(body, `"failed"`) || !strings.Contains(body, "disk on fire") {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "input boom") {
		t.Errorf("/readyz: %d %s", code, body)
	}
	// Stopping it (as the shutdown does) is planned: healthy again.
	if err := a.sup.stop(r); err != nil {
		t.Errorf("stop: %v", err)
	}
	if code, body := get(t, addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz once stopped: %d %s", code, body)
	}
}

// TestRedact: URL userinfo never reaches /status.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		`post "https://bob:hunter2@es:9200/_bulk": EOF`: `post "https://es:9200/_bulk": EOF`,
		"dial tcp 10.0.0.1:24224: connection refused":   "dial tcp 10.0.0.1:24224: connection refused",
		"http://token@a/ and tcp://u:p@b:1":             "http://a/ and tcp://b:1",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-agent/sluice/agent"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// fakeStatus is the /status of fakeAgent.
const fakeStatus = `{
  "agent": {"version": "1.2.3", "uptime_seconds": 3725, "data_dir": "/d"},
  "healthy": true, "ready": false,
  "health_problems": [],
  "readiness_problems": [{"component": "input tail", "state": "not accepting yet"}],
  "inputs": [
    {"id": "fwd", "type": "forward", "state": "running", "ready": true, "detail": {"connections": 3}},
    {"id": "tail", "type": "docker", "state": "running", "ready": false, "detail": {"files_open": 12, "lag_bytes": 3072}}
  ],
  "outputs": [
    {"id": "app", "type": "forward", "state": "running",
     "queue": {"open": true, "bytes": 2097152, "pending_chunks": 3, "pending_events": 1200,
               "oldest_event_time": "2026-03-04T05:06:07Z", "oldest_age_seconds": 75.4},
     "last_error": "server agg:24224: connect: connection refused", "last_error_at": "%s",
     "detail": {"servers": [
       {"address": "agg:24224", "state": "down", "since": "%s", "chunks_sent": 10, "chunks_acked": 8, "connection_failures": 4},
       {"address": "spare:24224", "state": "up", "standby": true, "chunks_sent": 0, "chunks_acked": 0, "connection_failures": 0}
     ]}},
    {"id": "s3", "type": "s3", "state": "failed", "error": "boom", "queue": {"open": true, "bytes": 0}}
  ]
}`

// fakeMetrics are the counters of fakeAgent after elapsed seconds: the
// rates are 100/s in for fwd and app, 40/s out of app, 2/s retried.
func fakeMetrics(elapsed float64) string {
	return fmt.Sprintf(`# TYPE x counter
sluice_input_events_total{input="fwd"} %.0f
sluice_input_lines_total{input="tail"} 50
sluice_buffer_appended_events_total{output="app"} %.0f
sluice_buffer_settled_events_total{output="app",status="delivered"} %.0f
sluice_buffer_settled_events_total{output="app",status="dropped"} 5
sluice_output_retried_events_total{output="app"} %.0f
sluice_output_dead_lettered_events_total{output="app",reason="rejected"} 6
sluice_buffer_dropped_events_total{output="app"} 7
sluice_buffer_dropped_events_total{output="app.deadletter"} 1
sluice_buffer_discarded_events_total{output="app",reason="max_retries"} 5
sluice_events_unrouted_total 3
sluice_output_request_duration_seconds_bucket{output="app",vmrange="1.000e-03...1.136e-03"} 4
`, 100*elapsed, 100*elapsed, 40*elapsed, 2*elapsed)
}

// fakeAgent serves fakeStatus and fakeMetrics; times are relative to now.
func fakeAgent(t *testing.T) string {
	start := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, fakeStatus, time.Now().Add(-90*time.Second).Format(time.RFC3339Nano), start.Add(-10*time.Minute).Format(time.RFC3339Nano))
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, fakeMetrics(time.Since(start).Seconds()))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestTopRender: one frame from two samples a second apart, exactly.
func TestTopRender(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 7, 22, 0, time.UTC)
	sample := func(elapsed float64) *topSample {
		var st agent.Status
		doc := fmt.Sprintf(fakeStatus, at.Add(-90*time.Second).Format(time.RFC3339Nano), at.Add(-10*time.Minute).Format(time.RFC3339Nano))
		if err := json.Unmarshal([]byte(doc), &st); err != nil {
			t.Fatal(err)
		}
		return &topSample{at: at.Add(time.Duration(elapsed * float64(time.Second))), status: st, series: parseMetrics(strings.NewReader(fakeMetrics(elapsed)))}
	}
	prev, cur := sample(10), sample(12)
	cur.at = at
	prev.at = at.Add(-2 * time.Second)
	got := strings.Join(renderTop(cur, prev, "http://127.0.0.1:2020", time.Second), "\n")
	want := `sluice 1.2.3  up 1h2m5s  healthy  NOT READY  127.0.0.1:2020  every 1s  05:07:22
problem: input tail not accepting yet

INPUT  TYPE     STATE     EVENTS/S  EVENTS  DETAIL
fwd    forward  running   100.0     1200    3 connections
tail   docker   starting  0.0       50      12 files open, lag 3.0KiB

OUTPUT  TYPE     STATE    IN/S   OUT/S  QUEUED  BYTES   OLDEST  RETRIED  DEAD-LETTERED
app     forward  running  100.0  40.0   1200    2.0MiB  1m15s   24       6
s3      s3       failed   0.0    0.0    0       0B      -       0        0

SERVER       OUTPUT  STATE         FOR    CHUNKS SENT  ACKED  CONNECT FAILURES
agg:24224    app     down          10m0s  10           8      4
spare:24224  app     up (standby)  -      0            0      0

DROPPED  REASON            EVENTS  EVENTS/S
-        unrouted          3       0.0
app      buffer_full       7       0.0
app      dead_letter_full  1       0.0
app      max_retries       5       0.0

LAST ERRORS
app: 1m30s ago: server agg:24224: connect: connection refused
s3: failed: boom`
	if got != want {
		t.Errorf("frame:\n%s\nwant:\n%s", got, want)
	}
	// The first frame has no rates yet.
	first := renderTop(cur, nil, "http://127.0.0.1:2020", time.Second)
	if first[4] != "fwd    forward  running   -         1200    3 connections" {
		t.Errorf("first frame input row %q", first[4])
	}
}

// TestTopAgainstAgent: `agent top --iterations 2` (plain frames, stdout
// is not a terminal) against a real agent that received 25 events.
func TestTopAgainstAgent(t *testing.T) {
	addr, fwdPort, stop := startAgent(t, "")
	defer stop()
	send(t, fwdPort, "app.x", 0, 25)
	waitFor(t, func() bool {
		code, out, _ := runCmd("top", "--addr", addr, "--iterations", "1")
		return code == 0 && regexp.MustCompile(`(?m)^app +file +running +- +- +0 `).MatchString(out)
	})
	code, out, errs := runCmd("top", "--addr", addr, "--iterations", "2", "--interval", "200ms")
	if code != 0 {
		t.Fatalf("top: code %d %s", code, errs)
	}
	frames := regexp.MustCompile(`(?m)^sluice `).Split(out, -1)[1:]
	if len(frames) != 2 {
		t.Fatalf("%d frames:\n%s", len(frames), out)
	}
	for _, re := range []string{
		`^test  up \d+s  healthy  ready  ` + regexp.QuoteMeta(addr) + `  every 200ms  \d\d:\d\d:\d\d\n`,
		`\nfwd +forward +running +0\.0 +25 +0 connections\n`,
		`\napp +file +running +0\.0 +0\.0 +0 +\S+ +- +0 +0\n`,
	} {
		if !regexp.MustCompile(re).MatchString(frames[1]) {
			t.Errorf("second frame does not match %s:\n%s", re, frames[1])
		}
	}
	if code, out, _ := runCmd("top", "--addr", "127.0.0.1:1", "--iterations", "1"); code != 1 || !strings.Contains(out, "connection refused (retrying every 1s)") {
		t.Errorf("nothing listening: code %d %s", code, out)
	}
}

// TestTopUnderTmux runs the built binary in a tmux pane against
// fakeAgent and reads the screen: it refreshes in place (the alternate
// screen, one frame at the top), shows the rates from the second frame on,
// and restores the screen on Ctrl-C. Without tmux it skips, unless
// SLUICE_REQUIRE_TMUX is set (CI).
func TestTopUnderTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("SLUICE_REQUIRE_TMUX") != "" {
			t.Fatal("tmux is required (SLUICE_REQUIRE_TMUX) but not installed: apt-get install -y tmux")
		}
		t.Skip("tmux not installed (apt-get install -y tmux)")
	}
	if testing.Short() {
		t.Skip("builds the agent")
	}
	dir := t.TempDir()
	bin, err := agentproc.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	addr := fakeAgent(t)
	sock := fmt.Sprintf("sluice-top-%d", os.Getpid())
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-L", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", "top", "-x", "132", "-y", "40", "sh")
	defer exec.Command("tmux", "-L", sock, "kill-server").Run()
	tmux("set-option", "-t", "top", "remain-on-exit", "on")
	tmux("respawn-pane", "-k", "-t", "top", bin+" top --addr "+addr+" --interval 300ms")
	var screen string
	waitFor(t, func() bool {
		screen = tmux("capture-pane", "-p", "-t", "top")
		return regexp.MustCompile(`(?m)^fwd +forward +running +\d+\.\d`).MatchString(screen)
	})
	lines := strings.Split(screen, "\n")
	for i, re := range []string{
		`^sluice 1\.2\.3  up 1h2m5s  healthy  NOT READY  ` + regexp.QuoteMeta(addr) + `  every 300ms  \d\d:\d\d:\d\d$`,
		`^problem: input tail not accepting yet$`,
		`^$`,
		`^INPUT  TYPE     STATE     EVENTS/S  EVENTS  DETAIL$`,
		`^fwd    forward  running   \d+\.\d +\d+ +3 connections$`,
		`^tail   docker   starting  0\.0 +50 +12 files open, lag 3\.0KiB$`,
		`^$`,
		`^OUTPUT  TYPE     STATE    IN/S +OUT/S +QUEUED  BYTES   OLDEST  RETRIED  DEAD-LETTERED$`,
		`^app     forward  running  \d+\.\d +\d+\.\d +1200 +2\.0MiB  1m15s +\d+ +6$`,
		`^s3      s3       failed   0\.0 +0\.0 +0 +0B +- +0 +0$`,
		`^$`,
		`^SERVER       OUTPUT  STATE         FOR    CHUNKS SENT  ACKED  CONNECT FAILURES$`,
		`^agg:24224    app     down          10m\ds  10           8      4$`,
		`^spare:24224  app     up \(standby\)  -      0            0      0$`,
		`^$`,
		`^DROPPED  REASON            EVENTS  EVENTS/S$`,
		`^-        unrouted          3       0\.0$`,
		`^app      buffer_full       7       0\.0$`,
		`^app      dead_letter_full  1       0\.0$`,
		`^app      max_retries       5       0\.0$`,
		`^$`,
		`^LAST ERRORS$`,
		`^app: 1m(29|30)s ago: server agg:24224: connect: connection refused$`,
		`^s3: failed: boom$`,
		`^$`,
	} {
		if i >= len(lines) || !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Fatalf("screen line %d does not match %s:\n%s", i, re, screen)
		}
	}
	// The rates are about 100, 100 and 40 per second.
	m := regexp.MustCompile(`(?m)^app     forward  running  (\S+) +(\S+) `).FindStringSubmatch(screen)
	in, _ := strconv.ParseFloat(m[1], 64)
	out, _ := strconv.ParseFloat(m[2], 64)
	// (±30%: the fake's counters follow the wall clock, top's 300 ms
	// samples jitter on a loaded machine.)
	if in < 70 || in > 130 || out < 28 || out > 52 {
		t.Errorf("rates in %v out %v, want about 100 and 40", in, out)
	}
	// In place: a later frame replaces this one (same first line, at the
	// top; nothing scrolled).
	first := lines[0]
	waitFor(t, func() bool {
		s := tmux("capture-pane", "-p", "-t", "top")
		return strings.Split(s, "\n")[0] != first
	})
	if hist := strings.TrimSpace(tmux("display-message", "-p", "-t", "top", "#{history_size} #{alternate_on}")); hist != "0 1" {
		t.Errorf("history size and alternate screen %q, want \"0 1\"", hist)
	}
	tmux("send-keys", "-t", "top", "C-c")
	waitFor(t, func() bool {
		return strings.TrimSpace(tmux("display-message", "-p", "-t", "top", "#{pane_dead} #{pane_dead_status}")) == "1 0"
	})
	if s := tmux("display-message", "-p", "-t", "top", "#{alternate_on}"); strings.TrimSpace(s) != "0" {
		t.Errorf("alternate screen still on after exit")
	}
}

// startAgent runs an agent in-process with a forward input (on a port it
// returns) and a file output "app" (plus "web" when extra names it as a
// second output line); it returns the metrics address.
// extra is more YAML: output list items, then top-level keys.
func startAgent(t *testing.T, extra string) (addr string, fwdPort int, stop func()) {
	t.Helper()
	addr, fwdPort, _, stop = startAgentConfig(t, extra)
	return addr, fwdPort, stop
}

// startAgentConfig is startAgent that also returns the config file.
func startAgentConfig(t *testing.T, extra string) (addr string, fwdPort int, cfgFile string, stop func()) {
	t.Helper()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addr = free()
	fwd := free()
	_, p, _ := net.SplitHostPort(fwd)
	fwdPort, _ = strconv.Atoi(p)
	dir := t.TempDir()
	doc := fmt.Sprintf(`data_dir: %s
metrics_addr: %s
inputs: [{id: fwd, type: forward, listen: %q}]
outputs:
  - {id: app, type: file, path: %s/app.jsonl}
%sdefault_output: app
`, dir, addr, fwd, dir, extra)
	cfgFile = filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfgFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.SetVersion("test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, func() bool { c, _, _ := runCmd("health", "--addr", addr, "--ready"); return c == 0 })
	var once sync.Once
	return addr, fwdPort, cfgFile, func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

// send posts n events {"msg": "m<i>"} for i from first on, tagged tag.
func send(t *testing.T, port int, tag string, first, n int) {
	t.Helper()
	l, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := first; i < first+n; i++ {
		if err := l.Post(tag, map[string]string{"msg": fmt.Sprintf("m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package dockertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentRestart restarts the agent while containers log through the
// fluentd driver: once with SIGTERM, once with SIGKILL, each time leaving
// it down for a few seconds. Two containers use fluentd-request-ack=true,
// two do not (one of each over TCP, one over the unix socket). It reports
// what Docker's driver did (did the container block, how long until it
// reconnected, what dockerd logged) and asserts:
//
//   - ack containers: every line delivered. Docker resends what was not
//     acked, and the agent acks only what its queue accepted, which
//     survives SIGKILL;
//   - non-ack containers: every line outside the restart windows
//     delivered. Inside a window the driver can write into a connection
//     the agent no longer reads (Docker's side; it cannot know); the loss
//     is reported.
func TestAgentRestart(t *testing.T) {
	requireDocker(t)
	e := newEnv(t, envOptions{forward: true})
	e.start()
	dockerLog := newDockerdLog()

	const (
		rate = 300  // lines per second per container (100 sequences/s)
		n    = 2600 // sequences per type: 26 s of logging
		down = 4 * time.Second
		// fast logs ten times faster, to see when Docker blocks it.
		fastRate = 10 * rate
		fastN    = 10 * n
	)
	tcp, unix := "tcp://"+e.tcpAddr, "unix://"+e.unixPath
	specs := []spec{
		{name: "ack-tcp", driver: "fluentd", logOpts: fluentd(tcp, "fluentd-request-ack=true")},
		{name: "ack-unix", driver: "fluentd", logOpts: fluentd(unix, "fluentd-request-ack=true")},
		{name: "plain-tcp", driver: "fluentd", logOpts: fluentd(tcp)},
		{name: "plain-unix", driver: "fluentd", logOpts: fluentd(unix)},
		{name: "fast-unix", driver: "fluentd", logOpts: fluentd(unix)},
	}
	rates := map[string]int{}
	progress := map[string]string{}
	x := expect{}
	for i := range specs {
		s := &specs[i]
		hostDir := filepath.Join(e.dir, s.name)
		if err := os.Mkdir(hostDir, 0o755); err != nil {
			t.Fatal(err)
		}
		progress[s.name] = filepath.Join(hostDir, "progress")
		s.mounts = []string{hostDir + ":/out"}
		r, sn := rate, n
		if s.name == "fast-unix" {
			r, sn = fastRate, fastN
		}
		rates[s.name] = r
		s.args = []string{"-n", fmt.Sprint(sn), "-rate", fmt.Sprint(r), "-progress", "/out/progress"}
		if strings.HasPrefix(s.name, "ack") {
			s.args = append(s.args, e.ackArgs(*s)...)
		}
		x.add(*s, sn)
	}
	cs := mustRun(t, len(specs), specs...)
	// Let every container log for a while with the agent up.
	waitProgress(t, progress, 300, time.Minute)

	type window struct {
		signal      string
		atSignal    map[string]int // progress when the agent was stopped
		advanced    map[string]int // progress made while it was down
		atReconnect map[string]int // progress when all 4 connections were back
		reconnect   time.Duration  // from restart to all connections back
		stop        time.Duration  // from the signal to the exit
	}
	var windows []window
	restart := func(signal string) {
		w := window{signal: signal, atSignal: readAll(progress), advanced: map[string]int{}, atReconnect: map[string]int{}}
		t0 := time.Now()
		if signal == "SIGTERM" {
			code, took, err := e.proc.Term(15 * time.Second)
			if err != nil || code != 0 {
				t.Fatalf("SIGTERM: exit %d after %v: %v", code, took, err)
			}
			w.stop = took
		} else {
			e.proc.Kill()
			w.stop = time.Since(t0)
		}
		time.Sleep(down - time.Since(t0))
		for name, p := range readAll(progress) {
			w.advanced[name] = p - w.atSignal[name]
		}
		e.start()
		t1 := time.Now()
		for e.metric(`sluice_input_connections{input="driver"}`) < float64(len(specs)) {
			if time.Since(t1) > time.Minute {
				t.Fatalf("after %s: Docker's driver did not reconnect within a minute (%v connections)",
					signal, e.metric(`sluice_input_connections{input="driver"}`))
			}
			time.Sleep(50 * time.Millisecond)
		}
		w.reconnect = time.Since(t1)
		w.atReconnect = readAll(progress)
		windows = append(windows, w)
	}
	restart("SIGTERM")
	time.Sleep(4 * time.Second)
	restart("SIGKILL")

	if err := waitExit(cs, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	ackX, plainX := expect{}, expect{}
	for src, v := range x {
		if strings.Contains(src, "-ack-") {
			ackX[src] = v
		} else {
			plainX[src] = v
		}
	}
	if !e.waitDelivered(ackX, time.Minute) {
		t.Errorf("ack containers: not everything delivered within a minute")
	}
	e.waitDelivered(plainX, 10*time.Second) // losses expected: bounded wait

	// Report what Docker's driver did.
	for _, w := range windows {
		var parts []string
		for _, s := range specs {
			free := int(down.Seconds() * float64(rates[s.name]) / 3) // sequences an unblocked container writes
			state := "kept writing"
			if w.advanced[s.name] < free*9/10 {
				state = "BLOCKED"
			}
			parts = append(parts, fmt.Sprintf("%s at %d lines/s %s (+%d of %d seqs while down, seq %d at signal, %d at reconnect)",
				s.name, rates[s.name], state, w.advanced[s.name], free, w.atSignal[s.name], w.atReconnect[s.name]))
		}
		t.Logf("%s: agent exited in %v; all %d driver connections back %v after restart; %s",
			w.signal, w.stop.Round(time.Millisecond), len(specs), w.reconnect.Round(time.Millisecond), strings.Join(parts, "; "))
	}
	if msgs := dockerLog.fluentMessages(); len(msgs) > 0 {
		t.Logf("dockerd logged %d fluent messages, e.g. %q", len(msgs), msgs[:min(len(msgs), 3)])
	} else {
		t.Logf("dockerd logged no fluent messages (%s)", dockerLog.path)
	}

	// Ack containers: nothing lost. checkDelivered asserts every source.
	// Non-ack containers: only lines inside a restart window may be lost.
	const slack = 200 // sequences still in the pipe / driver at the signal (x10 for fast)
	for _, s := range specs {
		if strings.HasPrefix(s.name, "ack") {
			continue
		}
		for _, lt := range logTypes {
			src := s.containerName() + "-" + lt
			r := e.recv[lt]
			n := x[src]
			total := r.MissingCount(src, n)
			inWindows := 0
			for _, w := range windows {
				sl := slack * rates[s.name] / rate
				lo := max(w.atSignal[s.name]-sl, 0)
				hi := min(w.atReconnect[s.name]+sl, n)
				inWindows += r.MissingCount(src, hi) - r.MissingCount(src, lo)
			}
			if total > 0 {
				t.Logf("non-ack %s: %d of %d lines lost on Docker's side inside the restart windows, first %v", src, total, n, r.Missing(src, n))
			}
			if total != inWindows {
				t.Errorf("non-ack %s: %d lines lost outside the restart windows (%d in total)", src, total-inWindows, total)
			}
		}
	}
	dups := e.checkDelivered(x, func(src string) bool { return plainX[src] > 0 })
	t.Logf("ack containers: %d lines, none lost; duplicates over all receivers %d", ackX.total(), dups)
}

// waitProgress waits until every progress file shows at least seq.
func waitProgress(t *testing.T, files map[string]string, seq int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, p := range readAll(files) {
			if p < seq {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers did not reach sequence %d within %v: %v", seq, timeout, readAll(files))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readAll(files map[string]string) map[string]int {
	out := map[string]int{}
	for name, path := range files {
		out[name] = readProgress(path)
	}
	return out
}

// dockerdLog reads what dockerd appended to its log file during a test,
// when the daemon logs to a file this test can read (best effort: only
// used for the report).
type dockerdLog struct {
	path string
	off  int64
}

func newDockerdLog() *dockerdLog {
	for _, p := range []string{"/var/log/dockerd.log", "/var/log/docker.log"} {
		if st, err := os.Stat(p); err == nil {
			return &dockerdLog{path: p, off: st.Size()}
		}
	}
	return &dockerdLog{path: "no dockerd log file found"}
}

// fluentMessages returns the fluent-logger messages dockerd logged since
// newDockerdLog (they are printed without newlines, so they are split on
// their "fluent#" prefix).
func (d *dockerdLog) fluentMessages() []string {
	f, err := os.Open(d.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	n, _ := f.ReadAt(buf, d.off)
	var out []string
	for _, part := range strings.Split(string(buf[:n]), "fluent#")[1:] {
		if i := strings.IndexAny(part, "\n"); i >= 0 {
			part = part[:i]
		}
		if i := strings.Index(part, `time="`); i >= 0 {
			part = part[:i]
		}
		out = append(out, "fluent#"+strings.TrimSpace(part))
	}
	return out
}

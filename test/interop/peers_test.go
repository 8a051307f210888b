package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Versions of the peers under the peers folder.
const (
	fluentdDirName   = "fluentd-1.14.6"
	fluentBitDirName = "fluent-bit-5.1.1"
)

// fluentdGems are the libraries Fluentd 1.14.6 loads, by require name (the
// Debian packages of .ci/run provide them).
var fluentdGems = []string{"msgpack", "cool.io", "serverengine", "sigdump", "tzinfo", "yajl", "http_parser", "strptime", "webrick", "concurrent"}

// peerSet is what was found of the peers, once per test binary.
type peerSet struct {
	dir          string
	fluentdLib   string // -I path
	fluentdBin   string
	fluentdErr   error // why Fluentd cannot run, nil if it can
	fluentBitBin string
	fluentBitErr error
}

var (
	peersOnce sync.Once
	peersHere peerSet
)

// peersDir is SLUICE_PEERS_DIR, or ../shared/peers from the repository root
// (two levels above this package's directory, the tests' working dir).
func peersDir() (string, error) {
	if d := os.Getenv("SLUICE_PEERS_DIR"); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root := filepath.Dir(filepath.Dir(wd)) // test/interop -> repo root
	return filepath.Join(filepath.Dir(root), "shared", "peers"), nil
}

func findPeers() peerSet {
	peersOnce.Do(func() {
		p := &peersHere
		dir, err := peersDir()
		if err != nil {
			p.fluentdErr, p.fluentBitErr = err, err
			return
		}
		p.dir = dir
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			err = fmt.Errorf("peers folder %s not found (set SLUICE_PEERS_DIR)", dir)
			p.fluentdErr, p.fluentBitErr = err, err
			return
		}
		p.fluentdErr = checkFluentd(p)
		p.fluentBitErr = checkFluentBit(p)
	})
	return peersHere
}

func checkFluentd(p *peerSet) error {
	p.fluentdLib = filepath.Join(p.dir, fluentdDirName, "lib")
	p.fluentdBin = filepath.Join(p.dir, fluentdDirName, "bin", "fluentd")
	if _, err := os.Stat(p.fluentdBin); err != nil {
		return fmt.Errorf("fluentd: %s missing", p.fluentdBin)
	}
	if _, err := exec.LookPath("ruby"); err != nil {
		return errors.New("fluentd: ruby is not installed (apt-get install ruby and the ruby-* packages of .ci/run)")
	}
	script := `m = []; ARGV.each { |g| begin; require g; rescue LoadError; m << g; end }; puts m.join(" "); exit(m.empty? ? 0 : 1)`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ruby", append([]string{"-e", script}, fluentdGems...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fluentd: ruby libraries missing: %s (install the Debian ruby-* packages of .ci/run)", strings.TrimSpace(string(out)))
	}
	out, err = exec.CommandContext(ctx, "ruby", "-I"+p.fluentdLib, p.fluentdBin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fluentd 1.14.6") {
		return fmt.Errorf("fluentd --version: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func checkFluentBit(p *peerSet) error {
	p.fluentBitBin = filepath.Join(p.dir, fluentBitDirName, "fluent-bit")
	if _, err := os.Stat(p.fluentBitBin); err != nil {
		return fmt.Errorf("fluent-bit: %s missing", p.fluentBitBin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.fluentBitBin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Fluent Bit v5.1.1") {
		return fmt.Errorf("fluent-bit --version: %v: %s (its runtime: apt-get install libsqlite3-0 libyaml-0-2 libssl3)", err, bytes.TrimSpace(out))
	}
	return nil
}

// unavailable skips the test, or fails it when SLUICE_REQUIRE_PEERS=1.
func unavailable(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("SLUICE_REQUIRE_PEERS") == "1" {
		t.Fatalf("SLUICE_REQUIRE_PEERS=1 but a peer cannot run: %v", err)
	}
	t.Skipf("peer not available: %v (SLUICE_REQUIRE_PEERS=1 makes this a failure)", err)
}

func needAgent(t *testing.T) {
	t.Helper()
	if agentBin == "" {
		t.Skip("-short: the interop tests build and run the agent")
	}
}

// peerKind is which peer implementation a process runs.
type peerKind string

const (
	fluentd   peerKind = "fluentd"
	fluentBit peerKind = "fluent-bit"
)

// need returns the peers, skipping or failing t when kind cannot run.
func (k peerKind) need(t *testing.T) peerSet {
	t.Helper()
	needAgent(t)
	p := findPeers()
	switch k {
	case fluentd:
		if p.fluentdErr != nil {
			unavailable(t, p.fluentdErr)
		}
	case fluentBit:
		if p.fluentBitErr != nil {
			unavailable(t, p.fluentBitErr)
		}
	}
	return p
}

// peerProc is one running Fluentd or Fluent Bit process. Its stdout and
// stderr go to one log file. It runs in its own process group, and
// t.Cleanup kills that group (SIGKILL) and reaps it, also on failure.
type peerProc struct {
	t       *testing.T
	kind    peerKind
	name    string
	logPath string
	logFrom int64 // size of the log file when this run started
	cmd     *exec.Cmd
	done    chan struct{}
	state   *os.ProcessState
}

// startPeer runs the peer of kind with the config file conf (written by the
// caller), logging to <dir>/<name>.log.
func startPeer(t *testing.T, kind peerKind, name, dir, conf string) *peerProc {
	t.Helper()
	p := kind.need(t)
	var cmd *exec.Cmd
	switch kind {
	case fluentd:
		// --no-supervisor: the process we kill is the one holding the socket.
		cmd = exec.Command("ruby", "-I"+p.fluentdLib, p.fluentdBin, "--no-supervisor", "-c", conf)
	case fluentBit:
		cmd = exec.Command(p.fluentBitBin, "-c", conf)
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var from int64
	if fi, err := f.Stat(); err == nil {
		from = fi.Size()
	}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pp := &peerProc{t: t, kind: kind, name: name, logPath: logPath, logFrom: from, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		pp.state = cmd.ProcessState
		f.Close()
		close(pp.done)
	}()
	t.Cleanup(func() {
		pp.Kill()
		if t.Failed() {
			pp.dumpLog(40)
		}
	})
	return pp
}

// Kill sends SIGKILL to the peer's process group and waits until it is
// reaped.
func (p *peerProc) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// Exited reports whether the process has exited.
func (p *peerProc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log is the peer's output so far (every run with this name and dir).
func (p *peerProc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// runLog is the output of this run only.
func (p *peerProc) runLog() string {
	if l := p.Log(); int64(len(l)) >= p.logFrom {
		return l[p.logFrom:]
	}
	return ""
}

// waitLog waits until this run's log contains substr; it fails the test if
// the peer exits or timeout passes first.
func (p *peerProc) waitLog(substr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.runLog(), substr) {
		if p.Exited() {
			p.dumpLog(40)
			p.t.Fatalf("%s exited (%v) before logging %q", p.name, p.state, substr)
		}
		if time.Now().After(deadline) {
			p.dumpLog(40)
			p.t.Fatalf("%s did not log %q within %v", p.name, substr, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitListening waits until the peer's forward input logged that it
// listens on port (Fluentd: after its worker started).
func (p *peerProc) waitListening(port int) {
	p.t.Helper()
	switch p.kind {
	case fluentd:
		p.waitLog("fluentd worker is now running", 30*time.Second)
	case fluentBit:
		p.waitLog(fmt.Sprintf("listening on 127.0.0.1:%d", port), 30*time.Second)
	}
}

func (p *peerProc) dumpLog(n int) {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		p.t.Logf("%s: %s", p.name, l)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Fluentd also binds UDP on the same port for its heartbeat, so the UDP
// port is checked as well.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		uc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err != nil {
			continue
		}
		uc.Close()
		return port
	}
	t.Fatal("no free port with both TCP and UDP")
	return 0
}

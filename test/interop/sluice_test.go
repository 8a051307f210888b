package interop

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// sluiceConf is the agent config of a scenario: a docker input (DockerRoot)
// or a forward input (Listen), routed ("**") to one forward output (Servers)
// or one file output (FilePath).
type sluiceConf struct {
	DockerRoot string // docker input over this fake Docker root
	Listen     string // forward input on this address

	Servers  []peerServer // forward output to 127.0.0.1:<port>
	FilePath string       // file output (JSON lines)

	Fwd fwdOpts // the forward input's or output's link settings

	MetricsAddr string // serve /metrics here when set
}

func (c sluiceConf) yaml(dataDir string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("data_dir: %q", dataDir)
	p("log_level: debug") // the shared key must not leak at any level
	p("shutdown_grace: 5s")
	if c.MetricsAddr != "" {
		p("metrics_addr: %q", c.MetricsAddr)
	}
	p("inputs:")
	if c.DockerRoot != "" {
		p("  - id: containers")
		p("    type: docker")
		p("    root: %q", c.DockerRoot)
		p("    parse_json: true")
		p("    tag: \"interop.{name}\"")
		p("    poll_interval: 200ms")
		p("    checkpoint_interval: 500ms")
	}
	if c.Listen != "" {
		p("  - id: fwd")
		p("    type: forward")
		p("    listen: %q", c.Listen)
		p("    parse_json: true")
		if c.Fwd.TLS != nil {
			p("    tls:")
			p("      enabled: true")
			p("      cert_file: %q", c.Fwd.TLS.Cert)
			p("      key_file: %q", c.Fwd.TLS.Key)
		}
		if c.Fwd.SharedKey != "" {
			p("    security:")
			p("      self_hostname: %s", sluiceServerName)
			p("      shared_key: %q", c.Fwd.SharedKey)
		}
	}
	p("outputs:")
	if len(c.Servers) > 0 {
		p("  - id: peer")
		p("    type: forward")
		p("    servers:")
		for _, s := range c.Servers {
			p("      - address: \"127.0.0.1:%d\"", s.Port)
			if s.Standby {
				p("        standby: true")
			}
		}
		if c.Fwd.Gzip {
			p("    compress: gzip")
		}
		p("    require_ack: %v", c.Fwd.Ack)
		p("    ack_timeout: 10s")
		p("    connect_timeout: 2s")
		p("    heartbeat_interval: 200ms")
		p("    retry_initial: 100ms")
		p("    retry_max: 1s")
		p("    buffer: { chunk_bytes: 64KiB, fsync_interval: 200ms }")
		if c.Fwd.TLS != nil {
			p("    tls:")
			p("      enabled: true")
			p("      ca_file: %q", c.Fwd.TLS.CA)
			p("      server_name: localhost")
		}
		if c.Fwd.SharedKey != "" {
			p("    security:")
			p("      self_hostname: %s", sluiceClientName)
			p("      shared_key: %q", c.Fwd.SharedKey)
		}
	}
	if c.FilePath != "" {
		p("  - id: file")
		p("    type: file")
		p("    path: %q", c.FilePath)
		p("    buffer: { fsync_interval: 200ms }")
	}
	p("routes:")
	p("  - match: \"**\"")
	if len(c.Servers) > 0 {
		p("    outputs: [peer]")
	} else {
		p("    outputs: [file]")
	}
	return b.String()
}

// sluiceProc is the agent of a scenario, killed (SIGKILL) in t.Cleanup.
type sluiceProc struct {
	t       *testing.T
	cfg     sluiceConf
	cfgPath string
	logPath string
	logFrom int // size of the log when the current run started
	proc    *agentproc.Proc
}

// startSluice writes the config under dir (data in dir/data, log in
// dir/<name>.log) and starts the agent. With a forward input it waits
// until the input listens.
func startSluice(t *testing.T, name, dir string, c sluiceConf) *sluiceProc {
	t.Helper()
	needAgent(t)
	s := &sluiceProc{
		t:       t,
		cfg:     c,
		cfgPath: filepath.Join(dir, name+".yml"),
		logPath: filepath.Join(dir, name+".log"),
	}
	writeFile(t, s.cfgPath, c.yaml(filepath.Join(dir, name+"-data")))
	s.start()
	t.Cleanup(func() {
		if s.proc != nil && !s.proc.Exited() {
			s.proc.Kill()
		}
		if t.Failed() {
			s.dumpLog(40)
		}
	})
	return s
}

// start (re)starts the agent on the same config and data.
func (s *sluiceProc) start() {
	s.t.Helper()
	s.logFrom = len(s.Log())
	p, err := agentproc.Start(agentBin, s.cfgPath, s.logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	s.proc = p
	if s.cfg.Listen != "" {
		s.waitLog("forward input listening", 15*time.Second)
	}
}

// Log is the agent's log so far (every run).
func (s *sluiceProc) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// waitLog waits until the current run's log contains substr; it fails the
// test if the agent exits or timeout passes first.
func (s *sluiceProc) waitLog(substr string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s.Log()[s.logFrom:], substr) {
		if s.proc.Exited() {
			s.t.Fatalf("agent exited (%v) before logging %q", s.proc.Usage(), substr)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("agent did not log %q within %v", substr, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkNoSecret fails the test if any of the keys appears in the agent's
// log (stdout and stderr).
func (s *sluiceProc) checkNoSecret(keys ...string) {
	s.t.Helper()
	log := s.Log()
	for _, k := range keys {
		if k != "" && strings.Contains(log, k) {
			s.t.Errorf("the agent's log contains the shared key %q", k)
		}
	}
	s.t.Logf("agent log: %d bytes, no shared key in it", len(log))
}

// term stops the agent with SIGTERM and checks it exits 0.
func (s *sluiceProc) term() {
	s.t.Helper()
	code, took, err := s.proc.Term(15 * time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	if code != 0 {
		s.t.Errorf("agent exited %d after SIGTERM (%v)", code, took)
	}
}

func (s *sluiceProc) dumpLog(n int) {
	lines := strings.Split(strings.TrimRight(s.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		s.t.Log("sluice: " + l)
	}
}

// listenAddr returns a free 127.0.0.1 address (TCP and UDP, as the forward
// input also answers the UDP heartbeat on the same port).
func listenAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(freePort(t)))
}

// metric sums the series of name with the output="peer" label on the
// agent's /metrics.
func (s *sluiceProc) metric(name string) float64 {
	s.t.Helper()
	text, err := agentproc.WaitMetrics(s.cfg.MetricsAddr, 5*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	return agentproc.MetricSum(text, name, `output="peer"`)
}

// port is the forward input's TCP port.
func (s *sluiceProc) port() int {
	_, p, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		s.t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

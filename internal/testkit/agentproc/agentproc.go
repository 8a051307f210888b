// Package agentproc builds the real agent binary and runs it as a child
// process for end-to-end tests and the benchmark: config rendering, start,
// SIGTERM / SIGKILL, CPU and peak RSS of the child, and /metrics scraping.
//
// # Invariants
//
//   - Build runs `go build -o DIR/agent ./cmd/agent` in the module root, so
//     the binary is exactly what the repository builds.
//   - A Proc is waited for by exactly one goroutine (started by Start); Kill,
//     Term and Wait only signal and then wait for that goroutine, so the
//     child's rusage (CPU, Maxrss) is always collected and no zombie is left.
//   - The child's stdout and stderr (the agent's JSON log) are appended to
//     one log file, which survives restarts of the agent.
package agentproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ModuleRoot returns the directory holding the repository's go.mod.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
			if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/sluice-agent/sluice\n")) {
				return dir, nil
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("agentproc: find module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("agentproc: not inside the sluice module")
	}
	return filepath.Dir(gomod), nil
}

// Build compiles the agent into dir and returns the binary's path. flags
// are extra `go build` flags (e.g. "-race").
func Build(dir string, flags ...string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "agent")
	args := append([]string{"build", "-o", bin}, flags...)
	cmd := exec.Command("go", append(args, "./cmd/agent")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("agentproc: go build ./cmd/agent: %w\n%s", err, out)
	}
	return bin, nil
}

// Proc is one running agent process.
type Proc struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	start   time.Time
	done    chan struct{}
	state   *os.ProcessState
	waitErr error
	ended   time.Time
}

// Start runs `bin run --config config`, appending its output to logPath.
func Start(bin, config, logPath string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("agentproc: %w", err)
	}
	cmd := exec.Command(bin, "run", "--config", config)
	cmd.Stdout = f
	cmd.Stderr = f
	p := &Proc{cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("agentproc: start agent: %w", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		p.ended = time.Now()
		p.logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// StartTime is when the process was started.
func (p *Proc) StartTime() time.Time { return p.start }

// Done is closed when the process has exited and was reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit by itself and returns
// its exit code (-1 if killed by a signal).
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.state.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("agentproc: pid %d still running after %v", p.Pid(), timeout)
	}
}

// Kill sends SIGKILL and waits for the process to be reaped.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Term sends SIGTERM and waits up to timeout for the exit code. If the
// process is still running at the deadline it is killed and an error is
// returned with the elapsed time.
func (p *Proc) Term(timeout time.Duration) (code int, took time.Duration, err error) {
	t0 := time.Now()
	if !p.Exited() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return 0, 0, fmt.Errorf("agentproc: sigterm: %w", err)
		}
	}
	select {
	case <-p.done:
		return p.state.ExitCode(), time.Since(t0), nil
	case <-time.After(timeout):
		p.Kill()
		return -1, time.Since(t0), fmt.Errorf("agentproc: pid %d did not exit within %v of SIGTERM (killed)", p.Pid(), timeout)
	}
}

// Usage is the resource usage of an exited process.
type Usage struct {
	User, Sys time.Duration
	MaxRSS    int64 // bytes
	Wall      time.Duration
}

// CPU is user + system time.
func (u Usage) CPU() time.Duration { return u.User + u.Sys }

// Usage returns the rusage of the exited process (wait4's, so Maxrss is
// the child's own peak RSS). It is zero while the process runs.
func (p *Proc) Usage() Usage {
	if !p.Exited() {
		return Usage{}
	}
	u := Usage{User: p.state.UserTime(), Sys: p.state.SystemTime(), Wall: p.ended.Sub(p.start)}
	if ru, ok := p.state.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
	}
	return u
}

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat
// (100 on every Linux platform Go supports).
const clockTicks = 100

// CPU samples the running process's user+system time from
// /proc/<pid>/stat.
func (p *Proc) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0, fmt.Errorf("agentproc: %w", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (1-based), i.e. 12 and 13 after ") ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("agentproc: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("agentproc: short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("agentproc: bad utime/stime in /proc stat")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// RSS samples the running process's resident set size from
// /proc/<pid>/status (VmRSS) and its peak (VmHWM), in bytes.
func (p *Proc) RSS() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, 0, fmt.Errorf("agentproc: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v * 1024
		case "VmHWM:":
			peak = v * 1024
		}
	}
	return rss, peak, nil
}

// Log returns the log file's content so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// LogPath is the log file shared by every run that used it.
func (p *Proc) LogPath() string { return p.logPath }

// LogLines returns the JSON log lines of logPath whose level is level
// (e.g. "WARN") and whose text contains substr.
func LogLines(logPath, level, substr string) []string {
	b, _ := os.ReadFile(logPath)
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, `"level":"`+level+`"`) && strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

// Scrape fetches http://addr/metrics.
func Scrape(addr string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", fmt.Errorf("agentproc: scrape: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("agentproc: scrape: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("agentproc: scrape: %s", resp.Status)
	}
	return string(b), nil
}

// Metric returns the value of the series named exactly series (name plus
// labels as printed, e.g. `sluice_buffer_dropped_chunks_total{output="app"}`)
// in a Prometheus text exposition.
func Metric(text, series string) (float64, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// MetricSum sums every series of metric name whose labels contain each of
// labels (e.g. `output="app"`), whatever its other labels.
func MetricSum(text, name string, labels ...string) float64 {
	var sum float64
	for line := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || len(rest) == 0 || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		sp := strings.LastIndexByte(rest, ' ')
		if sp < 0 {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(rest[:sp], l) {
				match = false
			}
		}
		if v, err := strconv.ParseFloat(rest[sp+1:], 64); err == nil && match {
			sum += v
		}
	}
	return sum
}

// WaitMetrics polls addr until /metrics answers or timeout passes.
func WaitMetrics(addr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		text, err := Scrape(addr)
		if err == nil || time.Now().After(deadline) {
			return text, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (for receivers that must keep one address across restarts).
func FreeAddr(t interface {
	Helper()
	Fatal(...any)
}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

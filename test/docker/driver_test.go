package dockertest

import (
	"fmt"
	"testing"
	"time"
)

// fluentd returns the log-opts of a fluentd-driver container sending to
// addr, tagged docker.<name> (the route pattern is <type>.docker.*).
func fluentd(addr string, extra ...string) []string {
	return append([]string{"fluentd-address=" + addr, "tag=docker.{{.Name}}"}, extra...)
}

// TestDriverTCPAndUnix runs six containers at once with Docker's fluentd
// driver, three over TCP and three over the unix socket (plain, with
// sub-second precision, with request-ack), each writing three log types to
// stdout and stderr including lines of 40,000 and exactly 16,384 bytes.
// Every line must reach the receiver of its log type, long lines
// reassembled to their exact length, nothing missing.
func TestDriverTCPAndUnix(t *testing.T) {
	requireDocker(t)
	e := newEnv(t, envOptions{forward: true})
	ready := e.start()
	t.Logf("agent listening %v after start", ready.Round(time.Millisecond))

	const n = 1500    // sequences per type and container
	const every = 100 // every 100th sequence is a long line
	tcp, unix := "tcp://"+e.tcpAddr, "unix://"+e.unixPath
	withLong := []string{"-n", fmt.Sprint(n), "-long-every", fmt.Sprint(every)}
	specs := []spec{
		{name: "tcp-plain", driver: "fluentd", logOpts: fluentd(tcp), args: withLong},
		{name: "tcp-subsec", driver: "fluentd", logOpts: fluentd(tcp, "fluentd-sub-second-precision=true"), args: withLong},
		{name: "tcp-ack", driver: "fluentd", logOpts: fluentd(tcp, "fluentd-request-ack=true")},
		{name: "unix-plain", driver: "fluentd", logOpts: fluentd(unix), args: withLong},
		{name: "unix-subsec", driver: "fluentd", logOpts: fluentd(unix, "fluentd-sub-second-precision=true"), args: withLong},
		{name: "unix-ack", driver: "fluentd", logOpts: fluentd(unix, "fluentd-request-ack=true")},
	}
	for _, i := range []int{2, 5} {
		// With request-ack the input stores fragments unjoined (documented
		// in inputs/forward), so these containers write no long lines; and
		// only to stdout: see ackArgs.
		specs[i].args = append([]string{"-n", fmt.Sprint(n)}, e.ackArgs(specs[i])...)
	}
	t0 := time.Now()
	cs := mustRun(t, len(specs), specs...)
	t.Logf("docker run -d latencies: %s", summarize(cs))
	x := expect{}
	for _, s := range specs {
		x.add(s, n)
	}
	if err := waitExit(cs, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if !e.waitDelivered(x, 2*time.Minute) {
		t.Errorf("not everything delivered within 2 min")
	}
	took := time.Since(t0)
	dups := e.checkDelivered(x, nil)
	longPerContainer := len(logTypes) * n / every
	var longOK int64
	for _, c := range e.codec {
		longOK += c.longOK.Load()
	}
	if want := int64(4 * longPerContainer); longOK < want {
		t.Errorf("verified %d long lines, want %d", longOK, want)
	}
	joined := e.metric(`sluice_input_partial_reassemblies_total{input="driver"}`)
	incomplete := e.metric(`sluice_input_partial_incomplete_total{input="driver"}`)
	// 40,000 bytes arrive as 3 fragments, 16,384 bytes as 2 (the last
	// empty): each long line is one reassembly.
	if joined < float64(4*longPerContainer) || incomplete != 0 {
		t.Errorf("agent reassembled %v partial lines (want >= %d), %v incomplete", joined, 4*longPerContainer, incomplete)
	}
	t.Logf("%d lines from %d containers in %v (%.0f lines/s), %d long lines reassembled and verified, agent reassemblies %v, duplicates %d",
		x.total(), len(specs), took.Round(time.Millisecond), float64(x.total())/took.Seconds(), longOK, joined, dups)
}

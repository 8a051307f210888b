// Command sluice-bench is the end-to-end benchmark of the agent binary.
//
//	go run ./cmd/sluice-bench [-lines 1000000] [-payload 200] [-runs 3] [-gzip]
//
// Workload "json-file" (the default -mode): Docker json-file logs of
// three log types in three containers (lines split evenly) are generated
// into a fake Docker root BEFORE the agent starts; the agent (built from
// ./cmd/agent with go build) tails them with parse_json, routes each line by
// its log_type to one of three forward outputs (disk buffer, fsync
// interval, require_ack on, optional gzip), each sending to an in-process
// receiver on 127.0.0.1 that acks every chunk after recording it.
//
// A run's clock starts when the agent process is started and stops when
// the receivers hold every sequence number. For each run it prints lines/s,
// MiB/s of log payload, the agent's CPU time (utime+stime from
// /proc/<pid>/stat sampled at that moment, just before SIGTERM), CPU µs per
// line and the peak RSS (Maxrss from the child's rusage after it exited on
// SIGTERM); then the median of the runs. Every run uses a fresh data_dir
// and fresh receivers over the same generated files.
//
// Modes "forward" (forward.go), "cri" (cri.go), "elasticsearch" and "s3"
// (dest.go), "kafka" (kafka.go), "cloudwatch_logs", "kinesis" and
// "firehose" (aws.go) measure the other paths; each file's doc says how.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	mode    string
	lines   int
	payload int
	runs    int
	gzip    bool
	// ack makes mode forward's clients ask for an ack per event and wait
	// for it before sending the next, as Docker's driver does with
	// fluentd-request-ack.
	ack bool
	// ackAfter is the forward input's ack_after ("" for its default).
	ackAfter string
	agent    string
	keep     bool
	// parseJSON turns the docker input's parse_json on (off by default:
	// routing by log_type reads the payload either way).
	parseJSON bool
	// kube turns mode cri's kubernetes section on (crikube.go).
	kube    bool
	timeout time.Duration
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.mode, "mode", "json-file", "workload: json-file (Docker json-file logs tailed by the docker input), forward (Docker fluentd driver traffic into the forward input), cri (the json-file lines in Kubernetes CRI format tailed by the cri input), elasticsearch or s3 (the json-file lines to one elasticsearch or s3 output and a real VictoriaLogs or versitygw), kafka (the json-file lines to one kafka output and an in-process kfake cluster), cloudwatch_logs, kinesis or firehose (the json-file lines to one output of that type and the in-process awsfake)")
	fs.IntVar(&o.lines, "lines", 1_000_000, "log lines per run, split over 3 containers")
	fs.IntVar(&o.payload, "payload", 200, "bytes of each line's JSON payload")
	fs.IntVar(&o.runs, "runs", 3, "number of runs (the median is printed last)")
	fs.BoolVar(&o.parseJSON, "parse-json", false, "merge each JSON payload's fields into the record (docker input parse_json)")
	fs.BoolVar(&o.ack, "ack", false, "mode forward: every event asks for an ack and the client waits for it (Docker's fluentd-request-ack)")
	fs.StringVar(&o.ackAfter, "ack-after", "", "mode forward: the forward input's ack_after (fsync, the default, or write)")
	fs.BoolVar(&o.kube, "kube", false, "mode cri: pod metadata from an in-process Kubernetes API stand-in serving the generated pods (the cri input's kubernetes section)")
	fs.BoolVar(&o.gzip, "gzip", false, "compress chunks with gzip (level 1) on the forward outputs")
	fs.StringVar(&o.agent, "agent", "", "use this agent binary instead of building ./cmd/agent")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (generated logs, data dirs, agent logs)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on a run after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.lines < 3 || o.payload <= 0 || o.runs <= 0 {
		fmt.Fprintln(stderr, "sluice-bench: -lines must be >= 3, -payload and -runs > 0")
		return 2
	}
	if o.kube && o.mode != "cri" {
		fmt.Fprintln(stderr, "sluice-bench: -kube needs -mode cri")
		return 2
	}
	var w workload
	switch o.mode {
	case "json-file":
		w = &jsonFile{}
	case "forward":
		w = &forwardMode{}
	case "cri":
		w = &criMode{}
	case "fanout":
		w = &fanoutMode{} // fanout.go
	case "elasticsearch", "s3":
		w = &destMode{kind: o.mode}
	case "kafka":
		w = &kafkaMode{}
	case "cloudwatch_logs", "kinesis", "firehose":
		w = &awsMode{kind: o.mode}
	default:
		fmt.Fprintf(stderr, "sluice-bench: unknown -mode %q (supported: json-file, forward, cri, elasticsearch, s3, kafka, cloudwatch_logs, kinesis, firehose)\n", o.mode)
		return 2
	}
	if err := bench(o, w, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "sluice-bench:", err)
		return 1
	}
	return 0
}

// workload is one benchmark shape. New modes (e.g. forward -> forward)
// implement it.
type workload interface {
	// describe is a one-line description for the header.
	describe(o options) string
	// prepare generates the input once, under dir.
	prepare(dir string, o options) error
	// config returns the agent config of one run, whose outputs send to
	// addrs (one per receiver, in order).
	config(dataDir string, addrs []string, o options) agentproc.Config
	// expect returns, per receiver, the source id and the number of lines
	// it must receive.
	expect() []expectation
	// payloadBytes is the total payload of one run.
	payloadBytes() int64
}

// liveWorkload is a workload whose input is sent while the agent runs
// (mode forward). configYAML replaces config; send is started right after
// the agent process and must return once everything was sent.
type liveWorkload interface {
	workload
	configYAML(dataDir string, addrs []string, o options) string
	send(o options) error
}

type expectation struct {
	src   string
	lines int64
}

// result is one run's figures.
type result struct {
	lines     int64
	elapsed   time.Duration
	cpu       time.Duration
	maxRSS    int64
	dups      int64
	payload   int64
	exitAfter time.Duration
}

func (r result) linesPerSec() float64 { return float64(r.lines) / r.elapsed.Seconds() }
func (r result) mibPerSec() float64 {
	return float64(r.payload) / (1 << 20) / r.elapsed.Seconds()
}
func (r result) cpuPerLine() float64 { return float64(r.cpu.Nanoseconds()) / 1e3 / float64(r.lines) }

func bench(o options, w workload, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// Clean up on ^C too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	bin := o.agent
	if bin == "" {
		t0 := time.Now()
		if bin, err = agentproc.Build(dir); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "built agent in %v\n", time.Since(t0).Round(time.Millisecond))
	}
	t0 := time.Now()
	if c, ok := w.(*criMode); ok {
		defer c.closeKube()
	}
	if err := w.prepare(dir, o); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "generated %d lines in %v\n", o.lines, time.Since(t0).Round(time.Millisecond))

	fmt.Fprintf(stdout, "sluice-bench: %s; %d runs; %s, GOMAXPROCS %d, %d CPUs\n",
		w.describe(o), o.runs, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(stdout, rowFormat, "run", "lines", "seconds", "lines/s", "MiB/s", "cpu_s", "cpu_us/line", "peak_rss_MiB", "dups")
	var results []result
	for i := range o.runs {
		select {
		case s := <-sig:
			return fmt.Errorf("interrupted by %v", s)
		default:
		}
		runDir := filepath.Join(dir, fmt.Sprintf("run%d", i+1))
		var r result
		if d, ok := w.(*destMode); ok {
			r, err = runDest(runDir, bin, d, o)
		} else if k, ok := w.(*kafkaMode); ok {
			r, err = runKafka(runDir, bin, k, o)
		} else if a, ok := w.(*awsMode); ok {
			r, err = runAWS(runDir, bin, a, o, stderr)
		} else {
			r, err = runOnce(runDir, bin, w, o)
		}
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		results = append(results, r)
		printRow(stdout, fmt.Sprint(i+1), r)
	}
	if len(results) > 1 {
		printRow(stdout, "median", median(results))
	}
	return nil
}

const rowFormat = "%-7s %9v %8v %9v %7v %7v %12v %13v %6v\n"

func printRow(w io.Writer, name string, r result) {
	fmt.Fprintf(w, rowFormat, name, r.lines, fmt.Sprintf("%.2f", r.elapsed.Seconds()), fmt.Sprintf("%.0f", r.linesPerSec()),
		fmt.Sprintf("%.1f", r.mibPerSec()), fmt.Sprintf("%.2f", r.cpu.Seconds()), fmt.Sprintf("%.2f", r.cpuPerLine()),
		fmt.Sprintf("%.1f", float64(r.maxRSS)/(1<<20)), r.dups)
}

// median takes the median of each figure independently.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if n := len(v); n%2 == 1 {
			return v[n/2]
		} else {
			return (v[n/2-1] + v[n/2]) / 2
		}
	}
	m := result{
		lines:   rs[0].lines,
		payload: rs[0].payload,
		elapsed: time.Duration(pick(func(r result) float64 { return float64(r.elapsed) })),
		cpu:     time.Duration(pick(func(r result) float64 { return float64(r.cpu) })),
		maxRSS:  int64(pick(func(r result) float64 { return float64(r.maxRSS) })),
		dups:    int64(pick(func(r result) float64 { return float64(r.dups) })),
	}
	return m
}

func runOnce(dir, bin string, w workload, o options) (result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	exp := w.expect()
	recvs := make([]*receiver.Server, len(exp))
	addrs := make([]string, len(exp))
	var codec receiver.Codec = receiver.Wire{}
	c, isCRI := w.(*criMode)
	if isCRI {
		codec = c.codec()
	}
	for i := range exp {
		s, err := receiver.Listen("127.0.0.1:0", codec, nil)
		if err != nil {
			return result{}, err
		}
		defer s.Stop()
		recvs[i], addrs[i] = s, s.Addr()
	}
	cfgPath := filepath.Join(dir, "agent.yml")
	live, isLive := w.(liveWorkload)
	if isLive {
		if err := os.WriteFile(cfgPath, []byte(live.configYAML(filepath.Join(dir, "data"), addrs, o)), 0o644); err != nil {
			return result{}, err
		}
	} else if err := w.config(filepath.Join(dir, "data"), addrs, o).Write(cfgPath); err != nil {
		return result{}, err
	}
	logPath := filepath.Join(dir, "agent.log")
	p, err := agentproc.Start(bin, cfgPath, logPath)
	if err != nil {
		return result{}, err
	}
	defer p.Kill()
	sendErr := make(chan error, 1)
	if isLive {
		go func() { sendErr <- live.send(o) }()
	}
	deadline := p.StartTime().Add(o.timeout)
	var total int64
	for i, e := range exp {
		total += e.lines
		for !recvs[i].WaitCount(e.lines, 100*time.Millisecond) {
			if p.Exited() {
				return result{}, fmt.Errorf("agent exited early; log %s:\n%s", logPath, tail(p.Log(), 20))
			}
			select {
			case err := <-sendErr:
				if err != nil {
					return result{}, fmt.Errorf("send: %w", err)
				}
			default:
			}
			if time.Now().After(deadline) {
				return result{}, fmt.Errorf("timeout after %v: receiver %d holds %d of %d lines", o.timeout, i, recvs[i].Count(), e.lines)
			}
		}
	}
	elapsed := time.Since(p.StartTime())
	cpu, cpuErr := p.CPU()
	code, took, err := p.Term(time.Minute)
	if err != nil {
		return result{}, err
	}
	if code != 0 {
		return result{}, fmt.Errorf("agent exited %d after SIGTERM; log %s", code, logPath)
	}
	u := p.Usage()
	if cpuErr != nil {
		cpu = u.CPU()
	}
	r := result{lines: total, elapsed: elapsed, cpu: cpu, maxRSS: u.MaxRSS, payload: w.payloadBytes(), exitAfter: took}
	for i, e := range exp {
		if miss := recvs[i].MissingCount(e.src, int(e.lines)); miss > 0 {
			return result{}, fmt.Errorf("receiver %d: %d lines missing (first %v)", i, miss, recvs[i].Missing(e.src, int(e.lines)))
		}
		r.dups += recvs[i].Duplicates()
	}
	if isCRI {
		if err := c.verify(); err != nil {
			return result{}, err
		}
	}
	return r, nil
}

func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}

// jsonFile is workload (a): three containers, three log types, three
// forward outputs.
type jsonFile struct {
	root    string
	conts   []*loggen.Container
	payload int64
}

var logTypes = []string{"app", "access", "audit"}

func (j *jsonFile) describe(o options) string {
	comp := "off"
	if o.gzip {
		comp = "gzip level 1"
	}
	return fmt.Sprintf("mode json-file: %d lines x %d B payload in 3 containers -> 3 forward outputs (require_ack, disk buffer fsync interval 1s, compression %s) -> 3 receivers",
		o.lines, o.payload, comp)
}

func (j *jsonFile) prepare(dir string, o options) error {
	j.root = filepath.Join(dir, "containers")
	for i, lt := range logTypes {
		n := o.lines / len(logTypes)
		if i < o.lines%len(logTypes) {
			n++
		}
		c, err := loggen.New(j.root, loggen.Options{Name: "bench-" + lt, LogType: lt, Payload: o.payload})
		if err != nil {
			return err
		}
		if err := c.Write(n); err != nil {
			return err
		}
		if err := c.Close(); err != nil {
			return err
		}
		for s := range c.Seq() {
			j.payload += int64(c.PayloadBytes(s))
		}
		j.conts = append(j.conts, c)
	}
	return nil
}

func (j *jsonFile) config(dataDir string, addrs []string, o options) agentproc.Config {
	cfg := agentproc.Config{
		DataDir:       dataDir,
		DockerRoot:    j.root,
		LogLevel:      "warn",
		ShutdownGrace: 30 * time.Second,
		RawLog:        !o.parseJSON,
	}
	for i, lt := range logTypes {
		out := agentproc.Output{ID: lt, Address: addrs[i], Buffer: agentproc.Buffer{Fsync: "interval", FsyncInterval: time.Second}}
		if o.gzip {
			out.Compress = "gzip"
		}
		cfg.Outputs = append(cfg.Outputs, out)
	}
	return cfg
}

func (j *jsonFile) expect() []expectation {
	e := make([]expectation, len(j.conts))
	for i, c := range j.conts {
		e[i] = expectation{src: c.Src(), lines: c.Seq()}
	}
	return e
}

func (j *jsonFile) payloadBytes() int64 { return j.payload }

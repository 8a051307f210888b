package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
)

// awsMode is workload -mode cloudwatch_logs, -mode kinesis and -mode
// firehose: mode json-file's generated lines (three containers, one log
// type each, tailed by the docker input) go to ONE output of that type
// with its default settings, which sends to awsfake
// (internal/testkit/awsfake): the in-repo fake of the three services,
// speaking awsJson1.1, checking every request's SigV4 signature against
// its key and enforcing the service limits, started on 127.0.0.1 in the
// benchmark's process (so its CPU is the benchmark's, not the agent's)
// with no fault injected: it throttles nothing and fails nothing.
//
//   - cloudwatch_logs: log group /sluice/bench/{tag[1]} (one group per log
//     type), the default stream {hostname}/{tag}; the fake starts empty,
//     so the output creates the groups and streams (create_log_group and
//     create_log_stream default true) after their first
//     ResourceNotFoundException. Defaults: JSON messages, up to 10,000
//     events and 1 MiB (26 B counted per event) per PutLogEvents, one call
//     per stream, 2 workers; but flush_interval 1s instead of 5s, as mode
//     s3 does: the clock stops when the last partial batch is sent, which
//     otherwise waits for its age.
//   - kinesis: stream "bench" (4 shards, created in the fake before the
//     agent starts). Defaults: JSON records with @timestamp and tag and a
//     trailing newline, random partition keys, up to 500 records and 5 MiB
//     per PutRecords, 2 workers, flush_interval 1s.
//   - firehose: delivery stream "bench" (created before the agent
//     starts). Defaults: one newline-terminated JSON record per event (no
//     aggregation), up to 500 records and 4 MiB per PutRecordBatch, 2
//     workers, flush_interval 1s.
//
// The agent gets the fake's static key from its environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION, the default
// chain's first provider; no shared config file, profile, role or IMDS)
// and the fake's URL as the output's endpoint. The clock stops when the
// output's sluice_output_sent_events_total (events the fake accepted)
// reaches the number of lines; every stored log event or record is then
// read back from the fake and every sequence number of every container
// checked: a run with one missing (or a stored line that is not one of
// the generated ones) fails. dups is the lines stored more than once.
// peak_rss is the agent's VmHWM sampled when the clock stops (see
// runKafka). Each run also writes one line to stderr with the fake's
// request and error-answer counts and the output's request, retry and
// dead-letter counters.
//
// SLUICE_BENCH_AWS_OPTIONS adds keys to the output's section (YAML lines
// indented by 4 spaces, e.g. "    aggregate: true" for firehose); one
// holding "delivery:" replaces the mode's delivery line.
// SLUICE_BENCH_CPUPROFILE profiles the benchmark's own process (the fake,
// the read-back), SLUICE_CPUPROFILE the agent's.
type awsMode struct {
	kind string // "cloudwatch_logs", "kinesis" or "firehose"
	jsonFile
}

// The fake's stream names and shards (kinesis, firehose).
const (
	awsBenchStream = "bench"
	awsBenchShards = 4
)

func (a *awsMode) describe(o options) string {
	var out, peer string
	switch a.kind {
	case "cloudwatch_logs":
		out = "defaults: json, group per log type, stream {hostname}/{tag}, groups and streams created; flush_interval 1s"
		peer = "CloudWatch Logs"
	case "kinesis":
		out = "defaults: json + newline, random partition keys, flush_interval 1s"
		peer = fmt.Sprintf("Kinesis, %d shards", awsBenchShards)
	case "firehose":
		out = "defaults: json + newline, no aggregation, flush_interval 1s"
		peer = "Firehose"
	}
	return fmt.Sprintf("mode %s: %d lines x %d B payload in 3 containers -> 1 %s output (%s; disk buffer fsync interval 1s) -> awsfake (%s, SigV4 checked, no throttling, in the benchmark's process)",
		a.kind, o.lines, o.payload, a.kind, out, peer)
}

func (a *awsMode) configYAML(dataDir, metricsAddr, endpoint string, o options) string {
	var out string
	switch a.kind {
	case "cloudwatch_logs":
		out = "    log_group_name: \"/sluice/bench/{tag[1]}\"\n"
	case "kinesis":
		out = "    stream_name: " + awsBenchStream + "\n"
	case "firehose":
		out = "    delivery_stream_name: " + awsBenchStream + "\n"
	}
	extra := extraAWSOptions()
	if !strings.Contains(extra, "delivery:") {
		// The default of kinesis and firehose; cloudwatch_logs' is 5s
		// (see awsMode).
		extra += "    delivery: {flush_interval: 1s}\n"
	}
	return fmt.Sprintf(`data_dir: %q
log_level: warn
metrics_addr: %s
shutdown_grace: 30s
inputs:
  - id: containers
    type: docker
    root: %q
    parse_json: %v
outputs:
  - id: dest
    type: %s
%s    endpoint: %s
%s    buffer: {fsync: interval, fsync_interval: 1s}
default_output: dest
`, dataDir, metricsAddr, a.root, o.parseJSON, a.kind, out, endpoint, extra)
}

// startFake starts the fake of one run with the mode's streams; stop
// stops it.
func (a *awsMode) startFake() (fake *awsfake.Server, stop func()) {
	tb := &cleanupTB{}
	fake = awsfake.Start(tb)
	switch a.kind {
	case "kinesis":
		fake.CreateKinesisStream(awsBenchStream, awsBenchShards)
	case "firehose":
		fake.CreateDeliveryStream(awsBenchStream)
	}
	return fake, tb.cleanup
}

// eachStored calls f with every log event's message (cloudwatch_logs) or
// every record's data that the fake holds.
func (a *awsMode) eachStored(fake *awsfake.Server, f func([]byte)) {
	switch a.kind {
	case "cloudwatch_logs":
		for _, e := range fake.AllLogEvents() {
			f([]byte(e.Message))
		}
	case "kinesis":
		for _, r := range fake.KinesisRecords(awsBenchStream) {
			f(r.Data)
		}
	case "firehose":
		for _, r := range fake.FirehoseRecords(awsBenchStream) {
			f(r.Data)
		}
	}
}

// ops are the operations of the mode's service the fake counts.
func (a *awsMode) ops() []string {
	switch a.kind {
	case "cloudwatch_logs":
		return []string{"PutLogEvents", "CreateLogGroup", "CreateLogStream", "PutRetentionPolicy"}
	case "kinesis":
		return []string{"PutRecords"}
	}
	return []string{"PutRecordBatch"}
}

// awsErrorCodes are the error answers the fake can give, reported when
// non-zero.
var awsErrorCodes = []string{
	"ThrottlingException", "ServiceUnavailableException", "ProvisionedThroughputExceededException", "InternalFailure",
	"LimitExceededException", "ResourceNotFoundException", "ResourceAlreadyExistsException", "InvalidParameterException",
	"ValidationException", "InvalidArgumentException", "SerializationException", "UnknownOperationException",
	"MissingAuthenticationTokenException", "UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
}

// awsAgentEnv is the environment the agent runs with: the fake's static
// key and region for the default chain's environment provider, and
// nothing that could take precedence or make it look elsewhere (a
// session token, a profile, shared config files, a role, web identity,
// container credentials, IMDS). An empty value unsets the variable.
func awsAgentEnv(dir string) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":                      awsfake.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":                  awsfake.SecretAccessKey,
		"AWS_REGION":                             awsfake.Region,
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_SECURITY_TOKEN":                     "",
		"AWS_PROFILE":                            "",
		"AWS_DEFAULT_PROFILE":                    "",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_ROLE_ARN":                           "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN":      "",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS":       "",
		"AWS_ENDPOINT_URL_KINESIS":               "",
		"AWS_ENDPOINT_URL_FIREHOSE":              "",
	}
}

// startAgentEnv is agentproc.Start with env applied to the environment
// the child inherits (agentproc passes the benchmark's own on); the
// benchmark's is restored before it returns.
func startAgentEnv(bin, cfgPath, logPath string, env map[string]string) (*agentproc.Proc, error) {
	type saved struct {
		v  string
		ok bool
	}
	old := map[string]saved{}
	for k, v := range env {
		pv, ok := os.LookupEnv(k)
		old[k] = saved{pv, ok}
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
	defer func() {
		for k, s := range old {
			if s.ok {
				os.Setenv(k, s.v)
			} else {
				os.Unsetenv(k)
			}
		}
	}()
	return agentproc.Start(bin, cfgPath, logPath)
}

// runAWS is runOnce for awsMode; it writes the run's counters to stderr.
func runAWS(dir, bin string, a *awsMode, o options, stderr io.Writer) (result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	if p := os.Getenv("SLUICE_BENCH_CPUPROFILE"); p != "" {
		// Profiles the benchmark's own process: the fake and the read-back.
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	fake, stop := a.startFake()
	defer stop()
	metricsAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	cfgPath := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfgPath, []byte(a.configYAML(filepath.Join(dir, "data"), metricsAddr, fake.URL(), o)), 0o644); err != nil {
		return result{}, err
	}
	logPath := filepath.Join(dir, "agent.log")
	proc, err := startAgentEnv(bin, cfgPath, logPath, awsAgentEnv(dir))
	if err != nil {
		return result{}, err
	}
	defer proc.Kill()
	exp := a.expect()
	var total int64
	for _, e := range exp {
		total += e.lines
	}
	deadline := proc.StartTime().Add(o.timeout)
	var text string
	for {
		text, err = agentproc.Scrape(metricsAddr)
		if err == nil && int64(agentproc.MetricSum(text, "sluice_output_sent_events_total", `output="dest"`)) >= total {
			break
		}
		if proc.Exited() {
			return result{}, fmt.Errorf("agent exited early; log %s:\n%s", logPath, tail(proc.Log(), 20))
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("timeout after %v (fake: %s); log %s:\n%s", o.timeout, a.fakeCounts(fake), logPath, tail(proc.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(proc.StartTime())
	cpu, cpuErr := proc.CPU()
	// Peak RSS is the agent's VmHWM, sampled now (see runKafka).
	_, peak, rssErr := proc.RSS()
	code, took, err := proc.Term(time.Minute)
	if err != nil {
		return result{}, err
	}
	if code != 0 {
		return result{}, fmt.Errorf("agent exited %d after SIGTERM; log %s", code, logPath)
	}
	u := proc.Usage()
	if cpuErr != nil {
		cpu = u.CPU()
	}
	if rssErr != nil {
		peak = u.MaxRSS
	}
	fmt.Fprintf(stderr, "%s: fake: %s; agent: %s\n", filepath.Base(dir), a.fakeCounts(fake), outputCounts(text))
	c := newSeqCheck(exp)
	a.eachStored(fake, c.addBlob)
	if err := c.err(); err != nil {
		return result{}, fmt.Errorf("read back: %w", err)
	}
	return result{lines: total, elapsed: elapsed, cpu: cpu, maxRSS: peak, payload: a.payloadBytes(), exitAfter: took, dups: c.dups}, nil
}

// fakeCounts lists the requests the fake received per operation and its
// error answers.
func (a *awsMode) fakeCounts(fake *awsfake.Server) string {
	var parts []string
	for _, op := range a.ops() {
		parts = append(parts, fmt.Sprintf("%d %s", fake.Requests(op), op))
	}
	errs := "no error answers"
	var e []string
	for _, code := range awsErrorCodes {
		if n := fake.Answered(code); n > 0 {
			e = append(e, fmt.Sprintf("%d %s", n, code))
		}
	}
	if len(e) > 0 {
		errs = "answered " + strings.Join(e, ", ")
	}
	if n := fake.AuthFailures(); n > 0 {
		errs += fmt.Sprintf(", %d refused for their signature or key", n)
	}
	return strings.Join(parts, ", ") + " requests, " + errs
}

// outputCounts are the output's request, retry and dead-letter counters
// in a metrics scrape.
func outputCounts(text string) string {
	m := func(name string, labels ...string) int64 {
		return int64(agentproc.MetricSum(text, name, append([]string{`output="dest"`}, labels...)...))
	}
	return fmt.Sprintf("requests ok %d, partial %d, failed %d; retried %d, rejected %d, dead-lettered %d, dropped %d events",
		m("sluice_output_requests_total", `result="ok"`), m("sluice_output_requests_total", `result="partial"`),
		m("sluice_output_requests_total", `result="failed"`), m("sluice_output_retried_events_total"),
		m("sluice_output_rejected_events_total"), m("sluice_output_dead_lettered_events_total"),
		m("sluice_output_dropped_events_total"))
}

// seqCheck tallies the sequence numbers of the lines read back, per
// source.
type seqCheck struct {
	seen       map[string][]bool
	read, dups int64
	bad        int64  // lines without a known source and seq in range
	firstBad   []byte // the first of them, for the error
}

func newSeqCheck(exp []expectation) *seqCheck {
	c := &seqCheck{seen: map[string][]bool{}}
	for _, e := range exp {
		c.seen[e.src] = make([]bool, e.lines)
	}
	return c
}

// addBlob adds each line of a stored message or record: a Kinesis or
// Firehose record ends with "\n" and an aggregated Firehose record holds
// several lines; the payload's own newline is escaped in the JSON.
func (c *seqCheck) addBlob(b []byte) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if len(line) > 0 {
			c.add(line)
		}
	}
}

func (c *seqCheck) add(line []byte) {
	c.read++
	src, seq, ok := benchKey(line)
	s := c.seen[src]
	switch {
	case !ok || seq < 0 || seq >= int64(len(s)):
		if c.bad == 0 {
			c.firstBad = bytes.Clone(line[:min(len(line), 200)])
		}
		c.bad++
	case s[seq]:
		c.dups++
	default:
		s[seq] = true
	}
}

// err reports the sources with lines missing, and lines not generated.
func (c *seqCheck) err() error {
	var errs []string
	for src, s := range c.seen {
		missing, first := 0, -1
		for i, ok := range s {
			if !ok {
				if missing == 0 {
					first = i
				}
				missing++
			}
		}
		if missing > 0 {
			errs = append(errs, fmt.Sprintf("source %s: %d of %d lines missing (first seq %d)", src, missing, len(s), first))
		}
	}
	if c.bad > 0 {
		errs = append(errs, fmt.Sprintf("%d of %d lines read back are not generated lines (first %q)", c.bad, c.read, c.firstBad))
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// extraAWSOptions are more keys of the AWS output's section, from
// SLUICE_BENCH_AWS_OPTIONS (YAML lines indented by 4 spaces), to measure
// other settings than the defaults.
func extraAWSOptions() string {
	if v := os.Getenv("SLUICE_BENCH_AWS_OPTIONS"); v != "" {
		return strings.TrimRight(v, "\n") + "\n"
	}
	return ""
}

// cleanupTB is the testing.TB awsfake.Start needs outside a test: Start
// only registers its shutdown with Cleanup, which cleanup runs. Any other
// method would panic (the embedded TB is nil).
type cleanupTB struct {
	testing.TB
	fns []func()
}

func (t *cleanupTB) Cleanup(f func()) { t.fns = append(t.fns, f) }
func (t *cleanupTB) Helper()          {}

func (t *cleanupTB) cleanup() {
	for i := len(t.fns) - 1; i >= 0; i-- {
		t.fns[i]()
	}
	t.fns = nil
}

package dockertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
)

// The FiNC layout with a broker tier (issue 8): each log type has its own
// destination.
const (
	kafkaTopicPrefix = "logs-"         // app: topic "logs-{field:log_type}"
	cwlGroupPrefix   = "/finc/"        // audit: group "/finc/{field:log_type}"
	firehoseStream   = "finc-access"   // access: one delivery stream
	cwlRetentionDays = 7               // set on the groups the agent creates
	throttleFor      = 4 * time.Second // CloudWatch Logs throttles this long
	deliveryWait     = 2 * time.Minute // after the containers exited
	pollEvery        = 500 * time.Millisecond
)

// TestFiNCBrokerTier is the end-to-end proof of issue 8: the real agent
// binary takes container logs from the docker input (json-file logs under
// /var/lib/docker/containers) and from Docker's fluentd driver (forward
// input, TCP and unix socket) at once, and routes them by log type to
// three streaming destinations on 127.0.0.1: app to a kafka output (a
// 3-broker kfake cluster, a topic per type, acks=all, key src), audit to
// cloudwatch_logs (awsfake; log group and stream from templates, created
// by the agent with a retention) and access to firehose (awsfake;
// aggregated newline-delimited JSON records). The AWS outputs get static
// credentials from the environment only (AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY; the fakes verify every SigV4 signature) and
// their endpoints from the config.
//
// Seven containers (two fluentd over TCP, two over the unix socket, three
// json-file) each write every log type, long lines of 40,000 and 16,384
// bytes included. Mid-run (once Kafka holds a tenth of the app lines) the
// Kafka broker leading the most app partitions is killed (listener and
// connections closed, its partitions moved), then CloudWatch Logs
// answers every PutLogEvents with ThrottlingException for 4 s.
//
// Everything is read back at the end (every Kafka topic through a
// consumer, every CloudWatch event and every Firehose record from the
// fakes' stores, records split into lines) and every sequence of every
// container and type must be there once at least, long lines at their
// exact length, in its type's destination only, with the right container
// metadata. Duplicates are allowed only from retries: per output at most
// the events the agent retried (sluice_output_retried_events_total).
func TestFiNCBrokerTier(t *testing.T) {
	requireDocker(t)
	const (
		n         = 3000 // sequences per type and container
		rate      = 600  // lines/s per container (all types): 15 s each
		longEvery = 100  // every 100th sequence is a long line
	)

	kc := startKafka(t)
	cwl := awsfake.Start(t)
	fh := awsfake.Start(t)
	fh.CreateDeliveryStream(firehoseStream)
	// CloudWatch Logs throttles PutLogEvents while throttled is set.
	var throttled atomic.Bool
	cwl.SetScript(awsfake.Script{Call: func(c *awsfake.Call) *awsfake.Fault {
		if c.Op == "PutLogEvents" && throttled.Load() {
			return &awsfake.Throttling
		}
		return nil
	}})
	// The agent inherits the test's environment: the AWS outputs take
	// their credentials from the default chain's environment provider, and
	// no shared config or instance metadata of the machine may interfere.
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_ACCESS_KEY_ID", awsfake.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awsfake.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	e := newEnv(t, envOptions{forward: true, docker: true, outputs: brokerTierOutputs(kc.addrs, cwl.URL(), fh.URL())})
	ready := e.start()
	t.Logf("agent ready %v after start; kafka %v, cloudwatch logs %s, firehose %s", ready.Round(time.Millisecond), kc.addrs, cwl.URL(), fh.URL())

	tcp, unix := "tcp://"+e.tcpAddr, "unix://"+e.unixPath
	args := []string{"-n", fmt.Sprint(n), "-rate", fmt.Sprint(rate), "-long-every", fmt.Sprint(longEvery)}
	specs := []spec{
		{name: "bt-tcp", driver: "fluentd", logOpts: fluentd(tcp), args: args},
		{name: "bt-tcp-subsec", driver: "fluentd", logOpts: fluentd(tcp, "fluentd-sub-second-precision=true"), args: args},
		{name: "bt-unix", driver: "fluentd", logOpts: fluentd(unix), args: args},
		{name: "bt-unix-subsec", driver: "fluentd", logOpts: fluentd(unix, "fluentd-sub-second-precision=true"), args: args},
		{name: "bt-json0", driver: "json-file", args: args},
		{name: "bt-json1", driver: "json-file", args: args},
		{name: "bt-json2", driver: "json-file", args: args},
	}
	x := expect{}
	for _, s := range specs {
		x.add(s, n)
	}
	wantApp := x.forType("app").total()

	t0 := time.Now()
	cs := mustRun(t, len(specs), specs...)
	t.Logf("docker run -d latencies: %s", summarize(cs))

	// Mid-run (each container logs for 15 s from its start, and the last
	// one has just started; on a loaded machine the agent lags further
	// behind): kill a broker once Kafka holds a tenth of the app lines...
	waitUntil(t, 2*time.Minute, "a tenth of the app lines in Kafka", func() bool { return kc.stored() >= wantApp/10 })
	// The victim is the broker leading the most app partitions (kfake
	// places leaders at random: a fixed node might lead none).
	atKill := kc.stored()
	node := kc.busiest()
	led := kc.ledBy(node)
	victim, conns := kc.kill(t, node)
	killedAt := time.Since(t0)
	t.Logf("broker %d (%s, %d connections closed) killed at +%v with %d of %d app records stored; it led partitions %v of the app topic, now led by %v",
		node, victim, conns, killedAt.Round(time.Millisecond), atKill, wantApp, led, kc.leaders())
	if atKill >= wantApp || len(led) == 0 || conns == 0 {
		t.Errorf("the broker was killed after every app record was stored, led no app partition or had no connection: nothing tested")
	}
	if moved := kc.ledBy(node); len(moved) > 0 {
		t.Errorf("partitions %v still led by the killed broker", moved)
	}
	// ...and throttle CloudWatch Logs for a while.
	time.Sleep(time.Second)
	throttled.Store(true)
	time.Sleep(throttleFor)
	throttled.Store(false)
	atThrottleEnd := len(cwl.AllLogEvents())
	throttledCalls := cwl.Answered("ThrottlingException")
	t.Logf("CloudWatch Logs throttled for %v until +%v: %d PutLogEvents answered ThrottlingException, %d audit events stored",
		throttleFor, time.Since(t0).Round(time.Millisecond), throttledCalls, atThrottleEnd)
	if throttledCalls == 0 {
		t.Errorf("no PutLogEvents call was throttled: nothing tested")
	}

	if err := waitExit(cs, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	written := time.Since(t0)

	// Read back until every sequence is in or the deadline: the AWS fakes'
	// stores incrementally, the Kafka topics in full once they hold enough
	// records.
	kt := newTally("app")
	ct := newTally("audit")
	ft := newTally("access")
	cr := &cwlReader{fake: cwl, tally: ct, seen: map[string]int{}}
	fr := &firehoseReader{fake: fh, tally: ft}
	deadline := time.Now().Add(deliveryWait)
	for {
		cr.read()
		fr.read()
		if ct.complete(x.forType("audit")) && ft.complete(x.forType("access")) && kc.stored() >= wantApp {
			kt = kc.readAll(t)
			if kt.complete(x.forType("app")) {
				break
			}
		}
		if time.Now().After(deadline) {
			kt = kc.readAll(t)
			t.Errorf("not everything delivered within %v of the containers' exit", deliveryWait)
			break
		}
		time.Sleep(pollEvery)
	}
	took := time.Since(t0)

	// Every sequence of every container and type, in its destination.
	retried := func(id string) int64 {
		return int64(e.metric(fmt.Sprintf(`sluice_output_retried_events_total{output=%q}`, id)))
	}
	var dupsAll int64
	for _, o := range []struct {
		id    string
		tally *tally
	}{{"bus", kt}, {"cwl", ct}, {"fh", ft}} {
		dups := o.tally.check(t, x.forType(o.tally.typ))
		r := retried(o.id)
		t.Logf("%s -> %s: %d sources, %d events read, %d distinct, %d duplicates (retried events %d), %d long lines verified, %d events of other runs' containers ignored",
			o.tally.typ, o.id, len(x.forType(o.tally.typ)), o.tally.events, o.tally.distinct(), dups, r, o.tally.longOK, o.tally.foreign)
		if dups > r {
			t.Errorf("%s: %d duplicates but only %d events retried: duplicates without retries", o.id, dups, r)
		}
		if want := int64(len(x.forType(o.tally.typ)) * n / longEvery); o.tally.longOK < want {
			t.Errorf("%s: %d long lines verified, want %d", o.id, o.tally.longOK, want)
		}
		dupsAll += dups
	}

	// The destinations' own figures.
	groups := cwl.LogGroups()
	var streams int
	for _, g := range groups {
		streams += len(g.Streams)
		if g.Name != cwlGroupPrefix+"audit" {
			t.Errorf("unexpected log group %s", g.Name)
		} else if g.RetentionInDays != cwlRetentionDays {
			t.Errorf("log group %s has retention %d days, want %d (set when created)", g.Name, g.RetentionInDays, cwlRetentionDays)
		}
	}
	if len(groups) != 1 || streams != len(specs) {
		t.Errorf("%d log groups with %d streams, want 1 with %d (one per container)", len(groups), streams, len(specs))
	}
	recs, maxLines := fr.records, fr.maxLines
	t.Logf("kafka: record errors %s, requests failed %v; cloudwatch logs: groups created %v, streams created %v, %d throttled answers, requests failed %v; firehose: %d records for %d lines (%.1f lines/record, up to %d), requests failed %v",
		e.metricSeries("sluice_output_kafka_record_errors_total"), e.metric(`sluice_output_requests_total{output="bus",result="failed"}`),
		e.metric(`sluice_cloudwatch_logs_created_total{output="cwl",kind="group"}`), e.metric(`sluice_cloudwatch_logs_created_total{output="cwl",kind="stream"}`),
		cwl.Answered("ThrottlingException"), e.metric(`sluice_output_requests_total{output="cwl",result="failed"}`),
		recs, ft.events, float64(ft.events)/float64(max(recs, 1)), maxLines, e.metric(`sluice_output_requests_total{output="fh",result="failed"}`))
	t.Logf("inputs: forward (driver) stored %v events, %v partial lines reassembled; docker (containers) read %v json-file lines",
		e.metric(`sluice_input_events_total{input="driver"}`), e.metric(`sluice_input_partial_reassemblies_total{input="driver"}`),
		e.metric(`sluice_input_lines_total{input="containers"}`))
	if maxLines < 2 {
		t.Errorf("no Firehose record holds more than one line: aggregation not used")
	}
	if a, b := cwl.AuthFailures(), fh.AuthFailures(); a+b != 0 {
		t.Errorf("signatures refused: cloudwatch logs %d, firehose %d", a, b)
	}
	if strings.Contains(e.proc.Log(), awsfake.SecretAccessKey) {
		t.Errorf("the secret access key appears in the agent's log")
	}
	t.Logf("%d lines (%d containers: 4 fluentd, 3 json-file) written in %v, all read back %v after the first docker run; missing 0 expected, duplicates %d",
		x.total(), len(specs), written.Round(time.Millisecond), took.Round(time.Millisecond), dupsAll)
}

// brokerTierOutputs is the outputs and routes sections of the layout.
func brokerTierOutputs(brokers []string, cwlURL, firehoseURL string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	delivery := "    delivery: {flush_interval: 500ms, retry_initial: 100ms, retry_max: 1s}"
	p("outputs:")
	p("  - id: bus")
	p("    type: kafka")
	p("    brokers: [%s]", `"`+strings.Join(brokers, `", "`)+`"`)
	p("    topic: %q", kafkaTopicPrefix+"{field:log_type}")
	p("    key_field: src")
	p("    acks: all")
	p("    request_timeout: 3s")
	p("    delivery_timeout: 10s")
	p("    dial_timeout: 1s")
	p("%s", delivery)
	p("  - id: cwl")
	p("    type: cloudwatch_logs")
	p("    region: %s", awsfake.Region)
	p("    endpoint: %q", cwlURL)
	p("    log_group_name: %q", cwlGroupPrefix+"{field:log_type}")
	p("    log_stream_name: %q", "{hostname}/{field:container_name}")
	p("    create_log_group: true")
	p("    create_log_stream: true")
	p("    retention_in_days: %d", cwlRetentionDays)
	p("    request_timeout: 5s")
	p("%s", delivery)
	p("  - id: fh")
	p("    type: firehose")
	p("    region: %s", awsfake.Region)
	p("    endpoint: %q", firehoseURL)
	p("    delivery_stream_name: %s", firehoseStream)
	p("    aggregate: true")
	p("    request_timeout: 5s")
	p("%s", delivery)
	p("routes:")
	for lt, out := range map[string]string{"app": "bus", "audit": "cwl", "access": "fh"} {
		p("  - match: %q", lt+".docker.*")
		p("    outputs: [%s]", out)
	}
	return b.String()
}

// metricSeries renders every series of one metric of the agent, for logs.
func (e *env) metricSeries(name string) string {
	text, err := agentproc.Scrape(e.metrics)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+"{") {
			out = append(out, strings.TrimPrefix(l, name))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}

// waitUntil polls cond every 50 ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kafka is a 3-broker kfake cluster whose brokers can be killed.
type kafka struct {
	c     *kfake.Cluster
	addrs []string // the seed brokers given to the agent

	mu        sync.Mutex
	listeners []*killableListener
}

// killableListener tracks a broker's listener and connections, so that a
// test can kill the broker as a crash would: listener and connections
// closed at once, requests in flight lost.
type killableListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// kill closes the listener and every connection it accepted and returns
// how many those were.
func (l *killableListener) kill() int {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	return len(l.conns)
}

// startKafka starts the cluster on 127.0.0.1: 3 brokers, topics created
// on demand with 6 partitions (two led by each broker).
func startKafka(t *testing.T) *kafka {
	k := &kafka{}
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(6),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			kl := &killableListener{Listener: ln}
			k.mu.Lock()
			k.listeners = append(k.listeners, kl)
			k.mu.Unlock()
			return kl, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k.c, k.addrs = c, c.ListenAddrs()
	return k
}

// kill removes broker node from the cluster (its partitions move to the
// others) and closes its listener and connections; it returns its address
// and how many connections it had accepted.
func (k *kafka) kill(t *testing.T, node int32) (string, int) {
	t.Helper()
	before := k.c.ListenAddrs()
	if err := k.c.RemoveNode(node); err != nil {
		t.Fatal(err)
	}
	after := k.c.ListenAddrs()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, l := range k.listeners {
		if a := l.Addr().String(); slices.Contains(before, a) && !slices.Contains(after, a) {
			return a, l.kill()
		}
	}
	t.Fatalf("no listener of node %d among %v", node, before)
	return "", 0
}

// ledBy returns the partitions of the app topic led by node.
func (k *kafka) ledBy(node int32) []int32 {
	var out []int32
	for _, p := range k.c.PartitionInfos(kafkaTopicPrefix + "app") {
		if p.Leader == node {
			out = append(out, p.Partition)
		}
	}
	slices.Sort(out)
	return out
}

// busiest returns the node leading the most partitions of the app topic
// (the lowest of those tied).
func (k *kafka) busiest() int32 {
	count := map[int32]int{}
	for _, p := range k.c.PartitionInfos(kafkaTopicPrefix + "app") {
		count[p.Leader]++
	}
	best := int32(-1)
	for node, c := range count {
		if best < 0 || c > count[best] || c == count[best] && node < best {
			best = node
		}
	}
	return best
}

// leaders maps each partition of the app topic to its leader, for logs.
func (k *kafka) leaders() map[int32]int32 {
	out := map[int32]int32{}
	for _, p := range k.c.PartitionInfos(kafkaTopicPrefix + "app") {
		out[p.Partition] = p.Leader
	}
	return out
}

// stored is the number of records in the app topic.
func (k *kafka) stored() int64 {
	var n int64
	for _, p := range k.c.PartitionInfos(kafkaTopicPrefix + "app") {
		n += p.HighWatermark - p.LogStartOffset
	}
	return n
}

// readAll lists every topic of the cluster and reads every record of each
// from the start to the high watermark into a tally of the app type; a
// record outside the app topic, or keyed otherwise than by its src, is a
// problem.
func (k *kafka) readAll(t *testing.T) *tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(k.c.ListenAddrs()...), kgo.DisableClientMetrics())
	if err != nil {
		t.Fatal(err)
	}
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, admin)
	admin.Close()
	if err != nil {
		t.Fatalf("kafka metadata: %v", err)
	}
	parts := map[string]map[int32]kgo.Offset{}
	var total int64
	for _, tp := range md.Topics {
		if tp.Topic == nil {
			continue
		}
		for _, p := range k.c.PartitionInfos(*tp.Topic) {
			if p.HighWatermark > p.LogStartOffset {
				if parts[*tp.Topic] == nil {
					parts[*tp.Topic] = map[int32]kgo.Offset{}
				}
				parts[*tp.Topic][p.Partition] = kgo.NewOffset().AtStart()
				total += p.HighWatermark - p.LogStartOffset
			}
		}
	}
	tl := newTally("app")
	if total == 0 {
		return tl
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.c.ListenAddrs()...), kgo.ConsumePartitions(parts),
		kgo.DisableClientMetrics(), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var read int64
	for read < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafka: read %d of %d records", read, total)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("kafka fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			read++
			src := tl.add(r.Value)
			switch {
			case r.Topic != kafkaTopicPrefix+"app":
				tl.problem("record in topic %s: %.100q", r.Topic, r.Value)
			case src != "" && string(r.Key) != src:
				tl.problem("record of %s keyed %q", src, r.Key)
			}
		})
	}
	return tl
}

// cwlReader reads the CloudWatch Logs fake's store incrementally.
type cwlReader struct {
	fake  *awsfake.Server
	tally *tally
	seen  map[string]int // group + "\x00" + stream -> events read
}

// read adds the events stored since the last read; an event outside the
// audit group, or in another container's stream, is a problem.
func (r *cwlReader) read() {
	host, _ := os.Hostname()
	for _, g := range r.fake.LogGroups() {
		for _, st := range g.Streams {
			evs := r.fake.LogEvents(g.Name, st)
			k := g.Name + "\x00" + st
			for _, ev := range evs[r.seen[k]:] {
				src := r.tally.add([]byte(ev.Message))
				if src == "" {
					continue
				}
				if want := host + "/" + containerOf(src); g.Name != cwlGroupPrefix+"audit" || st != want {
					r.tally.problem("event of %s in group %s stream %s, want %s%s stream %s", src, g.Name, st, cwlGroupPrefix, "audit", want)
				}
			}
			r.seen[k] = len(evs)
		}
	}
}

// firehoseReader reads the Firehose fake's delivery stream incrementally,
// splitting each record into its newline-delimited lines.
type firehoseReader struct {
	fake     *awsfake.Server
	tally    *tally
	records  int // records read
	maxLines int // the most lines in one record
}

func (r *firehoseReader) read() {
	recs := r.fake.FirehoseRecords(firehoseStream)
	for _, rec := range recs[r.records:] {
		data := string(rec.Data)
		if !strings.HasSuffix(data, "\n") {
			r.tally.problem("record of %d bytes does not end with a newline: %.100q", len(data), data)
		}
		lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
		r.maxLines = max(r.maxLines, len(lines))
		for _, l := range lines {
			r.tally.add([]byte(l))
		}
	}
	r.records = len(recs)
}

// tally counts the events one destination holds, by source and sequence,
// and checks each against what loggen wrote and the container's metadata.
type tally struct {
	typ     string // the log type routed to this destination
	seqs    map[string]map[int]int
	events  int64
	longOK  int64
	foreign int64 // events of containers of other runs (the docker input reads them all)

	nProblems int
	problems  []string
}

func newTally(typ string) *tally { return &tally{typ: typ, seqs: map[string]map[int]int{}} }

func (tl *tally) problem(format string, a ...any) {
	tl.nProblems++
	if len(tl.problems) < maxSamples {
		tl.problems = append(tl.problems, fmt.Sprintf(format, a...))
	}
}

// record is the part of an event's JSON the test checks: loggen's fields
// (parse_json) next to the raw line and the container metadata.
type record struct {
	LogType       string `json:"log_type"`
	Src           string `json:"src"`
	Seq           *int   `json:"seq"`
	Log           string `json:"log"`
	ContainerName string `json:"container_name"`
	ContainerID   string `json:"container_id"`
	Stream        string `json:"stream"`
}

// add counts one event given as its JSON and returns its source ("" when
// it is not one of this run's, or is broken). A long line must be exactly
// its announced length, or the event counts as missing.
func (tl *tally) add(v []byte) string {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		tl.problem("undecodable event: %v: %.100q", err, v)
		return ""
	}
	if !strings.HasPrefix(r.Src, "sd"+runID+"-") {
		tl.foreign++
		return ""
	}
	tl.events++
	if r.Seq == nil || r.LogType != tl.typ || srcType(r.Src) != tl.typ {
		tl.problem("event of type %q src %q seq %v routed to %s", r.LogType, r.Src, r.Seq, tl.typ)
		return ""
	}
	seq := *r.Seq
	log := strings.TrimSuffix(r.Log, "\n")
	if i := strings.LastIndex(log, `,"len":`); i >= 0 && strings.HasSuffix(log, "}") {
		want, err := strconv.Atoi(log[i+len(`,"len":`) : len(log)-1])
		if err != nil || want != len(log) {
			tl.problem("%s seq %d: log of %d bytes announces %q", r.Src, seq, len(log), log[i:])
			return ""
		}
		tl.longOK++
	}
	wantStream := "stdout"
	if seq%3 == 2 { // loggen's default -stderr-every 3
		wantStream = "stderr"
	}
	if r.ContainerName != containerOf(r.Src) || len(r.ContainerID) != 64 || r.Stream != wantStream {
		tl.problem("%s seq %d: container_name %q id %q stream %q (want %q)", r.Src, seq, r.ContainerName, r.ContainerID, r.Stream, wantStream)
	}
	if tl.seqs[r.Src] == nil {
		tl.seqs[r.Src] = map[int]int{}
	}
	tl.seqs[r.Src][seq]++
	return r.Src
}

// containerOf is the container of a source "<container>-<type>".
func containerOf(src string) string { return src[:strings.LastIndexByte(src, '-')] }

// complete reports whether every expected sequence was counted.
func (tl *tally) complete(x expect) bool {
	for src, n := range x {
		if len(tl.seqs[src]) < n {
			return false
		}
	}
	return true
}

func (tl *tally) distinct() int {
	d := 0
	for _, s := range tl.seqs {
		d += len(s)
	}
	return d
}

// check fails the test for every expected sequence missing, every
// sequence or source not expected and every problem; it returns the
// duplicates (copies beyond the first).
func (tl *tally) check(t *testing.T, x expect) int64 {
	t.Helper()
	var dups int64
	for src, n := range x {
		var missing []int
		for i := range n {
			switch k := tl.seqs[src][i]; {
			case k == 0:
				missing = append(missing, i)
			case k > 1:
				dups += int64(k - 1)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: %s: %d of %d sequences missing, first %v", tl.typ, src, len(missing), n, missing[:min(len(missing), 10)])
		}
		if extra := len(tl.seqs[src]) - (n - len(missing)); extra > 0 {
			t.Errorf("%s: %s: %d sequences beyond %d", tl.typ, src, extra, n)
		}
	}
	var unexpected []string
	for src := range tl.seqs {
		if _, ok := x[src]; !ok {
			unexpected = append(unexpected, src)
		}
	}
	sort.Strings(unexpected)
	if len(unexpected) > 0 {
		t.Errorf("%s: unexpected sources %v", tl.typ, unexpected)
	}
	if tl.nProblems > 0 {
		t.Errorf("%s: %d problems; first: %q", tl.typ, tl.nProblems, tl.problems)
	}
	return dups
}

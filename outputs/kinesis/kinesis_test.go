package kinesis

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
	"github.com/sluice-agent/sluice/outputs/internal/awsout/awstest"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

const wait = 30 * time.Second

func testConfig(fake *awsfake.Server, stream string) config.KinesisOutput {
	c := config.DefaultKinesisOutput()
	c.StreamName = stream
	c.Endpoint = fake.URL()
	c.Region = awsfake.Region
	c.AccessKeyID = awsfake.AccessKeyID
	c.SecretAccessKey = config.Secret(awsfake.SecretAccessKey)
	return c
}

type run struct {
	o    *Output
	q    *buffer.Queue
	set  *metrics.Set
	logs *awstest.LogBuffer
	dir  string
	stop func()
}

func start(t testing.TB, cfg config.KinesisOutput, d config.Delivery) *run {
	t.Helper()
	dir := t.TempDir()
	r := &run{q: awstest.OpenQueue(t, dir+"/q"), set: metrics.NewSet(), logs: &awstest.LogBuffer{}, dir: dir}
	o, err := New("kin", cfg, d, dir, r.q, r.logs.Logger(), r.set)
	if err != nil {
		t.Fatal(err)
	}
	r.o, r.stop = o, awstest.Start(t, o)
	return r
}

func stored(t testing.TB, fake *awsfake.Server, stream string) []int {
	var out []int
	for _, r := range fake.KinesisRecords(stream) {
		out = append(out, awstest.Lines(t, r.Data)...)
	}
	return out
}

// TestConformance runs the output suite against awsfake: per-record
// ProvisionedThroughputExceededException for "retry", 500
// InternalFailure for every request when down, hung requests when
// hanging. Kinesis never refuses a single record for good (its per-record
// errors are all transient), so the refusal case does not apply.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewService: newService,
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			d := awstest.FastDelivery()
			d.RetryMax = 100 * time.Millisecond
			o, err := New(id, testConfig(svc.(*service).fake, "conf"), d, dataDir, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
		PerEvent: true,
	})
}

type service struct {
	fake *awsfake.Server

	mu       sync.Mutex
	attempts map[int]int
	failOnce func(int) bool
	failed   map[int]bool
}

func newService(t *testing.T) conformance.Service {
	s := &service{fake: awsfake.Start(t), attempts: map[int]int{}, failed: map[int]bool{}}
	s.fake.CreateKinesisStream("conf", 4)
	s.fake.SetScript(awsfake.Script{Record: func(_, _ string, _ int, r *awsfake.Record) (string, string) {
		seq := awstest.Lines(t, r.Data)[0]
		s.mu.Lock()
		defer s.mu.Unlock()
		s.attempts[seq]++
		if s.failOnce != nil && s.failOnce(seq) && !s.failed[seq] {
			s.failed[seq] = true
			return "ProvisionedThroughputExceededException", "Rate exceeded for shard shardId-000000000001 in stream conf under account 123456789012."
		}
		return "", ""
	}})
	return s
}

func (s *service) SetMode(_ *testing.T, m conformance.Mode) {
	s.fake.SetMode(map[conformance.Mode]awsfake.Mode{conformance.Up: awsfake.Up, conformance.Down: awsfake.Down, conformance.Hang: awsfake.Hang}[m])
}

func (s *service) Accepted(t *testing.T) map[int]int {
	out := map[int]int{}
	for _, seq := range stored(t, s.fake, "conf") {
		out[seq]++
	}
	return out
}

func (s *service) Attempts(*testing.T) map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]int{}
	for k, v := range s.attempts {
		out[k] = v
	}
	return out
}

func (s *service) FailOnce(_ *testing.T, match func(int) bool) {
	s.mu.Lock()
	s.failOnce = match
	s.mu.Unlock()
}

func (s *service) Refuse(t *testing.T, _ func(int) bool) {
	t.Fatal("kinesis refuses no single record for good")
}

// TestLimits: records of 1 MiB (data and key) exactly, just over (dead
// letter, too_large), and 2,000 small ones: every request within 500
// records and 5 MiB, every record within 1 MiB, all delivered once; the
// fake refuses nothing.
func TestLimits(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateKinesisStream("big", 2)
	var mu sync.Mutex
	var reqs [][2]int // records, bytes
	fake.SetScript(awsfake.Script{Call: func(c *awsfake.Call) *awsfake.Fault {
		n := 0
		for _, r := range c.Records {
			size := len(r.Data) + len(r.PartitionKey)
			if size > 1<<20 {
				t.Errorf("record of %d bytes", size)
			}
			n += size
		}
		mu.Lock()
		reqs = append(reqs, [2]int{len(c.Records), n})
		mu.Unlock()
		return nil
	}})
	c := testConfig(fake, "big")
	c.Format = "raw"
	d := awstest.FastDelivery()
	d.FlushInterval = 5 * time.Second // batches fill (sealed when full)
	r := start(t, c, d)
	// raw data = the log value + "\n"; the random key is 16 bytes.
	exact := 1<<20 - 16 - 1
	for i := range 7 {
		size := exact
		if i == 3 {
			size++ // one byte over: refused
		}
		log := fmt.Sprintf("%d ", i)
		log += strings.Repeat("k", size-len(log))
		rec := msgp.AppendMapHeader(nil, 1)
		rec = msgp.AppendString(msgp.AppendString(rec, "log"), log)
		awstest.Append(t, r.q, "big", awstest.Event{Time: awstest.Time(i), Record: rec})
	}
	var small []awstest.Event
	for i := range 2000 {
		small = append(small, awstest.Event{Time: awstest.Time(i), Record: awstest.Record(100 + i)})
	}
	awstest.Append(t, r.q, "small", small...)
	awstest.WaitEmpty(t, r.q, wait)
	r.stop()
	recs := fake.KinesisRecords("big")
	bigs, smalls := 0, 0
	for _, rc := range recs {
		if len(rc.Data) == exact+1 {
			bigs++
		} else {
			smalls++
		}
	}
	if bigs != 6 || smalls != 2000 {
		t.Errorf("%d large and %d small records stored", bigs, smalls)
	}
	if st := r.q.Stats(); st.DeadLetteredEvents != 1 || st.DeliveredEvents != 2006 {
		t.Errorf("queue %+v", st)
	}
	if got := r.counter(`sluice_output_dead_lettered_events_total{output="kin",reason="too_large"}`); got != 1 {
		t.Errorf("%d dead-lettered too_large", got)
	}
	mu.Lock()
	defer mu.Unlock()
	maxRecs, maxBytes := 0, 0
	for _, q := range reqs {
		maxRecs, maxBytes = max(maxRecs, q[0]), max(maxBytes, q[1])
		if q[0] > 500 || q[1] > 5<<20 {
			t.Errorf("request of %d records, %d bytes", q[0], q[1])
		}
	}
	if maxRecs != 500 || maxBytes != 5<<20 {
		t.Errorf("largest requests: %d records, %d bytes (want 500 and exactly 5 MiB: five 1 MiB records)", maxRecs, maxBytes)
	}
	if n := fake.Answered("ValidationException") + fake.Answered("InvalidArgumentException"); n != 0 {
		t.Errorf("%d requests refused", n)
	}
}

func (r *run) counter(name string) uint64 { return r.set.GetOrCreateCounter(name).Get() }

// TestPartialFailures: a third of the records fail once
// (ProvisionedThroughputExceededException), a few twice
// (InternalFailure); only those are sent again and every seq number is
// stored exactly once.
func TestPartialFailures(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateKinesisStream("s", 4)
	var mu sync.Mutex
	attempts := map[int]int{}
	fake.SetScript(awsfake.Script{Record: func(_, _ string, _ int, r *awsfake.Record) (string, string) {
		seq := awstest.Lines(t, r.Data)[0]
		mu.Lock()
		defer mu.Unlock()
		attempts[seq]++
		switch {
		case seq%3 == 0 && attempts[seq] == 1:
			return "ProvisionedThroughputExceededException", "Rate exceeded for shard"
		case seq%50 == 1 && attempts[seq] <= 2:
			return "InternalFailure", "Internal service failure."
		}
		return "", ""
	}})
	r := start(t, testConfig(fake, "s"), awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 20, 250)
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, stored(t, fake, "s"), 5000)
	mu.Lock()
	defer mu.Unlock()
	for seq := range 5000 {
		want := 1
		switch {
		case seq%3 == 0:
			want = 2
		case seq%50 == 1:
			want = 3
		}
		if seq%3 == 0 && seq%50 == 1 {
			want = 3
		}
		if attempts[seq] != want {
			t.Fatalf("seq %d sent %d times, want %d", seq, attempts[seq], want)
		}
	}
	if got := r.counter(`sluice_kinesis_failed_records_total{output="kin",code="ProvisionedThroughputExceededException"}`); got != 1667 {
		t.Errorf("%d throughput failures counted", got)
	}
}

// TestWholeRequestErrors: throttling, KMS throttling and a missing stream
// fail whole requests, retried with back-off (the SDK never retries on
// its own: one HTTP request per attempt) until they pass; the missing
// stream is logged at error level with a hint.
func TestWholeRequestErrors(t *testing.T) {
	fake := awsfake.Start(t)
	fake.FailNext("PutRecords", 2, awsfake.ProvisionedThroughputExceeded)
	fake.FailNext("PutRecords", 1, awsfake.KMSThrottling)
	r := start(t, testConfig(fake, "later"), awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 2, 100)
	deadline := time.Now().Add(wait)
	for fake.Answered("ResourceNotFoundException") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.q.Stats(); st.AckedChunks != 0 {
		t.Fatalf("queue %+v without a stream", st)
	}
	fake.CreateKinesisStream("later", 1)
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, stored(t, fake, "later"), 200)
	if fake.Answered("ProvisionedThroughputExceededException") != 2 || fake.Answered("KMSThrottlingException") != 1 {
		t.Errorf("faults answered: %d, %d", fake.Answered("ProvisionedThroughputExceededException"), fake.Answered("KMSThrottlingException"))
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "ResourceNotFoundException") || !strings.Contains(logs, "the stream does not exist") {
		t.Errorf("logs:\n%s", logs)
	}
	if n, f := fake.Requests("PutRecords"), fake.Answered("ResourceNotFoundException"); n != 3+f+1 && n != 3+f+2 {
		t.Errorf("%d requests for %d not-found answers", n, f)
	}
}

// TestWrongCredentials: a wrong secret keeps everything queued, logged
// without the secret; once the service takes the key, all is delivered.
func TestWrongCredentials(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateKinesisStream("s", 2)
	c := testConfig(fake, "s")
	c.SecretAccessKey = "wrong-kinesis-secret"
	r := start(t, c, awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 3, 100)
	deadline := time.Now().Add(wait)
	for fake.AuthFailures() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.q.Stats(); st.Pending != 3 || len(fake.KinesisRecords("s")) != 0 {
		t.Fatalf("queue %+v", st)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "InvalidSignatureException") || strings.Contains(logs, "wrong-kinesis-secret") {
		t.Errorf("logs:\n%s", logs)
	}
	fake.SetKeys(awsfake.Key{AccessKeyID: awsfake.AccessKeyID, SecretAccessKey: "wrong-kinesis-secret"})
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, stored(t, fake, "s"), 300)
}

// TestPartitionKeysAndARN: keys come from a nested field (cut at 256
// characters), random when it is missing; the stream is named by ARN.
func TestPartitionKeysAndARN(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateKinesisStream("s", 8)
	c := testConfig(fake, "")
	c.StreamARN = fake.StreamARN("s")
	c.PartitionKey = "kubernetes.pod_name"
	c.AppendNewline = new(false)
	r := start(t, c, awstest.FastDelivery())
	var evs []awstest.Event
	long := strings.Repeat("é", 300)
	for i := range 30 {
		rec := msgp.AppendMapHeader(nil, 2)
		rec = msgp.AppendInt(msgp.AppendString(rec, "seq"), i)
		rec = msgp.AppendString(rec, "kubernetes")
		switch i % 3 {
		case 0:
			rec = msgp.AppendMapHeader(rec, 1)
			rec = msgp.AppendString(msgp.AppendString(rec, "pod_name"), fmt.Sprintf("pod-%d", i%2))
		case 1:
			rec = msgp.AppendMapHeader(rec, 1)
			rec = msgp.AppendString(msgp.AppendString(rec, "pod_name"), long)
		default:
			rec = msgp.AppendMapHeader(rec, 0)
		}
		evs = append(evs, awstest.Event{Time: awstest.Time(i), Record: rec})
	}
	awstest.Append(t, r.q, "k", evs...)
	awstest.WaitEmpty(t, r.q, wait)
	random := map[string]bool{}
	for _, rc := range fake.KinesisRecords("s") {
		seq := awstest.Seq(t, rc.Data)
		if bytes.HasSuffix(rc.Data, []byte("\n")) {
			t.Errorf("newline with append_newline off")
		}
		switch seq % 3 {
		case 0:
			if rc.PartitionKey != fmt.Sprintf("pod-%d", seq%2) {
				t.Errorf("seq %d key %q", seq, rc.PartitionKey)
			}
		case 1:
			if rc.PartitionKey != strings.Repeat("é", 256) {
				t.Errorf("seq %d key of %d bytes", seq, len(rc.PartitionKey))
			}
		default:
			if len(rc.PartitionKey) != 16 {
				t.Errorf("seq %d random key %q", seq, rc.PartitionKey)
			}
			random[rc.PartitionKey] = true
		}
	}
	if len(random) != 10 || r.counter(`sluice_kinesis_random_partition_keys_total{output="kin"}`) != 10 {
		t.Errorf("%d distinct random keys", len(random))
	}
}

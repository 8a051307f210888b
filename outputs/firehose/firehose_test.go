package firehose

import (
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

func testConfig(fake *awsfake.Server, stream string) config.FirehoseOutput {
	c := config.DefaultFirehoseOutput()
	c.DeliveryStreamName = stream
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

func start(t testing.TB, cfg config.FirehoseOutput, d config.Delivery) *run {
	t.Helper()
	dir := t.TempDir()
	r := &run{q: awstest.OpenQueue(t, dir+"/q"), set: metrics.NewSet(), logs: &awstest.LogBuffer{}, dir: dir}
	o, err := New("fh", cfg, d, dir, r.q, r.logs.Logger(), r.set)
	if err != nil {
		t.Fatal(err)
	}
	r.o, r.stop = o, awstest.Start(t, o)
	return r
}

func (r *run) counter(name string) uint64 { return r.set.GetOrCreateCounter(name).Get() }

func stored(t testing.TB, fake *awsfake.Server, stream string) []int {
	var out []int
	for _, r := range fake.FirehoseRecords(stream) {
		out = append(out, awstest.Lines(t, r.Data)...)
	}
	return out
}

// TestConformance runs the output suite against awsfake, one event per
// record: per-record ServiceUnavailableException for "retry", 503 for
// every request when down, hung requests when hanging. Firehose's
// per-record errors are all transient, so the refusal case does not
// apply.
func TestConformance(t *testing.T) { conformance.Run(t, harness(false)) }

// TestConformanceAggregated runs it with aggregation on: a record holds
// many events, and a failed record retries all of them, so the per-event
// case does not apply (TestAggregation covers it).
func TestConformanceAggregated(t *testing.T) {
	h := harness(true)
	h.PerEvent = false
	conformance.Run(t, h)
}

func harness(aggregate bool) conformance.Harness {
	return conformance.Harness{
		NewService: newService,
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			d := awstest.FastDelivery()
			d.RetryMax = 100 * time.Millisecond
			c := testConfig(svc.(*service).fake, "conf")
			c.Aggregate = aggregate
			o, err := New(id, c, d, dataDir, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
		PerEvent: true,
	}
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
	s.fake.CreateDeliveryStream("conf")
	s.fake.SetScript(awsfake.Script{Record: func(_, _ string, _ int, r *awsfake.Record) (string, string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		fail := false
		for _, seq := range awstest.Lines(t, r.Data) {
			s.attempts[seq]++
			if s.failOnce != nil && s.failOnce(seq) && !s.failed[seq] {
				s.failed[seq], fail = true, true
			}
		}
		if fail {
			return "ServiceUnavailableException", "Slow down."
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
	t.Fatal("firehose refuses no single record for good")
}

func rawRecord(seq, size int) []byte {
	log := fmt.Sprintf(`{"seq":%d,"pad":"`, seq)
	log += strings.Repeat("f", max(0, size-len(log)-2)) + `"}`
	r := msgp.AppendMapHeader(nil, 1)
	return msgp.AppendString(msgp.AppendString(r, "log"), log)
}

// watch checks every PutRecordBatch call the fake accepted against the
// limits and returns the calls' record counts and sizes.
type watch struct {
	mu   sync.Mutex
	reqs [][2]int
}

func watchLimits(t testing.TB, fake *awsfake.Server) *watch {
	w := &watch{}
	fake.SetScript(awsfake.Script{Call: func(c *awsfake.Call) *awsfake.Fault {
		n := 0
		for _, r := range c.Records {
			if len(r.Data) > 1000<<10 {
				t.Errorf("record of %d bytes", len(r.Data))
			}
			n += len(r.Data)
		}
		if len(c.Records) > 500 || n > 4<<20 {
			t.Errorf("request of %d records, %d bytes", len(c.Records), n)
		}
		w.mu.Lock()
		w.reqs = append(w.reqs, [2]int{len(c.Records), n})
		w.mu.Unlock()
		return nil
	}})
	return w
}

func (w *watch) max() (recs, bytes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, q := range w.reqs {
		recs, bytes = max(recs, q[0]), max(bytes, q[1])
	}
	return recs, bytes
}

// TestLimits: lines of exactly 1,000 KiB (newline included) are sent
// four to a request (4 MiB allows four), one byte more is dead-lettered
// (too_large), and 1,200 small ones make requests of 500 records.
func TestLimits(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateDeliveryStream("big")
	w := watchLimits(t, fake)
	c := testConfig(fake, "big")
	c.Format = "raw"
	d := awstest.FastDelivery()
	d.FlushInterval = 5 * time.Second // batches fill (sealed when full)
	r := start(t, c, d)
	const limit = 1000 << 10
	for i := range 9 {
		size := limit - 1 // + "\n"
		if i == 4 {
			size++
		}
		awstest.Append(t, r.q, "big", awstest.Event{Time: awstest.Time(i), Record: rawRecord(i, size)})
	}
	var small []awstest.Event
	for i := range 1200 {
		small = append(small, awstest.Event{Time: awstest.Time(i), Record: rawRecord(100+i, 100)})
	}
	awstest.Append(t, r.q, "small", small...)
	awstest.WaitEmpty(t, r.q, wait)
	got := stored(t, fake, "big")
	if len(got) != 8+1200 {
		t.Fatalf("%d lines stored", len(got))
	}
	if st := r.q.Stats(); st.DeadLetteredEvents != 1 {
		t.Errorf("queue %+v", st)
	}
	if recs, bytes := w.max(); recs != 500 || bytes < 4*limit || bytes > 4<<20 {
		t.Errorf("largest requests: %d records, %d bytes", recs, bytes)
	}
	if fake.Answered("InvalidArgumentException") != 0 {
		t.Error("a request was refused")
	}
}

// TestAggregation: with aggregate on, 3,000 events fill records up to
// 1,000 KiB (whole lines only); a failed record retries all its events,
// and only those; every seq is stored exactly once.
func TestAggregation(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateDeliveryStream("agg")
	var mu sync.Mutex
	attempts := map[int]int{}
	recordsSeen, failedLines := 0, 0
	fake.SetScript(awsfake.Script{Record: func(_, _ string, i int, r *awsfake.Record) (string, string) {
		if len(r.Data) > 1000<<10 {
			t.Errorf("record of %d bytes", len(r.Data))
		}
		mu.Lock()
		defer mu.Unlock()
		recordsSeen++
		lines := awstest.Lines(t, r.Data)
		for _, seq := range lines {
			attempts[seq]++
		}
		if i == 1 && failedLines == 0 {
			failedLines = len(lines)
			return "InternalFailure", "Internal service failure."
		}
		return "", ""
	}})
	c := testConfig(fake, "agg")
	c.Aggregate = true
	c.MaxRecordBytes = 64 << 10 // a few records per request
	d := awstest.FastDelivery()
	d.FlushInterval = 5 * time.Second // batches fill (sealed when full)
	r := start(t, c, d)
	awstest.Fill(t, r.q, 0, 30, 100)
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, stored(t, fake, "agg"), 3000)
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, n := range attempts {
		switch n {
		case 1:
		case 2:
			twice++
		default:
			t.Fatalf("an event sent %d times", n)
		}
	}
	if twice != failedLines || failedLines < 300 {
		t.Errorf("%d events retried, want the failed record's %d", twice, failedLines)
	}
	if recordsSeen > 3000/failedLines+10 {
		t.Errorf("%d records for 3,000 events", recordsSeen)
	}
}

// TestPartialAndWholeFailures: per-record ServiceUnavailableException
// retries only those records; whole-request 503s and a missing stream
// retry everything with back-off; nothing is lost or duplicated.
func TestPartialAndWholeFailures(t *testing.T) {
	fake := awsfake.Start(t)
	var mu sync.Mutex
	attempts := map[int]int{}
	fake.SetScript(awsfake.Script{Record: func(_, _ string, _ int, r *awsfake.Record) (string, string) {
		seq := awstest.Lines(t, r.Data)[0]
		mu.Lock()
		defer mu.Unlock()
		attempts[seq]++
		if seq%7 == 0 && attempts[seq] == 1 {
			return "ServiceUnavailableException", "Slow down."
		}
		return "", ""
	}})
	fake.FailNext("PutRecordBatch", 2, awsfake.ServiceUnavailable)
	r := start(t, testConfig(fake, "late"), awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 10, 100)
	deadline := time.Now().Add(wait)
	for fake.Answered("ResourceNotFoundException") < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fake.CreateDeliveryStream("late")
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, stored(t, fake, "late"), 1000)
	mu.Lock()
	defer mu.Unlock()
	for seq := range 1000 {
		if want := 1 + b2i(seq%7 == 0); attempts[seq] != want {
			t.Fatalf("seq %d reached the stream %d times, want %d", seq, attempts[seq], want)
		}
	}
	if got := r.counter(`sluice_firehose_failed_records_total{output="fh",code="ServiceUnavailableException"}`); got != 143 {
		t.Errorf("%d failed records counted", got)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestWrongCredentials: a wrong secret keeps everything queued, logged
// at error level without the secret; once the service takes the key, all
// is delivered.
func TestWrongCredentials(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateDeliveryStream("s")
	c := testConfig(fake, "s")
	c.SecretAccessKey = "wrong-firehose-secret"
	r := start(t, c, awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 3, 100)
	deadline := time.Now().Add(wait)
	for fake.AuthFailures() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.q.Stats(); st.Pending != 3 || len(fake.FirehoseRecords("s")) != 0 {
		t.Fatalf("queue %+v", st)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "wrong-firehose-secret") {
		t.Errorf("logs:\n%s", logs)
	}
	fake.SetKeys(awsfake.Key{AccessKeyID: awsfake.AccessKeyID, SecretAccessKey: "wrong-firehose-secret"})
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, stored(t, fake, "s"), 300)
}

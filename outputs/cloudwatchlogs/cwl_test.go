package cloudwatchlogs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
	"github.com/sluice-agent/sluice/outputs/internal/awsout/awstest"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
)

const wait = 30 * time.Second

// limitWatch records every PutLogEvents call the fake accepted and checks
// it against the documented limits.
type limitWatch struct {
	mu    sync.Mutex
	calls []*awsfake.Call
	t     testing.TB
}

func watchLimits(t testing.TB, fake *awsfake.Server) *limitWatch {
	w := &limitWatch{t: t}
	fake.SetScript(awsfake.Script{Call: func(c *awsfake.Call) *awsfake.Fault {
		if c.Op != "PutLogEvents" {
			return nil
		}
		size := 0
		for i, e := range c.Events {
			size += len(e.Message) + 26
			if len(e.Message)+26 > 262144 {
				t.Errorf("event of %d bytes", len(e.Message))
			}
			if i > 0 && e.Timestamp < c.Events[i-1].Timestamp {
				t.Errorf("events out of order")
			}
		}
		if size > 1048576 || len(c.Events) > 10000 {
			t.Errorf("call of %d events, %d bytes", len(c.Events), size)
		}
		if span := c.Events[len(c.Events)-1].Timestamp - c.Events[0].Timestamp; span >= 24*3600*1000 {
			t.Errorf("call spans %dms", span)
		}
		w.mu.Lock()
		w.calls = append(w.calls, &awsfake.Call{Group: c.Group, Stream: c.Stream, Events: slices.Clone(c.Events)})
		w.mu.Unlock()
		return nil
	}})
	return w
}

func (w *limitWatch) sizes() (events []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.calls {
		events = append(events, len(c.Events))
	}
	return events
}

func rawRecord(seq int, log string) []byte {
	r := msgp.AppendMapHeader(nil, 2)
	r = msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
	return msgp.AppendString(msgp.AppendString(r, "log"), log)
}

// TestDeliveryAndNames: 20,000 events of three tags, interleaved, reach
// a group and a stream per tag (created on first use, with retention,
// class and KMS key), each exactly once, in batches that hold several
// streams.
func TestDeliveryAndNames(t *testing.T) {
	fake := awsfake.Start(t)
	w := watchLimits(t, fake)
	c := testConfig(fake)
	c.LogGroupName = "/app/{tag[0]}"
	c.LogStreamName = "{hostname}/{tag}/{field:kubernetes.pod_name}"
	c.RetentionInDays = 30
	c.LogGroupClass = "INFREQUENT_ACCESS"
	c.KMSKeyID = "arn:aws:kms:us-east-1:123456789012:key/k"
	r := start(t, c, awstest.FastDelivery())
	tags := []string{"web.a", "api.b", "web:c*"}
	n := 0
	for range 40 {
		for _, tag := range tags {
			evs := make([]awstest.Event, 0, 167)
			for range 167 {
				rec := msgp.AppendMapHeader(nil, 2)
				rec = msgp.AppendInt(msgp.AppendString(rec, "seq"), n)
				rec = msgp.AppendString(msgp.AppendString(rec, "kubernetes"), "") // not a map: {field:...} falls back
				if n%2 == 0 {
					rec = msgp.AppendMapHeader(rec[:len(rec)-1], 1) // replace "" with a map
					rec = msgp.AppendString(msgp.AppendString(rec, "pod_name"), "pod-1")
				}
				evs = append(evs, awstest.Event{Time: awstest.Time(n), Record: rec})
				n++
			}
			awstest.Append(t, r.q, tag, evs...)
		}
	}
	awstest.WaitEmpty(t, r.q, wait)
	var got []int
	for _, e := range fake.AllLogEvents() {
		got = append(got, awstest.Seq(t, []byte(e.Message)))
	}
	awstest.CheckExactlyOnce(t, got, n)
	groups := fake.LogGroups()
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
		if g.RetentionInDays != 30 || g.Class != "INFREQUENT_ACCESS" || g.KMSKeyID != c.KMSKeyID {
			t.Errorf("group %+v", g)
		}
		for _, s := range g.Streams {
			names = append(names, s)
		}
	}
	host := r.o.s.stream.parts[0].text
	want := []string{"/app/api", string(host) + "/api.b/pod-1", string(host) + "/api.b/unknown",
		"/app/web", string(host) + "/web.a/pod-1", string(host) + "/web.a/unknown", "/app/web_c_", string(host) + "/web_c_/pod-1", string(host) + "/web_c_/unknown"}
	if !slices.Equal(names, want) {
		t.Errorf("groups and streams %q, want %q", names, want)
	}
	if got := r.counter(`sluice_cloudwatch_logs_created_total{output="cwl",kind="stream"}`); got != 6 {
		t.Errorf("%d streams created", got)
	}
	if got := fake.Answered("InvalidParameterException"); got != 0 {
		t.Errorf("%d calls refused as invalid", got)
	}
	t.Logf("%d calls: %v", len(w.sizes()), w.sizes())
}

// TestLimitsLargeEvents: events at the 256 KiB limit (message 262118
// bytes) fill calls of exactly 1,048,576 bytes (four events); longer
// ones are truncated to the limit, marked and counted, never dropped.
func TestLimitsLargeEvents(t *testing.T) {
	fake := awsfake.Start(t)
	w := watchLimits(t, fake)
	c := testConfig(fake)
	c.Format = "raw"
	d := awstest.FastDelivery()
	d.FlushInterval = 5 * time.Second // batches fill (sealed when full)
	r := start(t, c, d)
	const maxMsg = 262144 - 26
	var evs []awstest.Event
	sizes := []int{maxMsg, maxMsg, maxMsg, maxMsg, maxMsg, maxMsg + 1, 300 << 10, maxMsg - 1, 10, maxMsg}
	for i, n := range sizes {
		prefix := fmt.Sprintf("%d ", i)
		msg := prefix + strings.Repeat("é", (n-len(prefix))/2) + strings.Repeat("x", (n-len(prefix))%2)
		evs = append(evs, awstest.Event{Time: awstest.Time(i), Record: rawRecord(i, msg)})
	}
	for _, ev := range evs {
		awstest.Append(t, r.q, "big", ev) // a chunk each: the queue's chunks are 1 MiB
	}
	awstest.WaitEmpty(t, r.q, wait)
	stored := fake.LogEvents("/sluice/big", "big")
	if len(stored) != len(sizes) {
		t.Fatalf("%d events stored, want %d", len(stored), len(sizes))
	}
	truncated := 0
	for _, e := range stored {
		var i int
		fmt.Sscanf(e.Message, "%d ", &i)
		want := sizes[i]
		if want > maxMsg {
			truncated++
			if len(e.Message) > maxMsg || len(e.Message) < maxMsg-3 || !strings.HasSuffix(e.Message, "[truncated]") {
				t.Errorf("event %d: %d bytes, suffix %q", i, len(e.Message), e.Message[len(e.Message)-12:])
			}
			continue
		}
		if len(e.Message) != want {
			t.Errorf("event %d: %d bytes, want %d", i, len(e.Message), want)
		}
	}
	if truncated != 2 || r.counter(`sluice_output_truncated_events_total{output="cwl"}`) != 2 {
		t.Errorf("truncated %d, counted %d", truncated, r.counter(`sluice_output_truncated_events_total{output="cwl"}`))
	}
	if got := fake.Answered("InvalidParameterException"); got != 0 {
		t.Errorf("%d calls refused", got)
	}
	sz := w.sizes()
	if slices.Max(sz) != 4 {
		t.Errorf("calls of %v events: the 26-byte overhead should allow exactly four maximal events", sz)
	}
}

// TestLimitsManyTinyEvents: 25,000 one-byte events make calls of at most
// 10,000 events.
func TestLimitsManyTinyEvents(t *testing.T) {
	fake := awsfake.Start(t)
	w := watchLimits(t, fake)
	c := testConfig(fake)
	c.Format = "raw"
	d := awstest.FastDelivery()
	d.FlushInterval = 5 * time.Second // batches fill (sealed when full)
	r := start(t, c, d)
	n := 0
	for range 25 {
		evs := make([]awstest.Event, 1000)
		for i := range evs {
			evs[i] = awstest.Event{Time: awstest.Time(n), Record: rawRecord(n, "x")}
			n++
		}
		awstest.Append(t, r.q, "tiny", evs...)
	}
	awstest.WaitEmpty(t, r.q, wait)
	if got := len(fake.LogEvents("/sluice/tiny", "tiny")); got != n {
		t.Fatalf("%d events stored, want %d", got, n)
	}
	sz := w.sizes()
	if slices.Max(sz) != 10000 || len(sz) > 5 {
		t.Errorf("calls of %v events", sz)
	}
}

// TestSpanAndOrder: events in reverse order over three days of one
// stream are sorted and cut into calls of less than 24 hours each.
func TestSpanAndOrder(t *testing.T) {
	fake := awsfake.Start(t)
	w := watchLimits(t, fake)
	c := testConfig(fake)
	r := start(t, c, awstest.FastDelivery())
	now := time.Now()
	const n = 300
	evs := make([]awstest.Event, n)
	for i := range n {
		// from now back to 3 days ago, newest first
		ts := now.Add(-time.Duration(i) * 3 * 24 * time.Hour / n)
		evs[i] = awstest.Event{Time: ts.UnixNano(), Record: conformance.Record(i)}
	}
	awstest.Append(t, r.q, "span", evs...)
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, seqs(t, fake, "/sluice/span", "span"), n)
	if sz := w.sizes(); len(sz) != 3 {
		t.Errorf("calls of %v events, want 3 (3 days in spans under 24h)", sz)
	}
	if fake.Answered("InvalidParameterException") != 0 {
		t.Error("a call was refused")
	}
}

// TestRejectedEvents: too old, expired and too new events are
// dead-lettered with their reason; the others are delivered once.
func TestRejectedEvents(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateLogGroup("/sluice/rej", 7)
	c := testConfig(fake)
	r := start(t, c, awstest.FastDelivery())
	now := time.Now()
	ages := []time.Duration{20 * 24 * time.Hour, 15 * 24 * time.Hour, 10 * 24 * time.Hour, 8 * 24 * time.Hour,
		time.Hour, time.Minute, 0, -time.Hour, -3 * time.Hour, -5 * time.Hour}
	var evs []awstest.Event
	for i, a := range ages {
		evs = append(evs, awstest.Event{Time: now.Add(-a).UnixNano(), Record: conformance.Record(i)})
	}
	slices.Reverse(evs) // the output sorts them
	awstest.Append(t, r.q, "rej", evs...)
	awstest.WaitEmpty(t, r.q, wait)
	r.stop()
	got := seqs(t, fake, "/sluice/rej", "rej")
	slices.Sort(got)
	if !slices.Equal(got, []int{4, 5, 6, 7}) {
		t.Errorf("stored %v", got)
	}
	dl := conformance.DeadLetters(t, r.dir+"/deadletter/cwl")
	want := map[int]string{0: "too_old", 1: "too_old", 2: "expired", 3: "expired", 8: "too_new", 9: "too_new"}
	if fmt.Sprint(dl) != fmt.Sprint(want) {
		t.Errorf("dead letters %v, want %v", dl, want)
	}
	if st := r.q.Stats(); st.DeadLetteredEvents != 6 || st.DeliveredEvents != 4 {
		t.Errorf("queue %+v", st)
	}
	for reason, n := range map[string]uint64{"too_old": 2, "expired": 2, "too_new": 2} {
		if got := r.counter(fmt.Sprintf(`sluice_output_dead_lettered_events_total{output="cwl",reason=%q}`, reason)); got != n {
			t.Errorf("%s: %d dead-lettered, want %d", reason, got, n)
		}
	}
}

// TestThrottling: ThrottlingException and ServiceUnavailableException
// are retried with the engine's back-off (the SDK itself never retries:
// one HTTP request per attempt) until they pass; nothing is lost or
// duplicated.
func TestThrottling(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateLogStream("/sluice/app.web", "app.web")
	fake.FailNext("PutLogEvents", 3, awsfake.Throttling)
	fake.FailNext("PutLogEvents", 2, awsfake.ServiceUnavailable)
	c := testConfig(fake)
	d := awstest.FastDelivery()
	d.RetryInitial, d.RetryMax = 40*time.Millisecond, 400*time.Millisecond
	r := start(t, c, d)
	t0 := time.Now()
	awstest.Fill(t, r.q, 0, 1, 100)
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, seqs(t, fake, "/sluice/app.web", "app.web"), 100)
	if got := fake.Requests("PutLogEvents"); got != 6 {
		t.Errorf("%d PutLogEvents requests, want 6 (5 failed, 1 accepted)", got)
	}
	if fake.Answered("ThrottlingException") != 3 || fake.Answered("ServiceUnavailableException") != 2 {
		t.Errorf("answers: %d throttled, %d unavailable", fake.Answered("ThrottlingException"), fake.Answered("ServiceUnavailableException"))
	}
	if got := r.counter(`sluice_output_requests_total{output="cwl",result="failed"}`); got != 5 {
		t.Errorf("%d failed requests counted", got)
	}
	t.Logf("delivered after %s of back-off", time.Since(t0).Round(time.Millisecond))
}

// TestPartialStreams: when the call of one stream of a batch fails, only
// that stream's events are retried.
func TestPartialStreams(t *testing.T) {
	fake := awsfake.Start(t)
	var mu sync.Mutex
	attempts := map[int]int{}
	throttled := false
	fake.SetScript(awsfake.Script{Call: func(c *awsfake.Call) *awsfake.Fault {
		if c.Op != "PutLogEvents" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range c.Events {
			attempts[awstest.Seq(t, []byte(e.Message))]++
		}
		if c.Stream == "b" && !throttled {
			throttled = true
			return &awsfake.Throttling
		}
		return nil
	}})
	c := testConfig(fake)
	d := awstest.FastDelivery()
	d.FlushInterval = 300 * time.Millisecond
	r := start(t, c, d)
	for i := range 3 {
		evs := make([]awstest.Event, 10)
		for k := range evs {
			seq := i*10 + k
			evs[k] = awstest.Event{Time: awstest.Time(seq), Record: conformance.Record(seq)}
		}
		awstest.Append(t, r.q, []string{"a", "b", "c"}[i], evs...)
	}
	awstest.WaitEmpty(t, r.q, wait)
	mu.Lock()
	defer mu.Unlock()
	for seq := range 30 {
		want := 1
		if seq >= 10 && seq < 20 {
			want = 2
		}
		if attempts[seq] != want {
			t.Errorf("seq %d sent %d times, want %d", seq, attempts[seq], want)
		}
	}
	if got := r.counter(`sluice_output_requests_total{output="cwl",result="partial"}`); got != 1 {
		t.Errorf("%d partial batches", got)
	}
}

// TestWrongCredentials: with a secret the service refuses, nothing is
// delivered and every event stays queued, logged at error level without
// the secret; once the service accepts the key (rotated on its side),
// everything is delivered.
func TestWrongCredentials(t *testing.T) {
	fake := awsfake.Start(t)
	c := testConfig(fake)
	c.SecretAccessKey = "the-wrong-secret-value"
	r := start(t, c, awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 5, 100)
	deadline := time.Now().Add(wait)
	for fake.AuthFailures() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := r.q.Stats(); st.Pending != 5 || st.AckedChunks != 0 || len(fake.AllLogEvents()) != 0 {
		t.Fatalf("queue %+v with a wrong secret", st)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "InvalidSignatureException") || strings.Contains(logs, "the-wrong-secret-value") {
		t.Errorf("logs:\n%s", logs)
	}
	fake.SetKeys(awsfake.Key{AccessKeyID: awsfake.AccessKeyID, SecretAccessKey: "the-wrong-secret-value"})
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, seqs(t, fake, "/sluice/app.web", "app.web"), 500)
}

// TestNoCreate: with create_log_group off, a missing group keeps the
// events queued (logged); once it exists, they are delivered, the stream
// created.
func TestNoCreate(t *testing.T) {
	fake := awsfake.Start(t)
	c := testConfig(fake)
	c.CreateLogGroup = new(false)
	r := start(t, c, awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 2, 50)
	deadline := time.Now().Add(wait)
	for fake.Answered("ResourceNotFoundException") < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := r.q.Stats(); st.Pending != 2 || fake.Requests("CreateLogGroup") != 0 {
		t.Fatalf("queue %+v, %d CreateLogGroup", st, fake.Requests("CreateLogGroup"))
	}
	if !strings.Contains(r.logs.String(), "create_log_group is off") {
		t.Errorf("logs:\n%s", r.logs.String())
	}
	fake.CreateLogGroup("/sluice/app.web", 0)
	awstest.WaitEmpty(t, r.q, wait)
	awstest.CheckExactlyOnce(t, seqs(t, fake, "/sluice/app.web", "app.web"), 100)
}

// TestInvalidParameterSplit: a call refused with
// InvalidParameterException is bisected; the one event at fault is
// dead-lettered (reason invalid_parameter), every other one delivered.
func TestInvalidParameterSplit(t *testing.T) {
	fake := awsfake.Start(t)
	fake.CreateLogStream("/sluice/app.web", "app.web")
	fake.SetScript(awsfake.Script{Call: func(c *awsfake.Call) *awsfake.Fault {
		for _, e := range c.Events {
			if strings.Contains(e.Message, `"seq":37,`) {
				return &awsfake.Fault{Type: "InvalidParameterException", Message: "a parameter is specified incorrectly"}
			}
		}
		return nil
	}})
	r := start(t, testConfig(fake), awstest.FastDelivery())
	awstest.Fill(t, r.q, 0, 1, 100)
	awstest.WaitEmpty(t, r.q, wait)
	r.stop()
	got := seqs(t, fake, "/sluice/app.web", "app.web")
	got = append(got, 37)
	awstest.CheckExactlyOnce(t, got, 100)
	if dl := conformance.DeadLetters(t, r.dir+"/deadletter/cwl"); fmt.Sprint(dl) != "map[37:invalid_parameter]" {
		t.Errorf("dead letters %v", dl)
	}
}

// TestDefaultsAndChecks: New fills zero fields and refuses what
// validation refuses.
func TestDefaultsAndChecks(t *testing.T) {
	fake := awsfake.Start(t)
	c := config.CloudWatchLogsOutput{LogGroupName: "/g", Endpoint: fake.URL(), AccessKeyID: "a", SecretAccessKey: "b"}
	if _, err := New("x", c, config.Delivery{}, "", awstest.OpenQueue(t, t.TempDir()), nil, nil); err != nil {
		t.Fatalf("zero fields: %v", err)
	}
	c.LogGroupName = "bad name"
	if _, err := New("x", c, config.Delivery{}, "", awstest.OpenQueue(t, t.TempDir()), nil, nil); err == nil || !strings.Contains(err.Error(), "log_group_name") {
		t.Fatalf("bad group: %v", err)
	}
}

var _ = context.Background

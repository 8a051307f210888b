package cloudwatchlogs

import (
	"sync"
	"testing"

	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
	"github.com/sluice-agent/sluice/outputs/internal/awsout/awstest"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// TestConformance runs the output suite against awsfake with the default
// batching (a request of up to 10,000 events): Down is 503
// ServiceUnavailableException for every call, Hang holds every call.
// PutLogEvents has no per-event retry (a call fails or succeeds whole)
// and refuses events only by time (a prefix too old, a suffix too new),
// so the per-event cases run in TestConformancePerEvent.
func TestConformance(t *testing.T) {
	conformance.Run(t, harness(0))
}

// TestConformancePerEvent runs the whole suite, per-event cases included,
// with max_batch_events 1: every event is its own PutLogEvents call, so a
// throttled call (partial_failure: ThrottlingException for the calls
// holding a chosen event, once) retries exactly that event, and
// refused_dead_lettered exercises the rejectedLogEventsInfo mapping
// (tooOldLogEventEndIndex: 1 for a chosen event) to dead letters.
func TestConformancePerEvent(t *testing.T) {
	h := harness(1)
	h.PerEvent, h.Refuses = true, true
	conformance.Run(t, h)
}

func harness(maxEvents int) conformance.Harness {
	return conformance.Harness{
		NewService: newCWLService,
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			c := testConfig(svc.(*cwlService).fake)
			c.LogGroupName, c.LogStreamName = "/conf", "{hostname}"
			if maxEvents > 0 {
				c.MaxBatchEvents = maxEvents
			}
			d := awstest.FastDelivery()
			d.RetryMax = 100 * d.RetryInitial
			o, err := New(id, c, d, dataDir, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
	}
}

type cwlService struct {
	fake *awsfake.Server

	mu       sync.Mutex
	attempts map[int]int
	failOnce func(int) bool
	failed   map[int]bool
	refuse   func(int) bool
}

func newCWLService(t *testing.T) conformance.Service {
	s := &cwlService{fake: awsfake.Start(t), attempts: map[int]int{}, failed: map[int]bool{}}
	s.fake.SetScript(awsfake.Script{
		Call: func(c *awsfake.Call) *awsfake.Fault {
			if c.Op != "PutLogEvents" {
				return nil
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			var fail bool
			for _, e := range c.Events {
				seq := awstest.Seq(t, []byte(e.Message))
				s.attempts[seq]++
				if s.failOnce != nil && s.failOnce(seq) && !s.failed[seq] {
					s.failed[seq], fail = true, true
				}
			}
			if fail {
				return &awsfake.Throttling
			}
			return nil
		},
		LogEvent: func(_, _ string, e awsfake.LogEvent) awsfake.Verdict {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.refuse != nil && s.refuse(awstest.Seq(t, []byte(e.Message))) {
				return awsfake.TooOld
			}
			return awsfake.Accept
		},
	})
	return s
}

func (s *cwlService) SetMode(_ *testing.T, m conformance.Mode) {
	switch m {
	case conformance.Up:
		s.fake.SetMode(awsfake.Up)
	case conformance.Down:
		s.fake.SetMode(awsfake.Down)
	case conformance.Hang:
		s.fake.SetMode(awsfake.Hang)
	}
}

func (s *cwlService) Accepted(t *testing.T) map[int]int {
	out := map[int]int{}
	for _, e := range s.fake.AllLogEvents() {
		out[awstest.Seq(t, []byte(e.Message))]++
	}
	return out
}

func (s *cwlService) Attempts(*testing.T) map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.attempts))
	for k, v := range s.attempts {
		out[k] = v
	}
	return out
}

func (s *cwlService) FailOnce(_ *testing.T, match func(int) bool) {
	s.mu.Lock()
	s.failOnce = match
	s.mu.Unlock()
}

func (s *cwlService) Refuse(_ *testing.T, match func(int) bool) {
	s.mu.Lock()
	s.refuse = match
	s.mu.Unlock()
}

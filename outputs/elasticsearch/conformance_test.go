package elasticsearch

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/esfake"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// TestConformance runs the output suite against esfake: per-item 429s
// for "retry", per-item 400 mapper_parsing_exception for "refuse", 503
// for every request when down, hung requests when hanging.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewService: newESService,
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			d := config.Delivery{RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, FlushInterval: 100 * time.Millisecond}
			c := esConfig(svc.(*esService).fake.URL())
			c.HostBackoff = 50 * time.Millisecond
			o, err := New(id, c, d, dataDir, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
		PerEvent: true,
		Refuses:  true,
	})
}

type esService struct {
	fake *esfake.Server

	mu       sync.Mutex
	attempts map[int]int
	failOnce func(int) bool
	failed   map[int]bool
	refuse   func(int) bool
}

func newESService(t *testing.T) conformance.Service {
	s := &esService{fake: esfake.Start(t), attempts: map[int]int{}, failed: map[int]bool{}}
	s.fake.Script(s.script)
	return s
}

func (s *esService) script(it esfake.Item) *esfake.Fault {
	var v struct{ Seq int }
	if json.Unmarshal(it.Source, &v) != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[v.Seq]++
	switch {
	case s.refuse != nil && s.refuse(v.Seq):
		return &esfake.Fault{Status: 400, Type: "mapper_parsing_exception", Reason: "failed to parse"}
	case s.failOnce != nil && s.failOnce(v.Seq) && !s.failed[v.Seq]:
		s.failed[v.Seq] = true
		return &esfake.Fault{Status: 429}
	}
	return nil
}

func (s *esService) SetMode(_ *testing.T, m conformance.Mode) {
	switch m {
	case conformance.Up:
		s.fake.SetMode(esfake.Up)
	case conformance.Down:
		s.fake.SetMode(esfake.Unavailable)
	case conformance.Hang:
		s.fake.SetMode(esfake.Hang)
	}
}

func (s *esService) Accepted(t *testing.T) map[int]int { return seqs(t, s.fake.Docs()) }

func (s *esService) Attempts(*testing.T) map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.attempts))
	for k, v := range s.attempts {
		out[k] = v
	}
	return out
}

func (s *esService) FailOnce(_ *testing.T, match func(int) bool) {
	s.mu.Lock()
	s.failOnce = match
	s.mu.Unlock()
}

func (s *esService) Refuse(_ *testing.T, match func(int) bool) {
	s.mu.Lock()
	s.refuse = match
	s.mu.Unlock()
}

package delivery_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// TestConformanceFakeSink runs the output suite, per-event cases included,
// on an engine over an in-memory per-event destination: it checks the
// suite as much as the engine.
func TestConformanceFakeSink(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		PerEvent: true,
		Refuses:  true,
		NewService: func(*testing.T) conformance.Service {
			return &memSvc{accepted: map[int]int{}, attempts: map[int]int{}, failed: map[int]bool{}}
		},
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			e, err := delivery.New(src, svc.(*memSvc), delivery.Options{ID: id, Workers: 2, FlushInterval: 20 * time.Millisecond,
				RetryInitial: time.Millisecond, RetryMax: 20 * time.Millisecond, DeadLetterDir: dataDir + "/deadletter/" + id})
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
	})
}

type memSvc struct {
	mu       sync.Mutex
	mode     conformance.Mode
	accepted map[int]int
	attempts map[int]int
	failOnce func(int) bool
	failed   map[int]bool
	refuse   func(int) bool
}

type memEnc struct{ seqs []int }

func (e *memEnc) Add(ev *delivery.Event) error {
	s, ok := conformance.SeqOf(ev.Record)
	if !ok {
		return delivery.Reject("no_seq", "record without seq")
	}
	if len(e.seqs) >= 300 {
		return delivery.ErrFull
	}
	e.seqs = append(e.seqs, s)
	return nil
}
func (e *memEnc) Full() bool { return len(e.seqs) >= 300 }
func (e *memEnc) Len() int   { return len(e.seqs) }
func (e *memEnc) Bytes() int { return 8 * len(e.seqs) }
func (e *memEnc) Reset()     { e.seqs = e.seqs[:0] }

func (m *memSvc) NewEncoder() delivery.Encoder { return &memEnc{} }

func (m *memSvc) Send(ctx context.Context, enc delivery.Encoder, res []delivery.Result) error {
	m.mu.Lock()
	mode := m.mode
	m.mu.Unlock()
	switch mode {
	case conformance.Down:
		return errors.New("connection refused")
	case conformance.Hang:
		<-ctx.Done()
		return ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, s := range enc.(*memEnc).seqs {
		m.attempts[s]++
		switch {
		case m.refuse != nil && m.refuse(s):
			res[i] = delivery.Result{Status: delivery.Refuse, Reason: "mapper_parsing_exception", Detail: "bad field"}
		case m.failOnce != nil && m.failOnce(s) && !m.failed[s]:
			m.failed[s] = true
			res[i] = delivery.Result{Status: delivery.Retry, Reason: "throttled"}
		default:
			m.accepted[s]++
		}
	}
	return nil
}

func (m *memSvc) SetMode(_ *testing.T, md conformance.Mode) { m.mu.Lock(); m.mode = md; m.mu.Unlock() }
func (m *memSvc) Accepted(*testing.T) map[int]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clone(m.accepted)
}
func (m *memSvc) Attempts(*testing.T) map[int]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clone(m.attempts)
}
func (m *memSvc) FailOnce(_ *testing.T, f func(int) bool) { m.mu.Lock(); m.failOnce = f; m.mu.Unlock() }
func (m *memSvc) Refuse(_ *testing.T, f func(int) bool)   { m.mu.Lock(); m.refuse = f; m.mu.Unlock() }

func clone(m map[int]int) map[int]int {
	c := make(map[int]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

package delivery

import (
	"sync"
	"time"
)

// EngineStatus is a snapshot of an Engine for the agent's /status. The
// JSON field names are part of the documented /status shape
// (docs/operations.md).
type EngineStatus struct {
	Workers        int   `json:"workers"`
	BatchesSending int   `json:"batches_sending"` // with a worker, Send running
	BatchesReady   int   `json:"batches_ready"`   // sealed, waiting for a free worker
	OpenEvents     int   `json:"open_batch_events"`
	RetryGroups    int   `json:"retry_groups"` // failed sends waiting for their back-off
	RetryEvents    int   `json:"retry_events"` // the events in them
	HeldBytes      int64 `json:"held_bytes"`   // entries of the chunks between Next and Settle
	// NextRetryAt is when the earliest retry group is due (nil: none).
	NextRetryAt *time.Time `json:"next_retry_at,omitempty"`

	SentEvents    uint64 `json:"sent_events"`    // since start
	RetriedEvents uint64 `json:"retried_events"` // since start
}

// engineState is what Status reads. The loop goroutine owns the values it
// copies from and publishes them under mu once per iteration (publish),
// before it waits; Status takes mu from any goroutine.
type engineState struct {
	mu sync.Mutex
	s  EngineStatus
}

// publish copies the loop's numbers for Status. Called by the loop only.
func (e *Engine) publish() {
	s := EngineStatus{
		Workers:        e.o.Workers,
		BatchesSending: e.busy,
		BatchesReady:   len(e.ready),
		RetryGroups:    len(e.retries),
		HeldBytes:      e.held,
	}
	if e.open != nil {
		s.OpenEvents = len(e.open.refs)
	}
	var next time.Time
	for _, g := range e.retries {
		s.RetryEvents += len(g.refs)
		if next.IsZero() || g.due.Before(next) {
			next = g.due
		}
	}
	if !next.IsZero() {
		s.NextRetryAt = &next
	}
	e.pub.mu.Lock()
	e.pub.s = s
	e.pub.mu.Unlock()
}

// Status returns the engine's numbers as of its loop's last iteration,
// with its counters read now. Safe from any goroutine, before, during and
// after Run (before Run everything but Workers is zero).
func (e *Engine) Status() EngineStatus {
	e.pub.mu.Lock()
	s := e.pub.s
	e.pub.mu.Unlock()
	s.Workers = e.o.Workers
	s.SentEvents = e.m.sentEvents.Get()
	s.RetriedEvents = e.m.retriedEvents.Get()
	return s
}

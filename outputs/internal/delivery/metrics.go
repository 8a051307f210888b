package delivery

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// logInterval is how often one rejection reason is logged.
const logInterval = 10 * time.Second

// engineMetrics are the series every output shares, labelled output=<id>:
//
//	sluice_output_sent_events_total, sluice_output_sent_bytes_total
//	sluice_output_requests_total{result="ok"|"partial"|"failed"}
//	sluice_output_retried_events_total
//	sluice_output_rejected_events_total{reason}
//	sluice_output_dead_lettered_events_total{reason}
//	sluice_output_dropped_events_total{reason}
//	sluice_output_request_duration_seconds (histogram)
//	sluice_output_in_flight_bytes
//	sluice_output_last_error_timestamp_seconds
type engineMetrics struct {
	set *metrics.Set
	id  string

	sentEvents, sentBytes                       *metrics.Counter
	requestsOK, requestsPartial, requestsFailed *metrics.Counter
	retriedEvents                               *metrics.Counter
	latency                                     *metrics.Histogram
	inFlightBytes                               *metrics.Gauge
	lastErrorTime                               *metrics.Gauge

	mu       sync.Mutex
	lastErr  string
	lastAt   time.Time
	logged   map[string]time.Time // reason -> last logged
	unlogged map[string]int       // reason -> rejections since
}

func newEngineMetrics(set *metrics.Set, id string) *engineMetrics {
	c := func(name string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf(name, id))
	}
	return &engineMetrics{
		set:             set,
		id:              id,
		sentEvents:      c(`sluice_output_sent_events_total{output=%q}`),
		sentBytes:       c(`sluice_output_sent_bytes_total{output=%q}`),
		requestsOK:      c(`sluice_output_requests_total{output=%q,result="ok"}`),
		requestsPartial: c(`sluice_output_requests_total{output=%q,result="partial"}`),
		requestsFailed:  c(`sluice_output_requests_total{output=%q,result="failed"}`),
		retriedEvents:   c(`sluice_output_retried_events_total{output=%q}`),
		latency:         set.GetOrCreateHistogram(fmt.Sprintf(`sluice_output_request_duration_seconds{output=%q}`, id)),
		inFlightBytes:   set.GetOrCreateGauge(fmt.Sprintf(`sluice_output_in_flight_bytes{output=%q}`, id), nil),
		lastErrorTime:   set.GetOrCreateGauge(fmt.Sprintf(`sluice_output_last_error_timestamp_seconds{output=%q}`, id), nil),
		logged:          map[string]time.Time{},
		unlogged:        map[string]int{},
	}
}

func (m *engineMetrics) byReason(name, reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`%s{output=%q,reason=%q}`, name, m.id, reason))
}

func (m *engineMetrics) rejected(reason string) *metrics.Counter {
	return m.byReason("sluice_output_rejected_events_total", reason)
}

func (m *engineMetrics) deadLettered(reason string) *metrics.Counter {
	return m.byReason("sluice_output_dead_lettered_events_total", reason)
}

func (m *engineMetrics) dropped(reason string) *metrics.Counter {
	return m.byReason("sluice_output_dropped_events_total", reason)
}

func (m *engineMetrics) lastError(err error, now time.Time) {
	m.mu.Lock()
	m.lastErr, m.lastAt = err.Error(), now
	m.mu.Unlock()
	m.lastErrorTime.Set(float64(now.Unix()))
}

// LastError returns the last failure the output met and when.
func (e *Engine) LastError() (string, time.Time) {
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	return e.m.lastErr, e.m.lastAt
}

// logReject logs a rejection once per reason and logInterval, with the
// count of the ones not logged since.
func (m *engineMetrics) logReject(log *slog.Logger, reason, detail string, tag []byte) {
	now := time.Now()
	if last, ok := m.logged[reason]; ok && now.Sub(last) < logInterval {
		m.unlogged[reason]++
		return
	}
	log.Warn("event refused by the destination; dead-lettered", "reason", reason, "detail", detail,
		"tag", string(tag), "also_refused_since_last_log", m.unlogged[reason])
	m.logged[reason] = now
	m.unlogged[reason] = 0
}

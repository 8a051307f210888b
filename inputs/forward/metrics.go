package forward

import (
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// inputMetrics are the input's counters, all labelled input="<id>".
type inputMetrics struct {
	connections          *metrics.Gauge   // sluice_input_connections
	accepted             *metrics.Counter // sluice_input_connections_total
	bytes                *metrics.Counter // sluice_input_bytes_total
	requests             *metrics.Counter // sluice_input_requests_total
	events               *metrics.Counter // sluice_input_events_total (stored events, after reassembly)
	acks                 *metrics.Counter // sluice_input_acks_total
	invalidEvents        *metrics.Counter // sluice_input_invalid_events_total
	invalidRequests      *metrics.Counter // sluice_input_invalid_requests_total
	parseFailures        *metrics.Counter // sluice_input_payload_parse_failures_total{parser} (nil: no parser)
	protocolErrors       *metrics.Counter // sluice_input_protocol_errors_total (connection closed)
	handshakeFailures    *metrics.Counter // sluice_input_handshake_failures_total (TLS or HELO/PING/PONG)
	partialJoined        *metrics.Counter // sluice_input_partial_reassemblies_total
	partialTimeouts      *metrics.Counter // sluice_input_partial_incomplete_total
	partialUnjoined      *metrics.Counter // sluice_input_partial_unjoined_total
	limitMessage         *metrics.Counter // sluice_input_limit_violations_total{limit="message_bytes"}
	limitDecompressed    *metrics.Counter // ...{limit="decompressed_bytes"}
	limitConnections     *metrics.Counter // ...{limit="connections"}: TCP pool full, nothing to evict
	limitUnixConnections *metrics.Counter // ...{limit="unix_connections"}: unix pool full, nothing to evict
	limitPerSource       *metrics.Counter // ...{limit="connections_per_source"}: the source's slots taken, nothing to evict
	evictedUnused        *metrics.Counter // sluice_input_connections_evicted_total{reason="unused"}
	evictedIdle          *metrics.Counter // ...{reason="idle"}
	evictedHandshake     *metrics.Counter // ...{reason="handshake_timeout"}
	limitPartial         *metrics.Counter // ...{limit="partial_bytes"}
	limitMemory          *metrics.Counter // ...{limit="memory"}: refused by the memory budget
	memWaits             *metrics.Counter // sluice_input_memory_waits_total: reservations that had to wait
	refusedSize          *metrics.Counter // sluice_input_refused_events_total{reason="event_bytes"}
	refusedDepth         *metrics.Counter // ...{reason="nesting_depth"}
	flushRetries         *metrics.Counter // sluice_input_flush_failures_total
	discarded            *metrics.Counter // sluice_input_discarded_events_total (held when a connection gave up)
	mlGroups             *metrics.Counter // sluice_input_multiline_groups_total (events of two lines or more)
	mlTruncated          *metrics.Counter // sluice_input_multiline_truncated_total (cut at max_bytes or max_lines)
	mlTimeouts           *metrics.Counter // sluice_input_multiline_timeouts_total (emitted by flush_timeout)
	mlCutAck             *metrics.Counter // sluice_input_multiline_cut_total{reason="ack"}: closed at the end of a request with a chunk
	mlCutGroups          *metrics.Counter // ...{reason="max_groups"}: the connection's least recently used stream made room
	mlCutClose           *metrics.Counter // ...{reason="close"}: the connection ended (or the input stopped)
}

func newInputMetrics(set *metrics.Set, id string) *inputMetrics {
	c := func(name string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_%s{input=%q}`, name, id))
	}
	l := func(limit string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_limit_violations_total{input=%q,limit=%q}`, id, limit))
	}
	e := func(reason string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_connections_evicted_total{input=%q,reason=%q}`, id, reason))
	}
	mlCut := func(reason string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_multiline_cut_total{input=%q,reason=%q}`, id, reason))
	}
	return &inputMetrics{
		connections:          set.GetOrCreateGauge(fmt.Sprintf(`sluice_input_connections{input=%q}`, id), nil),
		accepted:             c("connections_total"),
		bytes:                c("bytes_total"),
		requests:             c("requests_total"),
		events:               c("events_total"),
		acks:                 c("acks_total"),
		invalidEvents:        c("invalid_events_total"),
		invalidRequests:      c("invalid_requests_total"),
		protocolErrors:       c("protocol_errors_total"),
		handshakeFailures:    c("handshake_failures_total"),
		partialJoined:        c("partial_reassemblies_total"),
		partialTimeouts:      c("partial_incomplete_total"),
		partialUnjoined:      c("partial_unjoined_total"),
		limitMessage:         l("message_bytes"),
		limitDecompressed:    l("decompressed_bytes"),
		limitConnections:     l("connections"),
		limitUnixConnections: l("unix_connections"),
		limitPerSource:       l("connections_per_source"),
		evictedUnused:        e("unused"),
		evictedIdle:          e("idle"),
		evictedHandshake:     e("handshake_timeout"),
		limitPartial:         l("partial_bytes"),
		limitMemory:          l("memory"),
		memWaits:             c("memory_waits_total"),
		refusedSize:          set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_refused_events_total{input=%q,reason="event_bytes"}`, id)),
		refusedDepth:         set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_refused_events_total{input=%q,reason="nesting_depth"}`, id)),
		flushRetries:         c("flush_failures_total"),
		discarded:            c("discarded_events_total"),
		mlGroups:             c("multiline_groups_total"),
		mlTruncated:          c("multiline_truncated_total"),
		mlTimeouts:           c("multiline_timeouts_total"),
		mlCutAck:             mlCut("ack"),
		mlCutGroups:          mlCut("max_groups"),
		mlCutClose:           mlCut("close"),
	}
}

// budgetGauges exports the memory budget: sluice_input_memory_budget_bytes
// (max_buffered_bytes), sluice_input_memory_reserved_bytes and
// sluice_input_memory_waiting (connections waiting for budget).
func budgetGauges(set *metrics.Set, id string, b *memBudget) {
	set.GetOrCreateGauge(fmt.Sprintf(`sluice_input_memory_budget_bytes{input=%q}`, id), func() float64 { return float64(b.total) })
	set.GetOrCreateGauge(fmt.Sprintf(`sluice_input_memory_reserved_bytes{input=%q}`, id), func() float64 { return float64(b.reserved.Load()) })
	set.GetOrCreateGauge(fmt.Sprintf(`sluice_input_memory_waiting{input=%q}`, id), func() float64 { return float64(b.waiting.Load()) })
}

// rateLimit lets a log line through at most once per interval and counts
// what it held back, so a misbehaving client cannot flood the agent's log.
type rateLimit struct {
	mu         sync.Mutex
	interval   time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were suppressed
// since the last one that was logged.
func (r *rateLimit) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}

// evicted returns the eviction counter of reason.
func (m *inputMetrics) evicted(reason string) *metrics.Counter {
	switch reason {
	case evictIdle:
		return m.evictedIdle
	case evictHandshake:
		return m.evictedHandshake
	}
	return m.evictedUnused
}

package forward

import (
	"strings"
	"sync"
	"time"

	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Status is the forward output's part of the agent's /status: the state of
// each server and the delivery engine's numbers. The JSON field names are
// part of the documented /status shape (docs/operations.md). It carries
// no secret: no shared key, username or password, and addresses without
// userinfo.
type Status struct {
	Servers  []ServerStatus        `json:"servers"`
	Delivery delivery.EngineStatus `json:"delivery"`
}

// ServerStatus is one server of the output.
type ServerStatus struct {
	Address string `json:"address"` // as configured, userinfo removed
	Weight  int    `json:"weight"`
	Standby bool   `json:"standby"`
	// Discovered is a server found by discovery (not in servers:);
	// Draining is one that left DNS and finishes its in-flight chunks.
	Discovered bool `json:"discovered,omitempty"`
	Draining   bool `json:"draining,omitempty"`
	// State is "unknown" (not connected yet), "up" or "down".
	State string `json:"state"`
	// Since is when the server entered State (nil while unknown).
	Since *time.Time `json:"since,omitempty"`
	// LastError is the last connect, handshake, write or ack failure,
	// with its time.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`

	ChunksSent         uint64 `json:"chunks_sent"`
	ChunksAcked        uint64 `json:"chunks_acked"`
	ConnectionFailures uint64 `json:"connection_failures"`
	AckTimeouts        uint64 `json:"ack_timeouts"`
}

// serverState is what Status reads of a server. The server's worker
// goroutine owns server.state; markUp and markDown publish it here, under
// mu, with the error that took the server down.
type serverState struct {
	mu      sync.Mutex
	state   int8 // as server.state: 0 unknown, 1 up, -1 down
	since   time.Time
	lastErr string
	lastAt  time.Time
}

// set records a state (and, when err is not nil, the failure behind it).
func (st *serverState) set(state int8, err error) {
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.state != state {
		st.state, st.since = state, now
	}
	if err != nil {
		st.lastErr, st.lastAt = err.Error(), now
	}
}

// Status returns the output's status (a Status). Safe from any goroutine.
func (o *Output) Status() any {
	s := Status{Delivery: o.eng.Status()}
	o.mu.Lock()
	defer o.mu.Unlock()
	s.Servers = make([]ServerStatus, 0, len(o.servers))
	for _, srv := range o.servers {
		ss := ServerStatus{
			Address:            redactAddress(srv.name),
			Weight:             srv.weight,
			Standby:            srv.standby,
			Discovered:         !srv.static,
			Draining:           srv.draining,
			State:              "unknown",
			ChunksSent:         srv.m.chunksSent.Get(),
			ChunksAcked:        srv.m.chunksAcked.Get(),
			ConnectionFailures: srv.m.connFailures.Get(),
			AckTimeouts:        srv.m.ackTimeout.Get(),
		}
		srv.st.mu.Lock()
		switch srv.st.state {
		case 1:
			ss.State = "up"
		case -1:
			ss.State = "down"
		}
		if !srv.st.since.IsZero() {
			t := srv.st.since
			ss.Since = &t
		}
		if srv.st.lastErr != "" {
			t := srv.st.lastAt
			ss.LastError, ss.LastErrorAt = srv.st.lastErr, &t
		}
		srv.st.mu.Unlock()
		s.Servers = append(s.Servers, ss)
	}
	return s
}

// LastError returns the last failure the output met and when: the most
// recent of the engine's (a send that failed) and the servers' (a connect,
// handshake, write or ack failure: while every server is down chunks wait
// for one and no send fails).
func (o *Output) LastError() (string, time.Time) {
	msg, at := o.eng.LastError()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, srv := range o.servers {
		srv.st.mu.Lock()
		if srv.st.lastErr != "" && srv.st.lastAt.After(at) {
			msg, at = "server "+redactAddress(srv.name)+": "+srv.st.lastErr, srv.st.lastAt
		}
		srv.st.mu.Unlock()
	}
	return msg, at
}

// redactAddress drops a userinfo part ("user:pass@") from a tcp address;
// unix socket paths are returned as they are.
func redactAddress(a string) string {
	if strings.HasPrefix(a, "unix://") {
		return a
	}
	scheme := ""
	if i := strings.Index(a, "://"); i >= 0 {
		scheme, a = a[:i+3], a[i+3:]
	}
	if i := strings.LastIndex(a, "@"); i >= 0 {
		a = a[i+1:]
	}
	return scheme + a
}

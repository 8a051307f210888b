package agent

import (
	"cmp"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sluice-agent/sluice/buffer"
)

// Component states, as /status, /healthz and /readyz report them.
const (
	stateRunning  = "running"  // Run has not returned
	stateStopping = "stopping" // being stopped (StopInput/StopOutput or the shutdown)
	stateStopped  = "stopped"  // not in the supervisor: stopped deliberately, or not started
	stateFailed   = "failed"   // Run returned an error without being stopped
	stateExited   = "exited"   // Run returned nil without being stopped
)

// statusState is what the health, readiness and status endpoints need
// beyond the supervisor: set once (version before Run, started when Run
// begins serving), stopping when the shutdown begins.
type statusState struct {
	version  string
	started  atomic.Int64 // unix ns when Run began serving; 0 before
	stopping atomic.Bool  // the shutdown began: not ready any more
}

// readier is a component that says when it accepts data (the forward
// input: listening; file inputs: first scan done). A component without it
// is ready while it runs.
type readier interface{ Ready() bool }

// procState is what the supervisor knows of one component now.
type procState struct {
	state string
	err   error  // Run's error, when failed
	c     runner // nil when stopped
}

// state returns r's state. A proc's err is written under s.mu before its
// done channel is closed, so it is read safely under s.mu once done is.
func (s *supervisor) state(r ref) procState {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.procs[r]
	if !ok {
		return procState{state: stateStopped}
	}
	ps := procState{state: stateRunning, c: p.c}
	select {
	case <-p.done:
		switch {
		case p.stopping:
			ps.state = stateStopping
		case p.err != nil:
			ps.state, ps.err = stateFailed, p.err
		default:
			ps.state = stateExited
		}
	default:
		if p.stopping {
			ps.state = stateStopping
		}
	}
	return ps
}

// refs returns every component in the supervisor, in ref order.
func (s *supervisor) refs() []ref {
	s.mu.Lock()
	refs := make([]ref, 0, len(s.procs))
	for r := range s.procs {
		refs = append(refs, r)
	}
	s.mu.Unlock()
	slices.SortFunc(refs, func(a, b ref) int { return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.id, b.id)) })
	return refs
}

// Problem is one reason the agent is not healthy or not ready.
type Problem struct {
	Component string `json:"component"` // "input ID", "output ID", "buffer ID", or "agent"
	State     string `json:"state"`
	Error     string `json:"error,omitempty"`
}

// Health returns why the agent is not alive, or nil: a component the
// supervisor started whose Run returned without being stopped (failed or
// exited), or a queue with a sticky write error. A component stopped on
// purpose (StopInput, StopOutput, the shutdown) is not a problem.
func (a *Agent) Health() []Problem {
	var ps []Problem
	for _, r := range a.sup.refs() {
		st := a.sup.state(r)
		if st.state == stateFailed || st.state == stateExited {
			p := Problem{Component: r.String(), State: st.state}
			if st.err != nil {
				p.Error = redact(st.err.Error())
			}
			ps = append(ps, p)
		}
	}
	for _, q := range a.cur().queues {
		if err := q.q.Err(); err != nil && !errors.Is(err, buffer.ErrClosed) {
			ps = append(ps, Problem{Component: "buffer " + q.id, State: "error", Error: redact(err.Error())})
		}
	}
	return ps
}

// Readiness returns why the agent does not take data, or nil: it has not
// finished starting, its shutdown began, a running input does not accept
// yet (see readier), an input failed, or a queue is not open. Inputs
// stopped on purpose (StopInput) are not counted; outputs never are (a
// dead destination is what the queues are for).
func (a *Agent) Readiness() []Problem {
	switch {
	case a.status.stopping.Load():
		return []Problem{{Component: "agent", State: "shutting down"}}
	case a.status.started.Load() == 0:
		return []Problem{{Component: "agent", State: "starting"}}
	}
	var ps []Problem
	for _, u := range a.cur().inputs {
		st := a.sup.state(u.ref)
		switch st.state {
		case stateRunning:
			if r, ok := st.c.(readier); ok && !r.Ready() {
				ps = append(ps, Problem{Component: u.ref.String(), State: "not accepting yet"})
			}
		case stateFailed, stateExited:
			p := Problem{Component: u.ref.String(), State: st.state}
			if st.err != nil {
				p.Error = redact(st.err.Error())
			}
			ps = append(ps, p)
		}
	}
	for _, q := range a.cur().queues {
		if err := q.q.Err(); err != nil {
			ps = append(ps, Problem{Component: "buffer " + q.id, State: "not open", Error: redact(err.Error())})
		}
	}
	return ps
}

// SetVersion sets the version /status reports. Call it before Run.
func (a *Agent) SetVersion(v string) { a.status.version = v }

// startedAt returns when Run began serving (zero before).
func (a *Agent) startedAt() time.Time {
	if ns := a.status.started.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

var (
	// errClosed is returned by start once the supervisor is closed.
	errClosed = errors.New("agent is shutting down")
	// errNotStarted is returned by stop for a component it does not run.
	errNotStarted = errors.New("not running")
)

// ref names one supervised component. Inputs and outputs have separate id
// namespaces; an output's buffer is supervised apart from the output.
type ref struct {
	kind string // "input", "output" or "buffer"
	id   string
}

func (r ref) String() string { return r.kind + " " + r.id }

// supervisor runs components, each on its own goroutine with its own
// context and metrics set, and starts or stops one at a time.
//
// All state is guarded by mu. A component's goroutine only writes its
// proc's err before closing done, and reads stopping under mu; start and
// stop run under the Agent's op lock, so two of them never interleave.
type supervisor struct {
	log *slog.Logger
	// failed receives the first error of a component that exited by
	// itself (not stopped); later ones are only logged.
	failed chan error

	mu     sync.Mutex
	procs  map[ref]*proc
	closed bool
}

// proc is one running (or exited, not yet stopped) component.
type proc struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once Run returned
	err    error         // Run's result; read after done
	set    *metrics.Set  // served while the proc is in procs
	c      runner
	// Guarded by supervisor.mu.
	stopping bool // stop was called: the exit is planned
	reported bool // err went to failed; stop does not return it again
}

func newSupervisor(log *slog.Logger) *supervisor {
	return &supervisor{log: log, failed: make(chan error, 1), procs: make(map[ref]*proc)}
}

// start runs c under r with set as its metrics. It fails if r is already
// running (or exited without being stopped) or the supervisor is closed.
func (s *supervisor) start(r ref, set *metrics.Set, c runner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if _, ok := s.procs[r]; ok {
		return fmt.Errorf("%s is already running", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{cancel: cancel, done: make(chan struct{}), set: set, c: c}
	s.procs[r] = p
	go func() {
		err := c.Run(ctx)
		s.mu.Lock()
		p.err = err
		unplanned := !p.stopping
		p.reported = unplanned && err != nil
		s.mu.Unlock()
		close(p.done)
		switch {
		case p.reported:
			err = fmt.Errorf("%s: %w", r, err)
			select {
			case s.failed <- err:
			default:
				s.log.Error("component failed", "component", r.String(), "err", err)
			}
		case unplanned:
			s.log.Warn("component exited by itself", "component", r.String())
		}
	}()
	return nil
}

// drainer is a component that can be told to send what it holds at once
// (the outputs built on the delivery engine: batches waiting for their
// flush interval).
type drainer interface{ Drain() }

// drain calls Drain on every running component of kind that has it.
func (s *supervisor) drain(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r, p := range s.procs {
		if d, ok := p.c.(drainer); ok && r.kind == kind {
			d.Drain()
		}
	}
}

// drainOne calls Drain on r if it runs and has it (a reload stopping one
// output).
func (s *supervisor) drainOne(r ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.procs[r]; ok {
		if d, ok := p.c.(drainer); ok {
			d.Drain()
		}
	}
}

// stop cancels r, waits until its Run returned and drops its metrics set.
// It returns Run's error, unless that error was already reported as a
// failure.
func (s *supervisor) stop(r ref) error {
	return s.stopAll(func(x ref) bool { return x == r }, true)
}

// stopKind stops every component of one kind at once (cancel all, then
// wait for all), for the ordered shutdown.
func (s *supervisor) stopKind(kind string) error {
	return s.stopAll(func(x ref) bool { return x.kind == kind }, false)
}

func (s *supervisor) stopAll(match func(ref) bool, one bool) error {
	s.mu.Lock()
	var refs []ref
	for r, p := range s.procs {
		if match(r) {
			p.stopping = true
			refs = append(refs, r)
		}
	}
	procs := make([]*proc, len(refs))
	for i, r := range refs {
		procs[i] = s.procs[r]
	}
	s.mu.Unlock()
	if one && len(refs) == 0 {
		return errNotStarted
	}
	for _, p := range procs {
		p.cancel()
	}
	var errs []error
	for i, p := range procs {
		<-p.done
		s.mu.Lock()
		delete(s.procs, refs[i])
		reported := p.reported
		s.mu.Unlock()
		if p.err != nil && !reported {
			errs = append(errs, fmt.Errorf("%s: %w", refs[i], p.err))
		}
	}
	return errors.Join(errs...)
}

// close makes every later start fail.
func (s *supervisor) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// exited returns a channel closed when r's Run has returned (nil if r is
// not in the supervisor).
func (s *supervisor) exited(r ref) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.procs[r]; ok {
		return p.done
	}
	return nil
}

// running reports whether r is in the supervisor (running, or exited by
// itself and not stopped yet).
func (s *supervisor) running(r ref) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.procs[r]
	return ok
}

// writeMetrics writes the metrics sets of every supervised component, in
// ref order.
func (s *supervisor) writeMetrics(w io.Writer) {
	s.mu.Lock()
	refs := make([]ref, 0, len(s.procs))
	for r := range s.procs {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b ref) int { return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.id, b.id)) })
	sets := make([]*metrics.Set, len(refs))
	for i, r := range refs {
		sets[i] = s.procs[r].set
	}
	s.mu.Unlock()
	for _, set := range sets {
		set.WritePrometheus(w)
	}
}

// Package agent assembles the components named in a config and runs them
// under a supervisor.
//
// # Lifecycle
//
// Start order: buffers are opened (recovering their files), then outputs,
// then inputs, so an input never accepts data before its queues exist.
// Shutdown (Run's ctx cancelled, i.e. the first SIGTERM/SIGINT) runs in the
// reverse order:
//
//  1. inputs stop; each flushes its pending events to the queues, syncs them
//     and commits its offsets (so nothing read is lost, nothing is committed
//     that is not on disk);
//  2. every queue is fsynced, then outputs get ShutdownGrace to drain what
//     they can, all at once; chunks still unacknowledged stay on disk for
//     the next start. An output that is not running, or that keeps failing
//     and settles nothing for drainStall (every server down), is not
//     waited for: SIGTERM with every output unreachable exits at once;
//  3. outputs stop, queues are closed.
//
// Run returns only after every goroutine it started has exited.
//
// # Supervision and ownership
//
//   - Every input, output and buffer runs on its own goroutine, with its own
//     context and its own metrics.Set, in a supervisor keyed by kind and id
//     (supervisor.go). One of them can be stopped and started again
//     (StopInput, StartInput, StopOutput, StartOutput) while the others run
//     on undisturbed; its series leave /metrics when it stops and come back,
//     counting from zero, when it starts. Agent.op serialises those calls,
//     the start phase of Run and the shutdown: one change at a time.
//   - A component built by New is the first one started; every later start
//     builds a new one from the same settings (an input or output runs
//     once).
//   - An output's queue outlives its output: while the output is stopped
//     the queue stays open and inputs keep appending (under its overflow
//     policy). A new output over it first rewinds it, so the chunks the
//     previous one read but did not settle are read again.
//   - A stopped input has flushed, synced and committed its offsets as at
//     shutdown; started again, it resumes from them.
//   - The Router lives in a pipeline.Swap: an input is built with the
//     Router current at its start, and its Writers follow every later
//     Router stored in the Swap (Reload). The routing counters live in the
//     Agent's own set, which outlives Routers.
//   - A component that exits with an error without being stopped fails the
//     agent: Run shuts everything down in order and returns that error.
//     Errors of components being stopped are returned by the stop (and by
//     Run for the shutdown's stops).
//
// # Health, readiness and status
//
// Next to /metrics, on metrics_addr (health.go, status.go;
// docs/operations.md has the JSON):
//
//   - /healthz (liveness) answers 200 "ok" while every component in the
//     supervisor runs and no queue has a sticky write error; else 503 with
//     {"status": "unavailable", "problems": [{"component", "state",
//     "error"}]}. A component stopped on purpose (StopInput, StopOutput,
//     the shutdown) is no problem; one whose Run returned by itself is,
//     until the agent's shutdown (which that failure starts) stops it.
//   - /readyz answers 200 once Run started everything, while every running
//     input accepts (forward: listening; docker, cri: first scan done) and
//     every queue is open; 503 before that and from the first moment of
//     the shutdown, before inputs stop. Outputs do not count: a dead
//     destination is what the queues are for.
//   - /status is a JSON document (Status): the agent, each input (state,
//     readiness, its type's own status) and each output (state, queue
//     bytes, chunks and events pending, age of the oldest unacked event,
//     last error, its type's own status). It holds no secret.
//
// Each component reads its own state for them: atomics, or the locks
// its package already has, never its loop's fields (see each Status
// method). They are read on the HTTP server's goroutines.
//
// # Live reload
//
// Reload (reload.go; SIGHUP and `agent run --watch-config` call
// ReloadFile) makes the running agent run a new config. It is refused as
// a whole, before anything changes, when the config does not validate or
// changes what needs a restart (ErrNeedsRestart: data_dir, metrics_addr,
// an existing output's buffer settings other than chunk_bytes); refusing
// only those and applying the rest would leave a running config no file
// describes. Components are compared by id, type and decoded settings
// (Line fields ignored, see equalIgnoringLines). Under op, in this order:
//
//  1. inputs removed or changed stop (flush, sync, commit offsets);
//  2. queues of added outputs open (an output removed earlier and not
//     closed yet gets its queue back) and added outputs start;
//  3. if routes, default_output, processors, the output set or a
//     chunk_bytes changed, the new Router is stored in the Swap: inputs
//     that keep running move to it at their next batch (a Writer's batch
//     is routed by one Router from its first event to its last);
//  4. inputs added or changed start; a changed one whose new settings do
//     not start is started again with its old ones (the reload then
//     returns the error);
//  5. outputs changed or removed are drained: Drain, then wait (at most
//     min(shutdown_grace, 5s)) until none of their queue's chunks is in
//     flight, then stop, so the successor resends nothing delivered; a
//     changed output starts again over the same queue, from its first
//     unsettled chunk;
//  6. a removed output's queue stays on disk (logged with its directory
//     and pending chunks, for `agent buffer`); it is synced and closed once
//     no Writer holds events routed to it before the reload (the Swap's
//     settled func), or at shutdown.
//
// Unchanged components are not touched: same goroutine, connections and
// counters. Every reload is counted in sluice_config_reloads_total{result}
// and reported in /status (agent.last_reload). log_level is applied by
// cmd/agent (the logger's level), shutdown_grace at the next shutdown.
//
// # Component types
//
// config declares every type and its settings (config.Types); the table in
// components.go binds each type to its constructor. Registration cannot be
// one value holding both: the plugins import config for their settings, so
// config, its tests and `agent validate` must know every type without
// linking the plugins. TestEveryTypeHasAConstructor keeps the two in step,
// and New refuses a type without a constructor.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/pipeline"
)

// errNotRunning is returned by Start*/Stop* outside Run.
var errNotRunning = errors.New("agent is not running")

// Agent is a configured set of components. New builds it, Run runs it
// once.
type Agent struct {
	// cfg is the config New was given. Its DataDir and MetricsAddr are
	// the running ones (a reload cannot change them); for anything else
	// read cur().cfg, the running config, which Reload replaces.
	cfg    *config.Config
	log    *slog.Logger
	set    *metrics.Set   // the Agent's own series: routing and reload counters
	router *pipeline.Swap // the current Router
	sup    *supervisor

	// l is the running layout; Reload replaces it (under op), readers
	// (status, health, metrics) load it once.
	l atomic.Pointer[layout]

	ran atomic.Bool // Run was called

	reload reloadState // reload.go

	status statusState // health, readiness and /status (health.go, status.go)

	// op serialises starts and stops (Run's start phase, Start*/Stop*,
	// the shutdown) and guards running and the units' ready fields.
	op      sync.Mutex
	running bool
}

// layout is what runs: the config and its components, in config order.
// It is never changed once stored; Reload stores a new one.
type layout struct {
	cfg     *config.Config
	queues  []*outQueue // owned by the Agent, not supervised units
	inputs  []*unit
	outputs []*unit
}

// cur returns the running layout.
func (a *Agent) cur() *layout { return a.l.Load() }

// outQueue is one output's disk queue and its metrics set.
type outQueue struct {
	id  string
	q   *buffer.Queue
	set *metrics.Set
}

// unit is one input or output the Agent can (re)start.
type unit struct {
	ref ref
	typ string
	// in or out is the component's config (Reload compares it).
	in    *config.Input
	out   *config.Output
	build func(set *metrics.Set) (runner, error)
	// before runs before each start (outputs: rewind the queue).
	before func()
	// ready and readySet are the component built by New, until started.
	ready    runner
	readySet *metrics.Set
}

// New checks cfg, opens the buffers and builds every component. On error
// everything opened so far is closed.
func New(cfg *config.Config, log *slog.Logger) (_ *Agent, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a := &Agent{cfg: cfg, log: log, set: metrics.NewSet(), sup: newSupervisor(log)}
	a.reload.init(a.set)
	l := &layout{cfg: cfg}
	defer func() {
		if err != nil {
			closeAll(l.queues, log)
		}
	}()
	var oq []pipeline.OutputQueue
	for i := range cfg.Outputs {
		o := &cfg.Outputs[i]
		q, err := openQueue(cfg, o, log)
		if err != nil {
			return nil, err
		}
		l.queues = append(l.queues, q)
		oq = append(oq, pipeline.OutputQueue{ID: o.ID, Queue: q.q, ChunkBytes: int(o.Buffer.ChunkBytes)})
		u, err := outputUnit(cfg, o, q, log)
		if err == nil {
			err = u.prepare()
		}
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.ID, err)
		}
		l.outputs = append(l.outputs, u)
	}
	r, err := a.newRouter(cfg, oq)
	if err != nil {
		return nil, err
	}
	a.router = pipeline.NewSwap(r)
	for i := range cfg.Inputs {
		in := &cfg.Inputs[i]
		u, err := a.inputUnit(cfg, in)
		if err == nil {
			err = u.prepare()
		}
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.ID, err)
		}
		l.inputs = append(l.inputs, u)
	}
	a.l.Store(l)
	return a, nil
}

// newRouter compiles cfg's routing over the output queues oq, for New and
// Reload alike.
func (a *Agent) newRouter(cfg *config.Config, oq []pipeline.OutputQueue) (*pipeline.Router, error) {
	return pipeline.NewRouter(cfg.Routes, cfg.DefaultOutput, oq, a.set, a.log, pipeline.WithProcessors(cfg.ProcessorSpecs()))
}

// openQueue opens output o's disk queue under cfg.DataDir.
func openQueue(cfg *config.Config, o *config.Output, log *slog.Logger) (*outQueue, error) {
	qset := metrics.NewSet()
	q, err := buffer.Open(queueDir(cfg, o.ID), bufferOptions(o, log, qset))
	if err != nil {
		return nil, fmt.Errorf("output %s: open buffer: %w", o.ID, err)
	}
	return &outQueue{id: o.ID, q: q, set: qset}, nil
}

func queueDir(cfg *config.Config, id string) string { return filepath.Join(cfg.DataDir, "buffer", id) }

// outputUnit is output o over its queue q.
func outputUnit(cfg *config.Config, o *config.Output, q *outQueue, log *slog.Logger) (*unit, error) {
	spec := o.Spec()
	c, err := constructorFor(outputConstructors, o.Type, spec)
	if err != nil {
		return nil, err
	}
	id, l, dc, dataDir := o.ID, log.With("output", o.ID), o.Delivery, cfg.DataDir
	return &unit{ref: ref{"output", id}, typ: o.Type, out: o, before: q.q.Rewind, build: func(set *metrics.Set) (runner, error) {
		return c.build(env{id: id, dataDir: dataDir, log: l, metrics: set, queue: q.q, delivery: dc}, spec)
	}}, nil
}

// inputUnit is input in; each start gets the current Router.
func (a *Agent) inputUnit(cfg *config.Config, in *config.Input) (*unit, error) {
	spec := in.Spec()
	c, err := constructorFor(inputConstructors, in.Type, spec)
	if err != nil {
		return nil, err
	}
	id, l, dataDir := in.ID, a.log.With("input", in.ID), cfg.DataDir
	return &unit{ref: ref{"input", id}, typ: in.Type, in: in, build: func(set *metrics.Set) (runner, error) {
		return c.build(env{id: id, dataDir: dataDir, log: l, metrics: set, router: a.router.Load()}, spec)
	}}, nil
}

// prepare builds the unit's first component, so that New reports
// construction errors.
func (u *unit) prepare() error {
	u.readySet = metrics.NewSet()
	r, err := u.build(u.readySet)
	u.ready = r
	return err
}

func bufferOptions(o *config.Output, log *slog.Logger, set *metrics.Set) buffer.Options {
	b := o.Buffer
	opt := buffer.Options{
		Name:          o.ID,
		MaxBytes:      int64(b.MaxBytes),
		SegmentBytes:  int64(b.SegmentBytes),
		FsyncAlways:   b.Fsync == "always",
		FsyncInterval: b.FsyncInterval,
		Logger:        log.With("output", o.ID),
		Metrics:       set,
	}
	if b.Overflow == "block" {
		opt.Overflow = buffer.Block
	}
	return opt
}

// Run runs every component until ctx is cancelled or one of them fails,
// then shuts down in order (see the package doc). A component failure is
// returned; a normal shutdown returns nil. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	defer a.closeQueues()
	defer a.reload.bg.Wait() // retiring queues (reload.go); after the shutdown stopped them

	a.op.Lock()
	a.running = true
	startErr := a.startAllLocked()
	a.op.Unlock()

	var metricsSrv *http.Server
	var metricsWG sync.WaitGroup
	var runErr error
	if startErr == nil && a.cur().cfg.MetricsAddr != "" {
		metricsSrv, startErr = a.serveMetrics(&metricsWG)
	}
	if startErr != nil {
		runErr = startErr
		a.log.Error("start failed, shutting down", "err", startErr)
	} else {
		l := a.cur()
		a.log.Info("agent started", "inputs", len(l.inputs), "outputs", len(l.outputs), "data_dir", l.cfg.DataDir)
		select {
		case <-ctx.Done():
			a.log.Info("shutting down: stopping inputs")
		case runErr = <-a.sup.failed:
			a.log.Error("component failed, shutting down", "err", runErr)
		}
	}
	stopErr := a.shutdown()
	if metricsSrv != nil {
		metricsSrv.Close()
	}
	metricsWG.Wait()
	// A failure that raced with the shutdown; the first real failure wins.
	select {
	case err := <-a.sup.failed:
		if runErr == nil {
			runErr = err
		}
	default:
	}
	if runErr == nil {
		runErr = stopErr
	} else if stopErr != nil {
		a.log.Error("errors while shutting down", "err", stopErr)
	}
	a.log.Info("agent stopped")
	return runErr
}

// startAllLocked starts the buffers, then the outputs, then the inputs.
func (a *Agent) startAllLocked() error {
	l := a.cur()
	for _, q := range l.queues {
		if err := a.sup.start(ref{"buffer", q.id}, q.set, q.q); err != nil {
			return err
		}
	}
	for _, u := range l.outputs {
		if err := a.startLocked(u); err != nil {
			return err
		}
	}
	for _, u := range l.inputs {
		if err := a.startLocked(u); err != nil {
			return err
		}
	}
	return nil
}

// shutdown stops everything in the documented order and returns the
// errors of the stops.
func (a *Agent) shutdown() error {
	a.status.stopping.Store(true) // readiness drops first
	a.op.Lock()
	defer a.op.Unlock()
	a.running = false
	a.reload.stopping()
	a.sup.close()
	l := a.cur()
	var errs []error
	errs = append(errs, a.sup.stopKind("input"))
	for _, q := range append(l.queues, a.reload.retiring...) {
		if err := q.q.Sync(); err != nil {
			a.log.Error("sync buffer", "output", q.id, "err", err)
		}
	}
	grace := l.cfg.ShutdownGrace
	a.log.Info("inputs stopped; draining outputs", "grace", grace.String())
	a.sup.drain("output")
	drainCtx, cancel := context.WithTimeout(context.Background(), grace)
	var wg sync.WaitGroup
	for _, q := range l.queues {
		// An output that is not running (it failed, or was stopped) cannot
		// drain its queue: do not wait the grace period for it.
		r := ref{"output", q.id}
		done := a.sup.exited(r)
		select {
		case <-done:
			done = nil
		default:
		}
		if done == nil {
			if n := q.q.Stats().Pending; n > 0 {
				a.log.Warn("output not running; its data stays in its buffer", "output", q.id, "pending_chunks", n)
			}
			continue
		}
		// The outputs drain at once: one stuck output costs its stall
		// window, not one each.
		wg.Go(func() {
			ctx, stop := context.WithCancel(drainCtx)
			defer stop()
			stuck := make(chan struct{})
			go func() {
				defer stop()
				if a.watchStall(ctx, q, func() any { return a.sup.state(r).c }) {
					close(stuck)
				}
			}()
			go func() {
				select {
				case <-done:
					stop()
				case <-ctx.Done():
				}
			}()
			if err := q.q.WaitEmpty(ctx); err != nil {
				select {
				case <-stuck:
					a.log.Warn("output not drained: it keeps failing and settled nothing for a while; data stays in its buffer", "output", q.id, "pending_chunks", q.q.Stats().Pending)
				default:
					a.log.Warn("output not drained before grace period; data stays in its buffer", "output", q.id, "pending_chunks", q.q.Stats().Pending)
				}
			}
		})
	}
	wg.Wait()
	cancel()
	errs = append(errs, a.sup.stopKind("output"))
	errs = append(errs, a.sup.stopKind("buffer"))
	return errors.Join(errs...)
}

// drainStall is how long an output that keeps failing may go without
// settling a chunk at shutdown before the agent stops waiting for it.
var drainStall = time.Second

// watchStall reports (true) once q's output is stuck: no chunk of q was
// settled (acked, dead-lettered, discarded or dropped) for drainStall,
// and the output met a delivery failure after the last progress seen (or
// within two minutes before the drain: a server that is down is retried
// at most every retry_max, 60 s by default). Every server down, every
// attempt failing: waiting out the shutdown grace cannot deliver anything,
// and would only turn `docker stop` into a SIGKILL. Its chunks stay in
// its buffer. It returns false when ctx ends first.
func (a *Agent) watchStall(ctx context.Context, q *outQueue, comp func() any) bool {
	settled := func() int64 {
		s := q.q.Stats()
		return s.AckedChunks + s.DeadLetteredChunks + s.DiscardedChunks + s.DroppedChunks
	}
	start := time.Now()
	last, progress := settled(), start.Add(-2*time.Minute)
	quiet := start // since when nothing was settled
	t := time.NewTicker(drainStall / 10)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case now := <-t.C:
			if n := settled(); n != last {
				last, progress, quiet = n, now, now
				continue
			}
			if now.Sub(quiet) < drainStall {
				continue
			}
			le, ok := comp().(lastErrorer)
			if !ok {
				continue
			}
			if msg, at := le.LastError(); msg != "" && at.After(progress) {
				return true
			}
		}
	}
}

// startLocked starts u: its component built by New the first time, a new
// one after that.
func (a *Agent) startLocked(u *unit) error {
	if a.sup.running(u.ref) {
		return fmt.Errorf("%s is already running", u.ref)
	}
	r, set := u.ready, u.readySet
	if r == nil {
		set = metrics.NewSet()
		var err error
		if r, err = u.build(set); err != nil {
			return fmt.Errorf("%s: %w", u.ref, err)
		}
	}
	if u.before != nil {
		u.before()
	}
	if err := a.sup.start(u.ref, set, r); err != nil {
		return err
	}
	u.ready, u.readySet = nil, nil
	return nil
}

// StopInput stops the input id: it flushes, syncs and commits its offsets,
// and its metrics leave /metrics. It returns the input's error, if any.
func (a *Agent) StopInput(id string) error { return a.stop("input", id) }

// StartInput starts the input id again after StopInput. It resumes from
// its committed offsets, with the current Router.
func (a *Agent) StartInput(id string) error { return a.start("input", id) }

// StopOutput stops the output id. Its queue stays open: inputs keep
// appending to it.
func (a *Agent) StopOutput(id string) error { return a.stop("output", id) }

// StartOutput starts the output id again after StopOutput, over its queue,
// from the first chunk not settled.
func (a *Agent) StartOutput(id string) error { return a.start("output", id) }

func find(units []*unit, kind, id string) (*unit, error) {
	for _, u := range units {
		if u.ref.id == id {
			return u, nil
		}
	}
	return nil, fmt.Errorf("unknown %s %q", kind, id)
}

func (a *Agent) stop(kind, id string) error {
	return a.withUnit(kind, id, func(u *unit) error {
		if err := a.sup.stop(u.ref); err != nil {
			if errors.Is(err, errNotStarted) {
				return fmt.Errorf("%s is not running", u.ref)
			}
			return err
		}
		return nil
	})
}

func (a *Agent) start(kind, id string) error {
	return a.withUnit(kind, id, a.startLocked)
}

// withUnit runs fn on the unit kind/id under the op lock, while the Agent
// runs.
func (a *Agent) withUnit(kind, id string, fn func(*unit) error) error {
	a.op.Lock()
	defer a.op.Unlock()
	units := a.cur().inputs
	if kind == "output" {
		units = a.cur().outputs
	}
	u, err := find(units, kind, id)
	if err != nil {
		return err
	}
	if !a.running {
		return errNotRunning
	}
	return fn(u)
}

// WriteMetrics writes, in Prometheus text format, the Agent's routing
// counters and the series of every running component.
func (a *Agent) WriteMetrics(w io.Writer) {
	a.set.WritePrometheus(w)
	a.sup.writeMetrics(w)
}

func (a *Agent) serveMetrics(wg *sync.WaitGroup) (*http.Server, error) {
	ln, err := net.Listen("tcp", a.cur().cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		a.WriteMetrics(w)
		metrics.WriteProcessMetrics(w)
	})
	a.handleStatus(mux)
	a.handleTap(mux) // tap.go
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case a.sup.failed <- fmt.Errorf("metrics: %w", err):
			default:
				a.log.Error("metrics server failed", "err", err)
			}
		}
	})
	return srv, nil
}

// closeQueues closes every queue (Queue.Close is idempotent).
func (a *Agent) closeQueues() {
	closeAll(a.cur().queues, a.log)
	a.op.Lock()
	closeAll(a.reload.retiring, a.log)
	a.op.Unlock()
}

func closeAll(qs []*outQueue, log *slog.Logger) {
	for _, q := range qs {
		if err := q.q.Close(); err != nil {
			log.Error("close buffer", "output", q.id, "err", err)
		}
	}
}

// EventsIn is the number of events inputs handed to the router so far
// (routed to at least one output, or counted as unrouted).
func (a *Agent) EventsIn() float64 {
	n := a.Unrouted()
	for _, o := range a.cur().cfg.Outputs {
		n += float64(a.set.GetOrCreateCounter(fmt.Sprintf(`sluice_events_routed_total{output=%q}`, o.ID)).Get())
	}
	return n
}

// Unrouted is the number of events that matched no route and no default.
func (a *Agent) Unrouted() float64 {
	return float64(a.set.GetOrCreateCounter(`sluice_events_unrouted_total`).Get())
}

// Idle reports whether every queue is empty (all chunks acknowledged).
func (a *Agent) Idle() bool {
	for _, q := range a.cur().queues {
		if q.q.Stats().Pending > 0 {
			return false
		}
	}
	return true
}

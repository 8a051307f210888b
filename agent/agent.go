// Package agent assembles the components named in a config and runs them.
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
//     they can; chunks still unacknowledged stay on disk for the next start;
//  3. outputs stop, queues are closed.
//
// Run returns only after every goroutine it started has exited.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/docker"
	fwdin "github.com/sluice-agent/sluice/inputs/forward"
	"github.com/sluice-agent/sluice/outputs/file"
	fwdout "github.com/sluice-agent/sluice/outputs/forward"
	"github.com/sluice-agent/sluice/outputs/stdout"
	"github.com/sluice-agent/sluice/pipeline"
)

// runner is what every input and output is.
type runner interface {
	Run(ctx context.Context) error
}

type component struct {
	kind, id string
	r        runner
}

// Agent is a configured, not yet running, set of components.
type Agent struct {
	cfg     *config.Config
	log     *slog.Logger
	Metrics *metrics.Set
	queues  []*buffer.Queue
	qnames  []string
	outputs []component
	inputs  []component
	Router  *pipeline.Router
}

// New opens the buffers and builds every component. On error everything
// opened so far is closed.
func New(cfg *config.Config, log *slog.Logger) (_ *Agent, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, Metrics: metrics.NewSet()}
	defer func() {
		if err != nil {
			a.closeQueues()
		}
	}()
	var oq []pipeline.OutputQueue
	for _, o := range cfg.Outputs {
		q, err := buffer.Open(filepath.Join(cfg.DataDir, "buffer", o.ID), bufferOptions(o, log, a.Metrics))
		if err != nil {
			return nil, fmt.Errorf("output %s: open buffer: %w", o.ID, err)
		}
		a.queues = append(a.queues, q)
		a.qnames = append(a.qnames, o.ID)
		oq = append(oq, pipeline.OutputQueue{ID: o.ID, Queue: q, ChunkBytes: int(o.Buffer.ChunkBytes)})
		out, err := newOutput(o, q, log, a.Metrics)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.ID, err)
		}
		a.outputs = append(a.outputs, component{"output", o.ID, out})
	}
	a.Router, err = pipeline.NewRouter(cfg.Routes, cfg.DefaultOutput, oq, a.Metrics, log)
	if err != nil {
		return nil, err
	}
	for _, in := range cfg.Inputs {
		r, err := newInput(in, cfg.DataDir, a.Router, log, a.Metrics)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.ID, err)
		}
		a.inputs = append(a.inputs, component{"input", in.ID, r})
	}
	return a, nil
}

func bufferOptions(o config.Output, log *slog.Logger, set *metrics.Set) buffer.Options {
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

func newOutput(o config.Output, q *buffer.Queue, log *slog.Logger, set *metrics.Set) (runner, error) {
	l := log.With("output", o.ID)
	switch o.Type {
	case "forward":
		return fwdout.New(o.ID, *o.Forward, q, l, set)
	case "file":
		return file.New(o.ID, *o.File, q, l, set)
	case "stdout":
		return stdout.New(o.ID, q, l, set), nil
	}
	return nil, fmt.Errorf("unknown output type %q", o.Type)
}

func newInput(in config.Input, dataDir string, r *pipeline.Router, log *slog.Logger, set *metrics.Set) (runner, error) {
	l := log.With("input", in.ID)
	switch in.Type {
	case "docker":
		return docker.New(in.ID, *in.Docker, dataDir, r, l, set)
	case "forward":
		return fwdin.New(in.ID, *in.Forward, r, l, set)
	}
	return nil, fmt.Errorf("unknown input type %q", in.Type)
}

// Run runs every component until ctx is cancelled or one of them fails,
// then shuts down in order (see the package doc). A component failure is
// returned; a normal shutdown returns nil.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeQueues()
	bufCtx, stopBuf := context.WithCancel(context.Background())
	outCtx, stopOut := context.WithCancel(context.Background())
	inCtx, stopIn := context.WithCancel(ctx)
	defer stopBuf()
	defer stopOut()
	defer stopIn()

	failed := make(chan error, len(a.inputs)+len(a.outputs)+len(a.queues)+1)
	var bufWG, outWG, inWG sync.WaitGroup
	start := func(wg *sync.WaitGroup, ctx context.Context, c component) {
		wg.Go(func() {
			if err := c.r.Run(ctx); err != nil {
				failed <- fmt.Errorf("%s %s: %w", c.kind, c.id, err)
			}
		})
	}
	for i, q := range a.queues {
		start(&bufWG, bufCtx, component{"buffer", a.qnames[i], q})
	}
	for _, c := range a.outputs {
		start(&outWG, outCtx, c)
	}
	for _, c := range a.inputs {
		start(&inWG, inCtx, c)
	}
	var metricsSrv *http.Server
	var metricsWG sync.WaitGroup
	if a.cfg.MetricsAddr != "" {
		srv, err := a.serveMetrics(&metricsWG, failed)
		if err != nil {
			failed <- err
		}
		metricsSrv = srv
	}
	a.log.Info("agent started", "inputs", len(a.inputs), "outputs", len(a.outputs), "data_dir", a.cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down: stopping inputs")
	case runErr = <-failed:
		a.log.Error("component failed, shutting down", "err", runErr)
	}
	stopIn()
	inWG.Wait()
	if err := a.Router.Sync(); err != nil {
		a.log.Error("sync buffers", "err", err)
	}
	grace := a.cfg.ShutdownGrace
	a.log.Info("inputs stopped; draining outputs", "grace", grace.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), grace)
	for i, q := range a.queues {
		if err := q.WaitEmpty(drainCtx); err != nil {
			st := q.Stats()
			a.log.Warn("output not drained before grace period; data stays in its buffer", "output", a.qnames[i], "pending_chunks", st.Pending)
		}
	}
	cancel()
	stopOut()
	outWG.Wait()
	stopBuf()
	bufWG.Wait()
	if metricsSrv != nil {
		metricsSrv.Close()
	}
	metricsWG.Wait()
	// Drain errors that raced with the shutdown; the first real failure wins.
	for done := false; !done; {
		select {
		case err := <-failed:
			if runErr == nil {
				runErr = err
			}
		default:
			done = true
		}
	}
	a.log.Info("agent stopped")
	return runErr
}

func (a *Agent) serveMetrics(wg *sync.WaitGroup, failed chan<- error) (*http.Server, error) {
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		a.Metrics.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("metrics: %w", err)
		}
	})
	return srv, nil
}

func (a *Agent) closeQueues() {
	for i, q := range a.queues {
		if err := q.Close(); err != nil {
			a.log.Error("close buffer", "output", a.qnames[i], "err", err)
		}
	}
	a.queues = nil
}

// EventsIn is the number of events inputs handed to the router so far
// (routed to at least one output, or counted as unrouted).
func (a *Agent) EventsIn() float64 {
	n := a.Unrouted()
	for _, o := range a.cfg.Outputs {
		n += float64(a.Metrics.GetOrCreateCounter(fmt.Sprintf(`sluice_events_routed_total{output=%q}`, o.ID)).Get())
	}
	return n
}

// Unrouted is the number of events that matched no route and no default.
func (a *Agent) Unrouted() float64 {
	return float64(a.Metrics.GetOrCreateCounter(`sluice_events_unrouted_total`).Get())
}

// Idle reports whether every queue is empty (all chunks acknowledged).
func (a *Agent) Idle() bool {
	for _, q := range a.queues {
		if q.Stats().Pending > 0 {
			return false
		}
	}
	return true
}

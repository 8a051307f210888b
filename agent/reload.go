package agent

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/pipeline"
)

// ErrNeedsRestart wraps the error of a reload refused because it changes
// what only a restart can change (data_dir, metrics_addr, an output's
// buffer settings other than chunk_bytes).
var ErrNeedsRestart = errors.New("needs a restart")

// reloadDrainMax bounds how long a reload waits for a changed or removed
// output's chunks in flight to settle before it stops the output (what is
// still unsettled then stays in the queue and is sent again).
const reloadDrainMax = 5 * time.Second

// ReloadStatus is the outcome of the last reload, in /status.
type ReloadStatus struct {
	At     time.Time `json:"at"`
	Result string    `json:"result"` // success or failure
	Error  string    `json:"error,omitempty"`
	// Changes lists what a successful reload did: "output x changed",
	// "routes changed", ... (empty: nothing changed).
	Changes []string `json:"changes"`
}

// reloadState is the Agent's reload bookkeeping.
type reloadState struct {
	success, failure *metrics.Counter
	lastOK           *metrics.Gauge // 1 if the last reload succeeded
	lastOKTime       *metrics.Gauge // unix seconds of the last successful reload

	mu     sync.Mutex
	status *ReloadStatus

	// retiring are the queues of removed outputs still open (guarded by
	// Agent.op): inputs may still append what they routed before the
	// reload; a goroutine (bg) closes each once no Writer holds such events.
	retiring []*outQueue
	bg       sync.WaitGroup
	done     chan struct{} // closed when the shutdown begins
	doneOnce sync.Once
}

func (r *reloadState) init(set *metrics.Set) {
	r.success = set.NewCounter(`sluice_config_reloads_total{result="success"}`)
	r.failure = set.NewCounter(`sluice_config_reloads_total{result="failure"}`)
	r.lastOK = set.NewGauge(`sluice_config_last_reload_successful`, nil)
	r.lastOKTime = set.NewGauge(`sluice_config_last_reload_success_timestamp_seconds`, nil)
	r.lastOK.Set(1) // the config loaded at start
	r.done = make(chan struct{})
}

// stopping is called when the shutdown begins.
func (r *reloadState) stopping() { r.doneOnce.Do(func() { close(r.done) }) }

func (r *reloadState) record(err error, changes []string) {
	now := time.Now()
	st := &ReloadStatus{At: now, Result: "success", Changes: changes}
	if st.Changes == nil {
		st.Changes = []string{}
	}
	if err != nil {
		st.Result, st.Error, st.Changes = "failure", redact(err.Error()), []string{}
		r.failure.Inc()
		r.lastOK.Set(0)
	} else {
		r.success.Inc()
		r.lastOK.Set(1)
		r.lastOKTime.Set(float64(now.Unix()))
	}
	r.mu.Lock()
	r.status = st
	r.mu.Unlock()
}

func (r *reloadState) last() *ReloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == nil {
		return nil
	}
	c := *r.status
	return &c
}

// ReloadFile loads the config at path and applies it (Reload). A file
// that does not load is refused, counted and returned like any other
// refused reload: the running config stays.
func (a *Agent) ReloadFile(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		a.logReloadError(err)
		a.reload.record(err, nil)
		return err
	}
	return a.Reload(cfg)
}

// Config returns the running config (the last one a reload applied).
func (a *Agent) Config() *config.Config { return a.cur().cfg }

// logReloadError logs a refused reload, one problem per entry of
// "errors" (a config file's file:line problems).
func (a *Agent) logReloadError(err error) {
	a.log.Error("config reload failed; the running config stays", "errors", errorLines(err))
}

// errorLines is a config file's problems, one per line ("file:line:
// path: message"), or err's message split into lines.
func errorLines(err error) []string {
	var ce config.Errors
	if errors.As(err, &ce) {
		out := make([]string, len(ce))
		for i, e := range ce {
			out[i] = e.Error()
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}

// Reload makes the running agent run cfg (see the package doc, "Live
// reload"). It returns nil once every change is applied. An invalid cfg,
// or one that changes what needs a restart (ErrNeedsRestart), is refused
// as a whole before anything is touched: the running config stays. Every
// call is counted in sluice_config_reloads_total{result}.
func (a *Agent) Reload(cfg *config.Config) error {
	start := time.Now()
	changes, err := a.reloadConfig(cfg)
	took := time.Since(start).Round(time.Microsecond).String()
	switch {
	case err != nil:
		a.logReloadError(err)
	case len(changes) == 0:
		a.log.Info("config reloaded: nothing changed", "took", took)
	default:
		a.log.Info("config reloaded", "changes", changes, "took", took)
	}
	a.reload.record(err, changes)
	return err
}

// reloadPlan is what a reload does, computed before anything changes.
type reloadPlan struct {
	cfg *config.Config
	// per new output and input, in config order: the unit that stays
	// (unchanged), or the new unit (added or changed)
	outputs, inputs []*unit
	queues          []*outQueue
	// changedOut[i] is the running unit a new one replaces (nil: added or
	// unchanged), same for changedIn
	replacesOut, replacesIn []*unit
	newQueues               []*outQueue // opened for added outputs
	reusedRetiring          []*outQueue // removed earlier, back now
	removedOut, removedIn   []*unit
	removedQueues           []*outQueue
	router                  *pipeline.Router // nil: routing unchanged
	changes                 []string
}

func (a *Agent) reloadConfig(cfg *config.Config) ([]string, error) {
	if cfg == nil {
		return nil, errors.New("reload: no config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a.op.Lock()
	defer a.op.Unlock()
	if !a.running {
		return nil, errNotRunning
	}
	old := a.cur()
	if err := needsRestart(old, cfg); err != nil {
		return nil, err
	}
	p, err := a.plan(old, cfg)
	if err != nil {
		closeAll(p.newQueues, a.log)
		return nil, err
	}
	return p.changes, a.apply(old, p)
}

// needsRestart refuses changes a running agent cannot apply.
func needsRestart(old *layout, cfg *config.Config) error {
	var errs []error
	if old.cfg.DataDir != cfg.DataDir {
		errs = append(errs, fmt.Errorf("data_dir changed (%q to %q)", old.cfg.DataDir, cfg.DataDir))
	}
	if old.cfg.MetricsAddr != cfg.MetricsAddr {
		errs = append(errs, fmt.Errorf("metrics_addr changed (%q to %q)", old.cfg.MetricsAddr, cfg.MetricsAddr))
	}
	for _, u := range old.outputs {
		for i := range cfg.Outputs {
			if n := &cfg.Outputs[i]; n.ID == u.ref.id {
				for _, k := range bufferChanges(u.out.Buffer, n.Buffer) {
					errs = append(errs, fmt.Errorf("output %s: buffer.%s changed", n.ID, k))
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("reload refused, %w: %w", ErrNeedsRestart, errors.Join(errs...))
}

// bufferChanges lists the buffer keys that differ, except chunk_bytes
// (the Router's business, applied by a reload): the queue is opened with
// the others.
func bufferChanges(a, b config.Buffer) []string {
	var keys []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		k, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("yaml"), ",")
		if k != "chunk_bytes" && !va.Field(i).Equal(vb.Field(i)) {
			keys = append(keys, k)
		}
	}
	return keys
}

// plan computes the reload and builds what it starts, touching nothing
// that runs: queues are opened only for added outputs (closed by the
// caller on error).
func (a *Agent) plan(old *layout, cfg *config.Config) (*reloadPlan, error) {
	p := &reloadPlan{cfg: cfg}
	oldOut := map[string]int{}
	for i, u := range old.outputs {
		oldOut[u.ref.id] = i
	}
	newOut := map[string]bool{}
	routingChanged := false
	var oq []pipeline.OutputQueue
	for i := range cfg.Outputs {
		o := &cfg.Outputs[i]
		newOut[o.ID] = true
		j, kept := oldOut[o.ID]
		var q *outQueue
		var u *unit
		var replaces *unit
		switch {
		case kept:
			q, u = old.queues[j], old.outputs[j]
			if !sameOutput(u.out, o) {
				replaces = u
				var err error
				if u, err = outputUnit(cfg, o, q, a.log); err == nil {
					err = u.prepare()
				}
				if err != nil {
					return p, fmt.Errorf("output %s: %w", o.ID, err)
				}
				p.changes = append(p.changes, "output "+o.ID+" changed")
			}
			if u.out.Buffer.ChunkBytes != o.Buffer.ChunkBytes {
				routingChanged = true
			}
		default:
			routingChanged = true
			if q = a.findRetiring(o.ID); q != nil {
				p.reusedRetiring = append(p.reusedRetiring, q)
			} else {
				var err error
				if q, err = openQueue(cfg, o, a.log); err != nil {
					return p, err
				}
				p.newQueues = append(p.newQueues, q)
			}
			var err error
			if u, err = outputUnit(cfg, o, q, a.log); err == nil {
				err = u.prepare()
			}
			if err != nil {
				return p, fmt.Errorf("output %s: %w", o.ID, err)
			}
			p.changes = append(p.changes, "output "+o.ID+" added")
		}
		p.outputs = append(p.outputs, u)
		p.queues = append(p.queues, q)
		p.replacesOut = append(p.replacesOut, replaces)
		oq = append(oq, pipeline.OutputQueue{ID: o.ID, Queue: q.q, ChunkBytes: int(o.Buffer.ChunkBytes)})
	}
	for i, u := range old.outputs {
		if !newOut[u.ref.id] {
			routingChanged = true
			p.removedOut = append(p.removedOut, u)
			p.removedQueues = append(p.removedQueues, old.queues[i])
			p.changes = append(p.changes, "output "+u.ref.id+" removed")
		}
	}
	if !equalIgnoringLines(reflect.ValueOf(old.cfg.Routes), reflect.ValueOf(cfg.Routes)) || old.cfg.DefaultOutput != cfg.DefaultOutput {
		routingChanged = true
		p.changes = append(p.changes, "routes changed")
	}
	if !equalIgnoringLines(reflect.ValueOf(old.cfg.Processors), reflect.ValueOf(cfg.Processors)) {
		routingChanged = true
		p.changes = append(p.changes, "processors changed")
	}
	if routingChanged {
		r, err := a.newRouter(cfg, oq)
		if err != nil {
			return p, err
		}
		p.router = r
	}

	oldIn := map[string]*unit{}
	for _, u := range old.inputs {
		oldIn[u.ref.id] = u
	}
	newIn := map[string]bool{}
	for i := range cfg.Inputs {
		in := &cfg.Inputs[i]
		newIn[in.ID] = true
		u, kept := oldIn[in.ID]
		var replaces *unit
		if !kept || !sameInput(u.in, in) {
			nu, err := a.inputUnit(cfg, in)
			if err != nil {
				return p, fmt.Errorf("input %s: %w", in.ID, err)
			}
			if kept {
				// Built when started, after the old one stopped and
				// committed its offsets (a file input reads them when built).
				replaces = u
				p.changes = append(p.changes, "input "+in.ID+" changed")
			} else {
				if err := nu.prepare(); err != nil {
					return p, fmt.Errorf("input %s: %w", in.ID, err)
				}
				p.changes = append(p.changes, "input "+in.ID+" added")
			}
			u = nu
		}
		p.inputs = append(p.inputs, u)
		p.replacesIn = append(p.replacesIn, replaces)
	}
	for _, u := range old.inputs {
		if !newIn[u.ref.id] {
			p.removedIn = append(p.removedIn, u)
			p.changes = append(p.changes, "input "+u.ref.id+" removed")
		}
	}
	if old.cfg.ShutdownGrace != cfg.ShutdownGrace {
		p.changes = append(p.changes, "shutdown_grace changed")
	}
	if old.cfg.LogLevel != cfg.LogLevel {
		p.changes = append(p.changes, "log_level changed")
	}
	return p, nil
}

// apply carries out p; see the package doc for the order.
func (a *Agent) apply(old *layout, p *reloadPlan) error {
	var errs []error
	// 1. Inputs removed or changed stop: they flush into the queues of the
	// Router they use, sync and commit their offsets.
	stopIn := map[ref]bool{}
	for _, u := range p.removedIn {
		stopIn[u.ref] = true
	}
	for _, u := range p.replacesIn {
		if u != nil {
			stopIn[u.ref] = true
		}
	}
	if len(stopIn) > 0 {
		if err := a.sup.stopAll(func(r ref) bool { return stopIn[r] }, false); err != nil {
			a.log.Warn("reload: stopped inputs returned errors", "err", err)
		}
	}
	// 2. New queues and outputs start before any input can route to them.
	for _, q := range p.newQueues {
		if err := a.sup.start(ref{"buffer", q.id}, q.set, q.q); err != nil {
			errs = append(errs, err)
		}
	}
	for i, u := range p.outputs {
		if p.replacesOut[i] == nil && u.ready != nil {
			if err := a.startLocked(u); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// 3. The Router: inputs that keep running move to it at their next
	// batch. Removed outputs' queues keep being synced until retired.
	for _, q := range p.reusedRetiring {
		a.unretire(q)
	}
	var settled func() bool
	if p.router != nil {
		for _, q := range p.removedQueues {
			a.router.Retire(q.q, q.id)
		}
		settled = a.router.Store(p.router)
	}
	// 4. Inputs added or changed start, with the new Router.
	for i, u := range p.inputs {
		switch prev := p.replacesIn[i]; {
		case prev != nil:
			if err := a.startLocked(u); err != nil {
				// Keep the input running as it was.
				err = fmt.Errorf("input %s: new settings do not start, keeping the previous ones: %w", u.ref.id, err)
				errs = append(errs, err)
				if rerr := a.startLocked(prev); rerr != nil {
					errs = append(errs, fmt.Errorf("input %s: previous settings do not start again either: %w", u.ref.id, rerr))
				}
				p.inputs[i] = prev
			}
		case u.ready != nil:
			if err := a.startLocked(u); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// 5. Outputs changed or removed stop once their chunks in flight
	// settled (bounded); a changed one starts again over the same queue,
	// from its first unsettled chunk.
	drain := min(p.cfg.ShutdownGrace, reloadDrainMax)
	var wg sync.WaitGroup
	var mu sync.Mutex
	restart := func(prev, next *unit, q *outQueue) {
		q.q.Pause() // no new chunk in flight: the stop cuts off nothing
		defer q.q.Resume()
		a.quiesce(prev.ref, q, drain)
		err := a.sup.stop(prev.ref)
		if err != nil && !errors.Is(err, errNotStarted) {
			a.log.Warn("reload: stopped output returned an error", "output", prev.ref.id, "err", err)
		}
		if next != nil {
			if err := a.startLocked(next); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}
	}
	for i, prev := range p.replacesOut {
		if prev != nil {
			wg.Go(func() { restart(prev, p.outputs[i], p.queues[i]) })
		}
	}
	for i, u := range p.removedOut {
		wg.Go(func() { restart(u, nil, p.removedQueues[i]) })
	}
	wg.Wait()
	// 6. Removed outputs' queues stay on disk; each is closed once no
	// input holds events routed to it (settled).
	for _, q := range p.removedQueues {
		st := q.q.Stats()
		a.log.Warn("output removed: its queue is kept on disk until `agent buffer drop`", "output", q.id,
			"dir", queueDir(p.cfg, q.id), "pending_chunks", st.Pending, "pending_events", st.PendingEvents)
		a.reload.retiring = append(a.reload.retiring, q)
		a.reload.bg.Go(func() { a.retire(q, settled) })
	}
	// The units that stay compare with the new settings from now on
	// (equal but for chunk_bytes or lines), except an input whose new
	// settings did not start.
	for i, u := range p.outputs {
		u.out = &p.cfg.Outputs[i]
	}
	for i, u := range p.inputs {
		if u == p.replacesIn[i] {
			continue
		}
		u.in = &p.cfg.Inputs[i]
	}
	a.l.Store(&layout{cfg: p.cfg, queues: p.queues, inputs: p.inputs, outputs: p.outputs})
	return errors.Join(errs...)
}

// quiesce lets output r settle the chunks it holds before a reload stops
// it: with its queue paused (no chunk is handed out any more), Drain (send
// open batches now), then wait until none of the queue's chunks is in
// flight, or timeout. Stopping it then cancels nothing that
// was sent, so its successor resends nothing it delivered; inputs keep
// appending meanwhile.
func (a *Agent) quiesce(r ref, q *outQueue, timeout time.Duration) {
	a.sup.drainOne(r)
	deadline := time.Now().Add(timeout)
	for q.q.Stats().InFlight > 0 {
		if time.Now().After(deadline) {
			a.log.Warn("reload: output still has chunks in flight; they stay queued and are sent again",
				"output", r.id, "in_flight_chunks", q.q.Stats().InFlight, "waited", timeout.String())
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// findRetiring returns the queue of a removed output id not closed yet,
// or nil. Under op.
func (a *Agent) findRetiring(id string) *outQueue {
	for _, q := range a.reload.retiring {
		if q.id == id {
			return q
		}
	}
	return nil
}

// unretire takes q back from the retiring queues (its output is added
// back). Under op.
func (a *Agent) unretire(q *outQueue) {
	for i, r := range a.reload.retiring {
		if r == q {
			a.reload.retiring = append(a.reload.retiring[:i], a.reload.retiring[i+1:]...)
			break
		}
	}
	a.router.Keep(q.q) // routed to again: synced as a queue of the Router
}

// retire closes q, a removed output's queue, once settled reports that no
// Writer holds events for it (or leaves it to the shutdown).
func (a *Agent) retire(q *outQueue, settled func() bool) {
	for settled != nil && !settled() {
		select {
		case <-a.reload.done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.op.Lock()
	defer a.op.Unlock()
	i := -1
	for j, r := range a.reload.retiring {
		if r == q {
			i = j
		}
	}
	if i < 0 || !a.running {
		return // added back, or the shutdown closes it
	}
	a.reload.retiring = append(a.reload.retiring[:i], a.reload.retiring[i+1:]...)
	if err := q.q.Sync(); err != nil {
		a.log.Error("sync buffer of removed output", "output", q.id, "err", err)
	}
	if err := a.sup.stop(ref{"buffer", q.id}); err != nil && !errors.Is(err, errNotStarted) {
		a.log.Error("stop buffer of removed output", "output", q.id, "err", err)
	}
	if err := q.q.Close(); err != nil {
		a.log.Error("close buffer of removed output", "output", q.id, "err", err)
	}
	a.router.Retired(q.q)
	a.log.Info("queue of removed output closed; kept on disk", "output", q.id)
}

// sameOutput reports whether a running output with settings a may keep
// running under settings b (its buffer is compared apart).
func sameOutput(a, b *config.Output) bool {
	return a.Type == b.Type &&
		equalIgnoringLines(reflect.ValueOf(a.Spec()), reflect.ValueOf(b.Spec())) &&
		equalIgnoringLines(reflect.ValueOf(a.Delivery), reflect.ValueOf(b.Delivery))
}

func sameInput(a, b *config.Input) bool {
	return a.Type == b.Type && equalIgnoringLines(reflect.ValueOf(a.Spec()), reflect.ValueOf(b.Spec()))
}

// equalIgnoringLines is reflect.DeepEqual for decoded config values,
// except that the Line fields (`Line int yaml:"-"`, where a value sits in
// the file) are not compared and a nil slice or map equals an empty one.
func equalIgnoringLines(x, y reflect.Value) bool {
	if x.IsValid() != y.IsValid() {
		return false
	}
	if !x.IsValid() {
		return true
	}
	if x.Type() != y.Type() {
		return false
	}
	switch x.Kind() {
	case reflect.Pointer, reflect.Interface:
		if x.IsNil() || y.IsNil() {
			return x.IsNil() == y.IsNil()
		}
		return equalIgnoringLines(x.Elem(), y.Elem())
	case reflect.Struct:
		for i := range x.NumField() {
			if f := x.Type().Field(i); f.Name == "Line" && f.Type.Kind() == reflect.Int && f.Tag.Get("yaml") == "-" {
				continue
			}
			if !equalIgnoringLines(x.Field(i), y.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if x.Len() != y.Len() {
			return false
		}
		for i := range x.Len() {
			if !equalIgnoringLines(x.Index(i), y.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if x.Len() != y.Len() {
			return false
		}
		it := x.MapRange()
		for it.Next() {
			yv := y.MapIndex(it.Key())
			if !yv.IsValid() || !equalIgnoringLines(it.Value(), yv) {
				return false
			}
		}
		return true
	case reflect.Func:
		return x.IsNil() && y.IsNil()
	default:
		return x.Equal(y)
	}
}

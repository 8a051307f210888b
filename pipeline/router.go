package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/cond"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/processors"
)

// Event is one log event handed from an input to a Writer. Tag and Record
// are borrowed: they are copied during Add and may be reused afterwards.
type Event struct {
	Tag    []byte
	Time   int64  // nanoseconds since the Unix epoch
	Record []byte // msgpack map
}

// Queue is what the router needs of an output's disk queue
// (*buffer.Queue implements it).
type Queue interface {
	// Append stores one chunk of count entries of one tag. It returns
	// after the chunk is handed to the OS (and fsynced, by policy).
	Append(ctx context.Context, tag []byte, count int, entries []byte) error
	// Sync makes everything appended so far durable on disk.
	Sync() error
	// Mark returns a durability mark covering every Append that returned
	// before the call; SyncTo(mark) returns once those are durable,
	// sharing fsyncs with concurrent callers.
	Mark() uint64
	SyncTo(mark uint64) error
}

// Router holds the compiled routes. It is immutable and safe for
// concurrent use; each input goroutine takes its own Writer.
type Router struct {
	routes     []route
	dflt       int // output index, -1 if none
	queues     []Queue
	names      []string
	chunkBytes []int
	unrouted   *metrics.Counter
	routed     []*metrics.Counter
	tooLarge   []*metrics.Counter
	log        *slog.Logger
	chain      *processors.Chain // nil without processors
	swap       *Swap             // set once by NewSwap or Swap.Store (swap.go)
}

type route struct {
	match    []pattern
	field    []byte
	value    []byte
	outputs  []int
	cont     bool
	hasField bool
	when     *cond.Cond // nil: none
}

// OutputQueue names one output's queue for NewRouter.
type OutputQueue struct {
	ID         string
	Queue      Queue
	ChunkBytes int // target entries bytes per chunk; 0 means 1 MiB
}

// Option configures NewRouter.
type Option func(*options)

type options struct {
	procs    []processors.Spec
	hostname string
}

// WithProcessors runs specs (config.Config.ProcessorSpecs) in every
// Writer's Add, before routing; see package processors. Their counters go
// to the Router's metrics set.
func WithProcessors(specs []processors.Spec) Option {
	return func(o *options) { o.procs = specs }
}

// WithHostname sets the host name of the add processor's source
// hostname (default: the OS's), for dry runs and tests.
func WithHostname(h string) Option {
	return func(o *options) { o.hostname = h }
}

// NewRouter compiles routes (and processors, with WithProcessors). Every
// output named by a route or by defaultOutput must be among outputs.
func NewRouter(routes []config.Route, defaultOutput string, outputs []OutputQueue, set *metrics.Set, log *slog.Logger, opts ...Option) (*Router, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	r := &Router{dflt: -1, log: log}
	idx := map[string]int{}
	for i, o := range outputs {
		idx[o.ID] = i
		r.queues = append(r.queues, o.Queue)
		r.names = append(r.names, o.ID)
		cb := o.ChunkBytes
		if cb <= 0 {
			cb = 1 << 20
		}
		r.chunkBytes = append(r.chunkBytes, cb)
		r.routed = append(r.routed, set.GetOrCreateCounter(fmt.Sprintf(`sluice_events_routed_total{output=%q}`, o.ID)))
		r.tooLarge = append(r.tooLarge, set.GetOrCreateCounter(fmt.Sprintf(`sluice_events_too_large_total{output=%q}`, o.ID)))
	}
	for i, rc := range routes {
		var rt route
		ps, err := parsePatterns(rc.Match)
		if err != nil {
			return nil, fmt.Errorf("route %d: match: %w", i+1, err)
		}
		rt.match = ps
		if rc.Field != "" {
			rt.hasField = true
			rt.field = []byte(rc.Field)
			rt.value = []byte(rc.Value)
		}
		if rc.When != nil {
			c, err := cond.Compile(rc.When.Spec())
			if err != nil {
				return nil, fmt.Errorf("route %d: when: %w", i+1, err)
			}
			rt.when = c
		}
		for _, name := range rc.Outputs {
			j, ok := idx[name]
			if !ok {
				return nil, fmt.Errorf("route %d: unknown output %q", i+1, name)
			}
			rt.outputs = append(rt.outputs, j)
		}
		rt.cont = rc.Continue
		r.routes = append(r.routes, rt)
	}
	if defaultOutput != "" {
		j, ok := idx[defaultOutput]
		if !ok {
			return nil, fmt.Errorf("default_output: unknown output %q", defaultOutput)
		}
		r.dflt = j
	}
	r.unrouted = set.GetOrCreateCounter(`sluice_events_unrouted_total`)
	if len(o.procs) > 0 {
		c, err := processors.New(o.procs, processors.Options{Metrics: set, Hostname: o.hostname})
		if err != nil {
			return nil, err
		}
		r.chain = c
	}
	return r, nil
}

// maxEntries is the largest entries payload output o's queue accepts in one
// chunk of a tag of tagLen bytes (unlimited for queues that do not say).
func (r *Router) maxEntries(o, tagLen int) int {
	if q, ok := r.queues[o].(interface{ MaxEntries(tagLen int) int }); ok {
		return q.MaxEntries(tagLen)
	}
	return math.MaxInt
}

// MaxEventBytes is the largest event (its Forward entry: EventTime and
// record) that every queue can store under a tag of tagLen bytes. Inputs
// that acknowledge data to a client refuse larger events before the ack,
// so that no later stage refuses what was acknowledged.
func (r *Router) MaxEventBytes(tagLen int) int {
	r = r.current() // swap.go
	n := math.MaxInt
	for o := range r.queues {
		n = min(n, r.maxEntries(o, tagLen))
	}
	return n
}

// Sync makes every queue durable. Inputs call it before committing offsets.
func (r *Router) Sync() error {
	if r.swap != nil {
		return r.swap.sync() // swap.go
	}
	var errs []error
	for i, q := range r.queues {
		if err := q.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync output %s: %w", r.names[i], err))
		}
	}
	return errors.Join(errs...)
}

// resolve appends to dst the output indexes for an event. The result
// depends only on the tag unless a route has a field condition.
func (r *Router) resolve(dst []int, tag []byte, record []byte) []int {
	matched := false
	for i := range r.routes {
		rt := &r.routes[i]
		if !rt.matches(tag, record) {
			continue
		}
		matched = true
		for _, o := range rt.outputs {
			dst = appendUnique(dst, o)
		}
		if !rt.cont {
			break
		}
	}
	if !matched && r.dflt >= 0 {
		dst = append(dst, r.dflt)
	}
	return dst
}

// matches reports whether an event is selected by the route (its
// outputs, not whether an earlier route stopped the search).
func (rt *route) matches(tag, record []byte) bool {
	if !matchAny(rt.match, tag) {
		return false
	}
	if rt.hasField {
		v, ok := wire.LookupString(record, rt.field)
		if !ok || string(v) != string(rt.value) {
			return false
		}
	}
	return rt.when == nil || rt.when.Match(record)
}

func appendUnique(dst []int, v int) []int {
	for _, x := range dst {
		if x == v {
			return dst
		}
	}
	return append(dst, v)
}

// tagDependsOnRecord reports whether any route looks at the record, in which
// case per-tag caching of route results is not possible.
func (r *Router) tagDependsOnRecord() bool {
	for _, rt := range r.routes {
		if rt.hasField || rt.when != nil {
			return true
		}
	}
	return false
}

package pipeline

// Step is one processor's effect in a dry run: the event as it left it.
type Step struct {
	Processor string
	Tag       []byte
	Record    []byte
	Dropped   bool
}

// Outcome is where a dry run sends an event.
type Outcome struct {
	Steps   []Step
	Tag     []byte   // after the processors
	Record  []byte   // after the processors
	Dropped bool     // by a processor
	Routes  []int    // matching routes, 0-based, in the order they were taken
	Outputs []string // outputs the event is stored in; the default output when no route matched
	Default bool     // no route matched: Outputs is the default output, or empty (unrouted)
}

// DryRun passes one event through the processors and the routes as Add
// would, without touching a queue, and reports every step. It does not
// change the Router's state, except for throttle budgets, which it uses as
// the Writers do (a dry run is meant for a Router of its own).
func (r *Router) DryRun(tag, record []byte) Outcome {
	o := Outcome{Tag: tag, Record: record}
	if r.chain != nil {
		run := r.chain.NewRunner(nil)
		run.Trace = func(p string, tag, rec []byte, dropped bool) {
			o.Steps = append(o.Steps, Step{Processor: p, Tag: append([]byte(nil), tag...), Record: append([]byte(nil), rec...), Dropped: dropped})
		}
		t, rec, keep := run.Run(r.chain.Select(tag), tag, record)
		o.Tag, o.Record, o.Dropped = append([]byte(nil), t...), append([]byte(nil), rec...), !keep
		if !keep {
			return o
		}
	}
	for i := range r.routes {
		rt := &r.routes[i]
		if !rt.matches(o.Tag, o.Record) {
			continue
		}
		o.Routes = append(o.Routes, i)
		for _, out := range rt.outputs {
			o.Outputs = appendUniqueName(o.Outputs, r.names[out])
		}
		if !rt.cont {
			break
		}
	}
	if len(o.Routes) == 0 {
		o.Default = true
		if r.dflt >= 0 {
			o.Outputs = append(o.Outputs, r.names[r.dflt])
		}
	}
	return o
}

func appendUniqueName(dst []string, s string) []string {
	for _, x := range dst {
		if x == s {
			return dst
		}
	}
	return append(dst, s)
}

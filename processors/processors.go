package processors

import (
	"errors"
	"fmt"
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/cond"
	"github.com/sluice-agent/sluice/internal/tagpattern"
)

// MaxRewrites bounds how often rewrite_tag may re-tag one event.
const MaxRewrites = 4

// Spec is one processor as configured (config.Processor converts to it).
// Which fields a type uses is listed in Types.
type Spec struct {
	ID    string
	Type  string
	Match string     // tag patterns; "" matches every tag
	When  *cond.Spec // nil: every event the match selects
	// Fields: add (Key with Value, or Source "hostname") and rename (Key
	// to To).
	Fields []Field
	// Keys: remove, keep and nest (the members), redact (the fields to
	// scan; default log).
	Keys []string
	// Key: lift (the map whose members go to the top), nest (the new
	// map's key).
	Key string
	// Prefix: lift, prepended to each lifted key.
	Prefix string
	// Tag: rewrite_tag's template: literal text, {tag} and {field:PATH}.
	Tag string
	// Throttle: Per is container (default) or tag; Rate events per
	// second, Burst (default Rate) the bucket size; Sample > 0 keeps one
	// in Sample of the events over the rate instead of dropping them all.
	Per    string
	Rate   int
	Burst  int
	Sample int
	// Redact: built-in Patterns (email, ipv4, credit_card,
	// aws_access_key, bearer_token, jwt; default all when Custom is
	// empty too), Custom RE2 patterns, and the Mask that replaces a match
	// (default "[REDACTED]").
	Patterns []string
	Custom   []string
	Mask     string
	// Parse: Parser (package internal/parse) applied to the string field
	// Key (default log).
	Parser *parse.Config
}

// Field is one member of add or rename.
type Field struct {
	Key    string
	Value  string
	Source string // add: "hostname" takes the value from the host name
	To     string // rename: the new key
}

// Types lists the processor types and the Spec fields each one uses
// (their config keys), for validation and help.
var Types = map[string][]string{
	"add":         {"fields"},
	"rename":      {"fields"},
	"remove":      {"keys"},
	"keep":        {"keys"},
	"lift":        {"key", "prefix"},
	"nest":        {"keys", "key"},
	"drop":        {},
	"rewrite_tag": {"tag"},
	"throttle":    {"per", "rate", "burst", "sample"},
	"redact":      {"keys", "patterns", "custom", "mask"},
	"parse":       {"key", "parser"},
}

// Options are what New needs beyond the specs.
type Options struct {
	Metrics  *metrics.Set     // nil: a private set
	Hostname string           // for add's source hostname; "" asks the OS
	Now      func() time.Time // the throttle clock; nil: time.Now
}

// Chain is the compiled, ordered list of processors. It is safe for
// concurrent use; each goroutine runs it through its own Runner.
type Chain struct {
	procs []*proc
	now   func() time.Time
}

type kind uint8

const (
	kAdd kind = iota
	kRename
	kRemove
	kKeep
	kLift
	kNest
	kDrop
	kRewrite
	kThrottle
	kRedact
	kParse
)

var kinds = map[string]kind{
	"add": kAdd, "rename": kRename, "remove": kRemove, "keep": kKeep, "lift": kLift, "nest": kNest,
	"drop": kDrop, "rewrite_tag": kRewrite, "throttle": kThrottle, "redact": kRedact,
	"parse": kParse,
}

type proc struct {
	id    string
	kind  kind
	match []tagpattern.Pattern // nil: every tag
	when  *cond.Cond

	adds    []addField // add
	renames [][2][]byte
	keys    [][]byte // remove, keep, nest, redact
	key     []byte   // lift, nest
	prefix  []byte
	tmpl    *template
	thr     *throttle
	red     *redactor
	parse   *parse.Config // parse; each Runner makes its own Parser from it
	idx     int           // position in the Chain (a Runner's per-processor state)

	dropped *metrics.Counter
	loops   *metrics.Counter
}

type addField struct {
	key []byte
	val []byte // encoded msgpack str
}

// New compiles specs. Errors name the processor by its position and id
// and, for conditions and patterns, the part at fault.
func New(specs []Spec, o Options) (*Chain, error) {
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Chain{now: o.Now}
	ids := map[string]bool{}
	for i := range specs {
		s := &specs[i]
		id := ID(s, i)
		if ids[id] {
			return nil, fmt.Errorf("processor %d (%s): duplicate id", i+1, id)
		}
		ids[id] = true
		p, err := compile(s, id, &o)
		if err != nil {
			return nil, fmt.Errorf("processor %d (%s): %w", i+1, id, err)
		}
		p.dropped = o.Metrics.GetOrCreateCounter(fmt.Sprintf(`sluice_processor_dropped_total{processor=%q}`, id))
		if p.kind == kRewrite {
			p.loops = o.Metrics.GetOrCreateCounter(fmt.Sprintf(`sluice_processor_rewrite_loops_total{processor=%q}`, id))
		}
		if p.thr != nil {
			p.thr.init(id, o.Metrics)
		}
		p.idx = len(c.procs)
		c.procs = append(c.procs, p)
	}
	return c, nil
}

// ID is the id of the processor at index i of a list: its own, or
// "<type>-<i+1>".
func ID(s *Spec, i int) string {
	if s.ID != "" {
		return s.ID
	}
	return fmt.Sprintf("%s-%d", s.Type, i+1)
}

// Len is the number of processors.
func (c *Chain) Len() int { return len(c.procs) }

// Name is the id of processor i.
func (c *Chain) Name(i int) string { return c.procs[i].id }

func compile(s *Spec, id string, o *Options) (*proc, error) {
	k, ok := kinds[s.Type]
	if !ok {
		return nil, fmt.Errorf("unknown type %q", s.Type)
	}
	p := &proc{id: id, kind: k}
	if s.Match != "" {
		ps, err := tagpattern.Parse(s.Match)
		if err != nil {
			return nil, fmt.Errorf("match: %w", err)
		}
		p.match = ps
	}
	if s.When != nil {
		w, err := cond.Compile(*s.When)
		if err != nil {
			return nil, fmt.Errorf("when: %w", err)
		}
		p.when = w
	}
	needKeys := func() error {
		if len(s.Keys) == 0 {
			return errors.New("keys: at least one key is required")
		}
		for i, k := range s.Keys {
			if k == "" {
				return fmt.Errorf("keys[%d]: empty key", i)
			}
			p.keys = append(p.keys, []byte(k))
		}
		return nil
	}
	switch k {
	case kAdd:
		if len(s.Fields) == 0 {
			return nil, errors.New("fields: at least one field is required")
		}
		for i, f := range s.Fields {
			if f.Key == "" {
				return nil, fmt.Errorf("fields[%d].key: required", i)
			}
			v := f.Value
			switch f.Source {
			case "":
			case "hostname":
				if f.Value != "" {
					return nil, fmt.Errorf("fields[%d]: set either value or source", i)
				}
				if v = o.Hostname; v == "" {
					h, err := os.Hostname()
					if err != nil {
						return nil, fmt.Errorf("fields[%d]: source hostname: %w", i, err)
					}
					v = h
				}
			default:
				return nil, fmt.Errorf("fields[%d].source: unknown source %q (want hostname; ${VAR} in value reads the environment)", i, f.Source)
			}
			if f.To != "" {
				return nil, fmt.Errorf("fields[%d].to: only for rename", i)
			}
			p.adds = append(p.adds, addField{key: []byte(f.Key), val: msgp.AppendString(nil, v)})
		}
	case kRename:
		if len(s.Fields) == 0 {
			return nil, errors.New("fields: at least one field is required")
		}
		for i, f := range s.Fields {
			if f.Key == "" || f.To == "" {
				return nil, fmt.Errorf("fields[%d]: rename needs key and to", i)
			}
			if f.Value != "" || f.Source != "" {
				return nil, fmt.Errorf("fields[%d]: value and source are only for add", i)
			}
			p.renames = append(p.renames, [2][]byte{[]byte(f.Key), []byte(f.To)})
		}
	case kRemove, kKeep:
		if err := needKeys(); err != nil {
			return nil, err
		}
	case kLift:
		if s.Key == "" {
			return nil, errors.New("key: required (the map whose members are lifted)")
		}
		p.key, p.prefix = []byte(s.Key), []byte(s.Prefix)
	case kNest:
		if err := needKeys(); err != nil {
			return nil, err
		}
		if s.Key == "" {
			return nil, errors.New("key: required (the new map's key)")
		}
		p.key = []byte(s.Key)
	case kRewrite:
		t, err := parseTemplate(s.Tag)
		if err != nil {
			return nil, fmt.Errorf("tag: %w", err)
		}
		p.tmpl = t
	case kThrottle:
		t, err := newThrottle(s)
		if err != nil {
			return nil, err
		}
		p.thr = t
	case kParse:
		if s.Parser == nil || s.Parser.Type == "" {
			return nil, errors.New("parser: required (e.g. {type: nginx})")
		}
		pc := *s.Parser
		// The event time is the input's: a processor keeps the parsed
		// time field in the record rather than drop it.
		pc.KeepTimeKey = true
		if _, err := parse.New(pc); err != nil {
			return nil, fmt.Errorf("parser: %w", err)
		}
		p.parse = &pc
		p.key = []byte("log")
		if s.Key != "" {
			p.key = []byte(s.Key)
		}
	case kRedact:
		keys := s.Keys
		if len(keys) == 0 {
			keys = []string{"log"}
		}
		for _, k := range keys {
			p.keys = append(p.keys, []byte(k))
		}
		r, err := newRedactor(s.Patterns, s.Custom, s.Mask)
		if err != nil {
			return nil, err
		}
		p.red = r
	}
	return p, nil
}

// Select returns the indexes of the processors whose match covers tag, in
// order; nil if none. Callers cache it per tag.
func (c *Chain) Select(tag []byte) []int {
	var sel []int
	for i, p := range c.procs {
		if p.match == nil || tagpattern.MatchAny(p.match, tag) {
			sel = append(sel, i)
		}
	}
	return sel
}

// Runner runs a Chain for one goroutine; it holds the buffers an event is
// changed in. It is not safe for concurrent use.
type Runner struct {
	c      *Chain
	sel    func(tag []byte) []int
	e      edit
	tags   [2][]byte
	tagCur int
	scr    []byte // scratch: throttle keys, redacted text
	red    redactScratch
	cache  map[string][]int
	parsed []parse.Parser // per processor index, made at its first use
	skip   record.Keys
	// Trace, if set, is called after each processor that applied, with
	// the event as it left it (dry runs).
	Trace func(processor string, tag, record []byte, dropped bool)
}

// NewRunner returns a Runner. sel gives the processors that apply to a
// tag (Chain.Select, usually through a per-tag cache); nil means
// Chain.Select itself.
func (c *Chain) NewRunner(sel func(tag []byte) []int) *Runner {
	r := &Runner{c: c, sel: sel}
	if sel == nil {
		r.sel = r.cached
	}
	return r
}

// cached is Select through a per-Runner cache (for Runners without their
// caller's), bounded like the Writer's tag cache.
func (r *Runner) cached(tag []byte) []int {
	if s, ok := r.cache[string(tag)]; ok {
		return s
	}
	if r.cache == nil || len(r.cache) >= 4096 {
		r.cache = map[string][]int{}
	}
	s := r.c.Select(tag)
	r.cache[string(tag)] = s
	return s
}

// Run applies the processors sel (Select's answer for tag) to an event.
// It returns the event's tag and record afterwards, which are the
// arguments themselves when nothing changed and otherwise views into the
// Runner's buffers, valid until the next Run; keep is false if a
// processor dropped the event.
func (r *Runner) Run(sel []int, tag, rec []byte) (outTag, outRec []byte, keep bool) {
	r.e.reset(rec)
	rewrites := 0
	for i := 0; i < len(sel); i++ {
		p := r.c.procs[sel[i]]
		if p.when != nil && !p.when.Match(r.e.record()) {
			continue
		}
		switch p.kind {
		case kDrop:
			p.dropped.Inc()
			r.trace(p, tag, true)
			return tag, r.e.record(), false
		case kThrottle:
			if !p.thr.allow(r, tag, r.e.record(), r.c.now()) {
				p.dropped.Inc()
				r.trace(p, tag, true)
				return tag, r.e.record(), false
			}
		case kRewrite:
			nt := r.render(p.tmpl, tag)
			if string(nt) == string(tag) {
				break
			}
			if rewrites >= MaxRewrites {
				p.loops.Inc()
				break
			}
			rewrites++
			tag, r.tagCur = nt, r.tagCur^1
			r.trace(p, tag, false)
			sel, i = r.sel(tag), -1
			continue
		default:
			r.apply(p)
		}
		r.trace(p, tag, false)
	}
	return tag, r.e.record(), true
}

func (r *Runner) trace(p *proc, tag []byte, dropped bool) {
	if r.Trace != nil {
		r.Trace(p.id, tag, r.e.record(), dropped)
	}
}

// render renders a rewrite_tag template into the tag buffer that does
// not hold the current tag (Run flips tagCur when it adopts the result).
func (r *Runner) render(t *template, tag []byte) []byte {
	next := r.tagCur ^ 1
	r.tags[next] = t.render(r.tags[next][:0], tag, r.e.record())
	return r.tags[next]
}

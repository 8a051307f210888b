package config

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-agent/sluice/internal/cond"
	"github.com/sluice-agent/sluice/processors"
)

// Condition is the when of a route or a processor: a test of one record
// field, named by a top-level key or a dotted path into nested maps
// (kubernetes.labels.app), or a combination of conditions. Exactly one
// test or combinator is set.
type Condition struct {
	// Field is the record field tested: a top-level key or a dotted path
	// into nested maps (kubernetes.labels.app). With one of equals,
	// prefix, contains, regex or exists.
	Field string `yaml:"field"`
	// Equals holds when the field's whole value is this (numbers and
	// booleans compare by their text).
	Equals *string `yaml:"equals"`
	// Prefix holds when the field is a string that starts with this.
	Prefix *string `yaml:"prefix"`
	// Contains holds when the field is a string that contains this.
	Contains *string `yaml:"contains"`
	// Regex holds when the field is a string this RE2 regex matches (a
	// plain literal is searched without the regexp engine).
	Regex *string `yaml:"regex"`
	// Exists: true holds when the field is present (any value), false
	// when it is absent.
	Exists *bool `yaml:"exists"`
	// Not holds when its condition does not.
	Not *Condition `yaml:"not"`
	// Any holds when at least one of its conditions does.
	Any []Condition `yaml:"any"`
	// All holds when every one of its conditions does.
	All []Condition `yaml:"all"`
}

// Spec returns the internal/cond form of c.
func (c *Condition) Spec() cond.Spec {
	s := cond.Spec{Field: c.Field, Equals: c.Equals, Prefix: c.Prefix, Contains: c.Contains, Regex: c.Regex, Exists: c.Exists}
	if c.Not != nil {
		n := c.Not.Spec()
		s.Not = &n
	}
	if c.Any != nil {
		s.Any = make([]cond.Spec, len(c.Any))
		for i := range c.Any {
			s.Any[i] = c.Any[i].Spec()
		}
	}
	if c.All != nil {
		s.All = make([]cond.Spec, len(c.All))
		for i := range c.All {
			s.All[i] = c.All[i].Spec()
		}
	}
	return s
}

// Processor is one entry of the top-level processors list. Processors run
// in order on every event, before routing,
// each on the events whose tag Match selects (default all) and for which
// When holds (default always). Which keys a type takes:
//
//	add          fields: [{key, value}] or [{key, source: hostname}]
//	rename       fields: [{key, to}]
//	remove       keys
//	keep         keys (every other top-level key is removed)
//	lift         key (a map whose members move to the top), prefix
//	nest         keys (moved under a new map), key (its name)
//	drop         (when decides; counted per processor)
//	rewrite_tag  tag: a template of text, {tag} and {field:PATH}; the
//	             event runs the list again under the new tag
//	throttle     per (container or tag), rate (events/s), burst
//	             (default rate), sample (keep 1 in N over the rate)
//	redact       keys (default [log]), patterns (built-in: email, ipv4,
//	             credit_card, aws_access_key, bearer_token, jwt; all by
//	             default), custom (RE2), mask (default [REDACTED])
type Processor struct {
	// ID names the processor in metrics; default "<type>-<position>".
	ID string `yaml:"id"`
	// Type is what the processor does (see above). Required.
	Type string `yaml:"type"`
	// Match selects the events by tag, as a route's match does. Default:
	// every event.
	Match string `yaml:"match"`
	// When, if set, selects the events (of match) for which it holds.
	When *Condition `yaml:"when"`

	// Fields are the fields add sets (key with value, or with source:
	// hostname) and rename renames (key to to).
	Fields []ProcessorField `yaml:"fields"`
	// Keys are the top-level keys remove removes, keep keeps, nest moves
	// under key, and redact scans (default [log]).
	Keys []string `yaml:"keys"`
	// Key is the map lift moves to the top, the new map nest creates, and
	// the field parse parses (default log).
	Key string `yaml:"key"`
	// Prefix is put before the names of the keys lift moves.
	Prefix string `yaml:"prefix"`
	// Tag is rewrite_tag's new tag: a template of text, {tag} and
	// {field:PATH}; the event runs the processors again under it.
	Tag string `yaml:"tag"`
	// Per is what throttle counts separately: container or tag.
	Per string `yaml:"per"`
	// Rate is throttle's limit, in events per second.
	Rate int `yaml:"rate"`
	// Burst is how many events throttle lets through at once above rate.
	// Default rate.
	Burst int `yaml:"burst"`
	// Sample makes throttle keep 1 in this many of the events over the
	// rate instead of dropping them all.
	Sample int `yaml:"sample"`
	// Patterns are redact's built-in patterns: email, ipv4, credit_card,
	// aws_access_key, bearer_token, jwt. Default all.
	Patterns []string `yaml:"patterns"`
	// Custom are further redact patterns, RE2 regexes.
	Custom []string `yaml:"custom"`
	// Mask replaces what redact finds. Default [REDACTED].
	Mask string `yaml:"mask"`
	// Parser is the parse processor's (the same keys as an input's
	// parser: section); it parses Key (default log).
	Parser *Parser `yaml:"parser"`

	Line int `yaml:"-"`
}

// ProcessorField is one field of add (key with value or source) or rename
// (key to to). ${VAR} in value reads the environment, as everywhere.
type ProcessorField struct {
	// Key is the field add sets or rename renames.
	Key string `yaml:"key"`
	// Value is what add sets key to.
	Value string `yaml:"value"`
	// Source is where add takes the value from instead: hostname.
	Source string `yaml:"source"`
	// To is rename's new name for key.
	To string `yaml:"to"`
}

// Spec returns the package processors form of p.
func (p *Processor) Spec() processors.Spec {
	s := processors.Spec{
		ID: p.ID, Type: p.Type, Match: p.Match, Keys: p.Keys, Key: p.Key, Prefix: p.Prefix, Tag: p.Tag,
		Per: p.Per, Rate: p.Rate, Burst: p.Burst, Sample: p.Sample, Patterns: p.Patterns, Custom: p.Custom, Mask: p.Mask,
		Parser: p.Parser.ParseConfig(),
	}
	if p.When != nil {
		w := p.When.Spec()
		s.When = &w
	}
	for _, f := range p.Fields {
		s.Fields = append(s.Fields, processors.Field{Key: f.Key, Value: f.Value, Source: f.Source, To: f.To})
	}
	return s
}

// ProcessorSpecs returns the processors of c in package processors form.
func (c *Config) ProcessorSpecs() []processors.Spec {
	s := make([]processors.Spec, len(c.Processors))
	for i := range c.Processors {
		s[i] = c.Processors[i].Spec()
	}
	return s
}

// processorKeys are the keys every processor takes.
var processorKeys = []string{"id", "type", "match", "when"}

// checkProcessors validates the processors: list with the package's own
// compiler, placing each problem at the key (or list item) at fault.
func (v *checker) checkProcessors(ps []Processor) {
	ids := map[string]string{}
	for i := range ps {
		p := &ps[i]
		path := fmt.Sprintf("processors[%d]", i)
		id := processors.ID(&processors.Spec{ID: p.ID, Type: p.Type}, i)
		if p.ID != "" {
			v.id(path+".id", p.ID, ids)
		} else if prev, dup := ids[id]; dup {
			v.errorf(path, "default id %q is already used by %s; set id", id, v.where(prev))
		} else {
			ids[id] = path
		}
		uses, ok := processors.Types[p.Type]
		switch {
		case p.Type == "":
			v.errorf(path+".type", "missing (want %s)", processorTypes())
			continue
		case !ok:
			v.errorf(path+".type", "unknown processor type %s (want %s)", v.q(path+".type", p.Type), processorTypes())
			continue
		}
		set := map[string]bool{
			"fields": len(p.Fields) > 0, "keys": len(p.Keys) > 0, "key": p.Key != "", "prefix": p.Prefix != "",
			"tag": p.Tag != "", "per": p.Per != "", "rate": p.Rate != 0, "burst": p.Burst != 0, "sample": p.Sample != 0,
			"patterns": len(p.Patterns) > 0, "custom": len(p.Custom) > 0, "mask": p.Mask != "", "parser": p.Parser != nil,
		}
		for _, k := range []string{"fields", "keys", "key", "prefix", "tag", "per", "rate", "burst", "sample", "patterns", "custom", "mask", "parser"} {
			if !slices.Contains(uses, k) && set[k] {
				want := "no other keys"
				if len(uses) > 0 {
					want = strings.Join(uses, ", ")
				}
				v.errorf(path+"."+k, "not used by type %s (it takes %s besides %s)", p.Type, want, strings.Join(processorKeys, ", "))
			}
		}
		if p.Match != "" {
			if err := ValidPattern(p.Match); err != nil {
				v.invalid(path+".match", p.Match, "pattern", err)
			}
		}
		if p.When != nil {
			v.checkCondition(path+".when", p.When)
		}
		s := p.Spec()
		s.ID, s.Match, s.When = id, "", nil // reported above
		if _, err := processors.New([]processors.Spec{s}, processors.Options{Hostname: "validate"}); err != nil {
			// "processor 1 (id): fields[0].source: ..." → at that key.
			msg := err.Error()
			if _, rest, ok := strings.Cut(msg, "): "); ok {
				msg = rest
			}
			v.errorAt(path, msg)
		}
	}
}

// checkCondition validates a when: and places the problem at the part of
// the condition at fault (a bad regex: with its offset in the pattern).
func (v *checker) checkCondition(path string, c *Condition) {
	_, err := cond.Compile(c.Spec())
	var ce *cond.Error
	if !errors.As(err, &ce) {
		return
	}
	p := path
	if ce.Path != "" {
		p = path + "." + ce.Path
	}
	msg := ce.Err.Error()
	if ce.Offset >= 0 {
		msg = fmt.Sprintf("at offset %d: %s", ce.Offset, msg)
	}
	v.errorf(p, "%s", msg)
}

// errorAt reports msg under path, at the sub-path msg starts with
// ("keys[1]: ...") when the file has it.
func (v *checker) errorAt(path, msg string) {
	if sub, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(sub, " \"") {
		if _, known := v.lines[path+"."+sub]; known {
			v.errorf(path+"."+sub, "%s", rest)
			return
		}
		if i := strings.IndexByte(sub, '['); i > 0 {
			if _, known := v.lines[path+"."+sub[:i]]; known {
				v.errorf(path+"."+sub, "%s", rest)
				return
			}
		}
	}
	v.errorf(path, "%s", msg)
}

func processorTypes() string {
	names := make([]string, 0, len(processors.Types))
	for n := range processors.Types {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

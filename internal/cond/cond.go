// Package cond evaluates conditions on a msgpack record: the when: of
// routes and processors.
//
// A condition tests one field, named by a path (a top-level key such as
// "log", or a dotted path into nested maps such as
// "kubernetes.labels.app"), with equals, prefix, contains, regex or
// exists; not, any and all combine conditions.
//
// # Invariants
//
//   - Evaluation walks the msgpack bytes in place: it never decodes the
//     record whole and never allocates (the tests check it), also not for
//     malformed records, which simply do not match (exists is false).
//   - A path is resolved one map level at a time. At each level a key
//     equal to the rest of the path wins (so a key that holds dots, such
//     as the label "app.kubernetes.io/name", is found as written);
//     otherwise the first key followed by "." that prefixes the rest, and
//     whose value is a map, is descended into.
//   - equals, prefix, contains and regex test str and bin values as
//     bytes; equals also compares numbers and booleans by their text
//     (equals: "200" matches the integer 200). Any other type (nil, maps,
//     arrays) never matches them; exists is true for any value, nil
//     included.
//   - A regex whose pattern is a plain literal is evaluated with
//     bytes.Contains (anchored at the start: bytes.HasPrefix), not by the
//     regexp engine. Other patterns use package regexp (RE2: linear time
//     in the value's length, whatever the input); one whose matches all
//     start with a literal prefix ("type=access\b") is only run, anchored,
//     at the occurrences of that prefix (bytes.Index), so a value without
//     the prefix never enters the regexp engine.
//   - A compiled Cond is immutable and safe for concurrent use.
package cond

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Spec is a condition as configured. Exactly one of the field tests
// (Equals, Prefix, Contains, Regex, Exists; they need Field) or one of
// Not, Any and All is set.
type Spec struct {
	Field    string
	Equals   *string
	Prefix   *string
	Contains *string
	Regex    *string
	Exists   *bool
	Not      *Spec
	Any      []Spec
	All      []Spec
}

type op uint8

const (
	opEquals op = iota
	opPrefix
	opContains
	opRegex
	opExists
	opNot
	opAny
	opAll
)

// Cond is a compiled condition.
type Cond struct {
	op   op
	path []byte
	lit  []byte // equals, prefix, contains; a literal regex
	re   *regexp.Regexp
	// anch is re anchored at the start, for a regex whose matches all
	// begin with the literal prefix lit: each occurrence of lit is
	// tried with anch instead of running re over the whole value.
	anch   *regexp.Regexp
	exists bool // for opExists: the wanted answer
	kids   []*Cond
}

// Error is a bad condition. Path names the part of the Spec at fault
// relative to the condition ("any[1].regex"); Offset is, for a bad regex,
// the byte offset in the pattern of the expression at fault, or -1.
type Error struct {
	Path   string
	Offset int
	Err    error
}

func (e *Error) Error() string {
	switch {
	case e.Path != "" && e.Offset >= 0:
		return fmt.Sprintf("%s: at offset %d: %v", e.Path, e.Offset, e.Err)
	case e.Path != "":
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Compile checks s and returns the compiled condition. The error is an
// *Error.
func Compile(s Spec) (*Cond, error) { return compile(&s, "") }

func join(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

func compile(s *Spec, p string) (*Cond, error) {
	var set []string
	if s.Equals != nil {
		set = append(set, "equals")
	}
	if s.Prefix != nil {
		set = append(set, "prefix")
	}
	if s.Contains != nil {
		set = append(set, "contains")
	}
	if s.Regex != nil {
		set = append(set, "regex")
	}
	if s.Exists != nil {
		set = append(set, "exists")
	}
	if s.Not != nil {
		set = append(set, "not")
	}
	if s.Any != nil {
		set = append(set, "any")
	}
	if s.All != nil {
		set = append(set, "all")
	}
	switch {
	case len(set) == 0:
		return nil, &Error{Path: p, Offset: -1, Err: errors.New("needs one of equals, prefix, contains, regex, exists (with field), not, any or all")}
	case len(set) > 1:
		return nil, &Error{Path: p, Offset: -1, Err: fmt.Errorf("set only one of %s", strings.Join(set, ", "))}
	}
	c := &Cond{path: []byte(s.Field)}
	combinator := s.Not != nil || s.Any != nil || s.All != nil
	switch {
	case combinator && s.Field != "":
		return nil, &Error{Path: join(p, "field"), Offset: -1, Err: fmt.Errorf("not valid with %s (put it in the conditions inside)", set[0])}
	case !combinator && s.Field == "":
		return nil, &Error{Path: join(p, "field"), Offset: -1, Err: fmt.Errorf("required with %s", set[0])}
	case !combinator && badPath(s.Field):
		return nil, &Error{Path: join(p, "field"), Offset: -1, Err: fmt.Errorf("invalid path %q (keys separated by single dots)", s.Field)}
	}
	switch {
	case s.Equals != nil:
		c.op, c.lit = opEquals, []byte(*s.Equals)
	case s.Prefix != nil:
		c.op, c.lit = opPrefix, []byte(*s.Prefix)
	case s.Contains != nil:
		if *s.Contains == "" {
			return nil, &Error{Path: join(p, "contains"), Offset: -1, Err: errors.New("empty string (it would match every string)")}
		}
		c.op, c.lit = opContains, []byte(*s.Contains)
	case s.Regex != nil:
		re, lit, anchored, err := CompileRegex(*s.Regex)
		if err != nil {
			err.Path = join(p, "regex")
			return nil, err
		}
		switch {
		case lit != nil && anchored:
			c.op, c.lit = opPrefix, lit
		case lit != nil:
			c.op, c.lit = opContains, lit
		default:
			c.op, c.re = opRegex, re
			if p, _ := re.LiteralPrefix(); p != "" {
				c.lit, c.anch = []byte(p), regexp.MustCompile(`^(?:`+*s.Regex+`)`)
			}
		}
	case s.Exists != nil:
		c.op, c.exists = opExists, *s.Exists
	case s.Not != nil:
		k, err := compile(s.Not, join(p, "not"))
		if err != nil {
			return nil, err
		}
		c.op, c.kids = opNot, []*Cond{k}
	default:
		list, name := s.Any, "any"
		c.op = opAny
		if s.All != nil {
			list, name, c.op = s.All, "all", opAll
		}
		if len(list) == 0 {
			return nil, &Error{Path: join(p, name), Offset: -1, Err: errors.New("needs at least one condition")}
		}
		for i := range list {
			k, err := compile(&list[i], fmt.Sprintf("%s[%d]", join(p, name), i))
			if err != nil {
				return nil, err
			}
			c.kids = append(c.kids, k)
		}
	}
	return c, nil
}

func badPath(p string) bool {
	return strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..")
}

// CompileRegex compiles an RE2 pattern. When the pattern is a plain
// literal, lit holds it (anchored: only at the start of the value, for
// "^literal") and callers may search with package bytes instead. A bad
// pattern returns an *Error with the offset of the expression at fault.
func CompileRegex(pattern string) (re *regexp.Regexp, lit []byte, anchored bool, err *Error) {
	if pattern == "" {
		return nil, nil, false, &Error{Offset: -1, Err: errors.New("empty pattern (it would match everything)")}
	}
	re, e := regexp.Compile(pattern)
	if e != nil {
		off := -1
		var se *syntax.Error
		if errors.As(e, &se) && se.Expr != "" {
			off = strings.Index(pattern, se.Expr)
			if se.Code == syntax.ErrMissingParen {
				off = unclosedParen(pattern)
			}
		}
		return nil, nil, false, &Error{Offset: off, Err: e}
	}
	if l, ok := literal(pattern); ok {
		return re, l, false, nil
	}
	if rest, ok := strings.CutPrefix(pattern, "^"); ok {
		if l, ok := literal(rest); ok {
			return re, l, true, nil
		}
	}
	return re, nil, false, nil
}

// unclosedParen returns the offset of the last '(' left open in p
// (escapes and character classes skipped), or -1.
func unclosedParen(p string) int {
	var open []int
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '[':
			for i++; i < len(p) && p[i] != ']'; i++ {
				if p[i] == '\\' {
					i++
				}
			}
		case '(':
			open = append(open, i)
		case ')':
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		}
	}
	if len(open) == 0 {
		return -1
	}
	return open[len(open)-1]
}

// literal reports whether p, parsed as RE2, is nothing but literal text
// (case sensitive), and returns that text.
func literal(p string) ([]byte, bool) {
	if p == "" {
		return nil, false
	}
	r, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, false
	}
	r = r.Simplify()
	if r.Op != syntax.OpLiteral || r.Flags&syntax.FoldCase != 0 {
		return nil, false
	}
	return []byte(string(r.Rune)), true
}

// Match reports whether rec, a msgpack map, satisfies c. It does not
// allocate.
func (c *Cond) Match(rec []byte) bool {
	switch c.op {
	case opNot:
		return !c.kids[0].Match(rec)
	case opAny:
		for _, k := range c.kids {
			if k.Match(rec) {
				return true
			}
		}
		return false
	case opAll:
		for _, k := range c.kids {
			if !k.Match(rec) {
				return false
			}
		}
		return true
	}
	v, ok := Lookup(rec, c.path)
	if c.op == opExists {
		return ok == c.exists
	}
	if !ok {
		return false
	}
	s, _, isStr := wire.ReadStrBin(v)
	if !isStr {
		if c.op != opEquals {
			return false
		}
		var tmp [40]byte
		t, ok := record.AppendText(tmp[:0], v)
		return ok && bytes.Equal(t, c.lit)
	}
	switch c.op {
	case opEquals:
		return bytes.Equal(s, c.lit)
	case opPrefix:
		return bytes.HasPrefix(s, c.lit)
	case opContains:
		return bytes.Contains(s, c.lit)
	default:
		if c.anch == nil {
			return c.re.Match(s)
		}
		for len(s) >= len(c.lit) {
			i := bytes.Index(s, c.lit)
			if i < 0 {
				return false
			}
			if c.anch.Match(s[i:]) {
				return true
			}
			s = s[i+1:]
		}
		return false
	}
}

// Lookup returns the msgpack value at path (a top-level key or a dotted
// path into nested maps; see the package doc) as a view into record,
// without allocating. ok is false if there is none or record is
// malformed.
func Lookup(record, path []byte) (val []byte, ok bool) {
	m := record
	for depth := 0; depth < 64; depth++ {
		n, rest, ok := wire.ReadMapHeader(m)
		if !ok {
			return nil, false
		}
		var down []byte // value of the first key that prefixes path
		var downLen int
		for range n {
			k, after, isStr := wire.ReadStrBin(rest)
			if !isStr {
				if after, ok = wire.Skip(rest); !ok {
					return nil, false
				}
			}
			next, ok := wire.Skip(after)
			if !ok {
				return nil, false
			}
			if isStr {
				switch {
				case bytes.Equal(k, path):
					return after[:len(after)-len(next)], true
				case down == nil && len(path) > len(k) && path[len(k)] == '.' && bytes.HasPrefix(path, k) && isMap(after):
					down, downLen = after[:len(after)-len(next)], len(k)
				}
			}
			rest = next
		}
		if down == nil {
			return nil, false
		}
		m, path = down, path[downLen+1:]
	}
	return nil, false
}

func isMap(b []byte) bool {
	_, _, ok := wire.ReadMapHeader(b)
	return ok
}

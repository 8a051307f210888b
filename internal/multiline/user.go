package multiline

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// Rule is a user rule: regular expressions (RE2 syntax, as package
// regexp). A line matching Start opens a group; a line matching
// Continue extends the open group. With Continue empty, every line that
// does not match Start extends it (the "first line" mode: each event
// starts with a line matching Start, such as a timestamp). A line that
// neither continues a group nor starts one passes through alone.
type Rule struct {
	Name     string
	Start    string
	Continue string
}

// PatternError is a bad pattern of a user rule. Offset is the byte
// offset in the pattern of the expression at fault, or -1.
type PatternError struct {
	Field   string // "start" or "continue"
	Pattern string
	Offset  int
	Err     error
}

func (e *PatternError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("%s: at offset %d: %v", e.Field, e.Offset, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Field, e.Err)
}

func (e *PatternError) Unwrap() error { return e.Err }

// userRule is a compiled Rule; cont is nil in the first line mode.
type userRule struct{ first, cont *regexp.Regexp }

func compile(r Rule) (matcher, error) {
	if r.Start == "" {
		return nil, errors.New("start: empty pattern")
	}
	var u userRule
	var err error
	if u.first, err = compilePattern("start", r.Start); err != nil {
		return nil, err
	}
	if r.Continue != "" {
		if u.cont, err = compilePattern("continue", r.Continue); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func compilePattern(field, p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(p)
	if err == nil {
		return re, nil
	}
	off := -1
	var se *syntax.Error
	if errors.As(err, &se) && se.Expr != "" {
		off = strings.Index(p, se.Expr)
	}
	return nil, &PatternError{Field: field, Pattern: p, Offset: off, Err: err}
}

func (u userRule) start(b []byte) (uint32, bool) { return 0, u.first.Match(b) }

func (u userRule) next(_ uint32, b []byte) (uint32, verdict) {
	if u.cont != nil {
		if u.cont.Match(b) {
			return 0, vCont
		}
	} else if !u.first.Match(b) {
		return 0, vCont
	}
	return 0, vReject
}

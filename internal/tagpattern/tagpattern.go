// Package tagpattern compiles Fluentd-style tag patterns. It is a leaf:
// config validates route matches with it and pipeline routes with it, so
// both accept exactly the same expressions with the same messages.
//
// Syntax, per pattern:
//
//	app.*    "*" is one tag part: matches app.web, not app or app.a.b
//	app.**   "**" is zero or more parts: matches app, app.web, app.a.b
//	{a,b}.x  a or b, each of which may itself be a pattern
//
// An expression is one or more patterns separated by spaces; it matches a
// tag if any of them does.
package tagpattern

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Pattern is one compiled pattern. Its zero value matches nothing.
type Pattern struct{ re *regexp.Regexp }

// Match reports whether tag matches p.
func (p Pattern) Match(tag []byte) bool { return p.re != nil && p.re.Match(tag) }

// Parse compiles an expression: one or more space-separated patterns.
func Parse(s string) ([]Pattern, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("empty pattern")
	}
	ps := make([]Pattern, 0, len(fields))
	for _, f := range fields {
		expr, rest, err := translate(f, false)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", f, err)
		}
		if rest != "" {
			return nil, fmt.Errorf("pattern %q: unexpected %q", f, rest)
		}
		re, err := regexp.Compile(`\A` + expr + `\z`)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", f, err)
		}
		ps = append(ps, Pattern{re})
	}
	return ps, nil
}

// MatchAny reports whether tag matches any of ps.
func MatchAny(ps []Pattern, tag []byte) bool {
	for _, p := range ps {
		if p.Match(tag) {
			return true
		}
	}
	return false
}

// translate converts a pattern to a regexp. Inside braces (inAlt) it stops
// at the first top-level ',' or '}' and returns the unread rest.
func translate(p string, inAlt bool) (string, string, error) {
	var b strings.Builder
	for len(p) > 0 {
		switch {
		case strings.HasPrefix(p, "**."):
			b.WriteString(`(?:.*\.)?`)
			p = p[3:]
		case strings.HasPrefix(p, ".**"):
			b.WriteString(`(?:\..*)?`)
			p = p[3:]
		case strings.HasPrefix(p, "**"):
			b.WriteString(`.*`)
			p = p[2:]
		case p[0] == '*':
			b.WriteString(`[^.]*`)
			p = p[1:]
		case p[0] == '{':
			p = p[1:]
			var alts []string
			for {
				expr, rest, err := translate(p, true)
				if err != nil {
					return "", "", err
				}
				alts = append(alts, expr)
				if rest == "" {
					return "", "", errors.New("unclosed '{'")
				}
				c := rest[0]
				p = rest[1:]
				if c == '}' {
					break
				}
			}
			b.WriteString(`(?:` + strings.Join(alts, "|") + `)`)
		case inAlt && (p[0] == ',' || p[0] == '}'):
			return b.String(), p, nil
		case p[0] == '}':
			return "", "", errors.New("unmatched '}'")
		default:
			b.WriteString(regexp.QuoteMeta(p[:1]))
			p = p[1:]
		}
	}
	if inAlt {
		return "", "", errors.New("unclosed '{'")
	}
	return b.String(), "", nil
}

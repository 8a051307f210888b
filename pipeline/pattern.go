package pipeline

import (
	"fmt"
	"regexp"
	"strings"
)

// pattern is one compiled Fluentd-style tag pattern:
//
//   - one tag part:             app.*   matches app.web, not app or app.a.b
//     **      zero or more tag parts:   app.**  matches app, app.web, app.a.b
//     {a,b}   a or b (each may itself be a pattern)
//
// Several patterns separated by spaces match if any does. Matching is done
// once per distinct tag; Writers cache the result.
type pattern struct{ re *regexp.Regexp }

func parsePatterns(s string) ([]pattern, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty pattern")
	}
	var ps []pattern
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
		ps = append(ps, pattern{re})
	}
	return ps, nil
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
					return "", "", fmt.Errorf("unclosed '{'")
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
			return "", "", fmt.Errorf("unmatched '}'")
		default:
			b.WriteString(regexp.QuoteMeta(p[:1]))
			p = p[1:]
		}
	}
	if inAlt {
		return "", "", fmt.Errorf("unclosed '{'")
	}
	return b.String(), "", nil
}

func matchAny(ps []pattern, tag []byte) bool {
	for _, p := range ps {
		if p.re.Match(tag) {
			return true
		}
	}
	return false
}

// ValidatePattern reports whether s is a valid match expression.
func ValidatePattern(s string) error {
	_, err := parsePatterns(s)
	return err
}

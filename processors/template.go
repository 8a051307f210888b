package processors

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-agent/sluice/internal/cond"
	"github.com/sluice-agent/sluice/internal/record"
)

// template is a compiled rewrite_tag template: literal text, {tag} (the
// event's current tag) and {field:PATH} (a record field, dotted paths
// allowed, as text; "unknown" when it is missing or not a scalar).
type template struct{ parts []tmplPart }

type tmplPart struct {
	lit   []byte
	field []byte // {field:PATH}
	tag   bool
}

// ParseTemplate checks a rewrite_tag template (for config validation).
func ParseTemplate(s string) error {
	_, err := parseTemplate(s)
	return err
}

func parseTemplate(s string) (*template, error) {
	if s == "" {
		return nil, errors.New("required (a template such as \"audit.{tag}\")")
	}
	t := &template{}
	for len(s) > 0 {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: []byte(s)})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: []byte(s[:i])})
		}
		if s[i] == '}' {
			return nil, fmt.Errorf("unmatched \"}\" at offset %d", i)
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed \"{\" at offset %d", i)
		}
		ph := s[i+1 : i+j]
		switch {
		case ph == "tag":
			t.parts = append(t.parts, tmplPart{tag: true})
		case strings.HasPrefix(ph, "field:") && len(ph) > len("field:"):
			t.parts = append(t.parts, tmplPart{field: []byte(ph[len("field:"):])})
		default:
			return nil, fmt.Errorf("unknown placeholder %q (want {tag} or {field:PATH})", "{"+ph+"}")
		}
		s = s[i+j+1:]
	}
	return t, nil
}

func (t *template) render(dst, tag, rec []byte) []byte {
	for _, p := range t.parts {
		switch {
		case p.tag:
			dst = append(dst, tag...)
		case p.field != nil:
			n := len(dst)
			if v, ok := cond.Lookup(rec, p.field); ok {
				dst, _ = record.AppendText(dst, v)
			}
			if len(dst) == n {
				dst = append(dst, record.Unknown...)
			}
		default:
			dst = append(dst, p.lit...)
		}
	}
	return dst
}

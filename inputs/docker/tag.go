package docker

import (
	"fmt"
	"strings"
)

// unknownValue renders a placeholder that has no value.
const unknownValue = "unknown"

type tagKind uint8

const (
	tagLiteral tagKind = iota
	tagName
	tagID
	tagShortID
	tagStream
	tagLabel
	tagField
)

type tagPart struct {
	kind tagKind
	text []byte // literal text, or the KEY of {label:KEY} / {field:KEY}
}

// tagTemplate is a compiled DockerInput.Tag.
type tagTemplate struct {
	parts     []tagPart
	hasField  bool // depends on the payload: never cached
	hasStream bool // depends on the stream: cached per stream
}

// compileTag parses a template such as "docker.{name}.{label:app}".
func compileTag(s string) (tagTemplate, error) {
	var t tagTemplate
	if s == "" {
		return t, fmt.Errorf("empty tag template")
	}
	for len(s) > 0 {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			t.parts = append(t.parts, tagPart{kind: tagLiteral, text: []byte(s)})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, tagPart{kind: tagLiteral, text: []byte(s[:open])})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return t, fmt.Errorf("tag %q: unclosed '{'", s)
		}
		ph := s[open+1 : open+end]
		var p tagPart
		switch {
		case ph == "name":
			p.kind = tagName
		case ph == "id":
			p.kind = tagID
		case ph == "short_id":
			p.kind = tagShortID
		case ph == "stream":
			p.kind = tagStream
			t.hasStream = true
		case strings.HasPrefix(ph, "label:") && len(ph) > len("label:"):
			p.kind, p.text = tagLabel, []byte(ph[len("label:"):])
		case strings.HasPrefix(ph, "field:") && len(ph) > len("field:"):
			p.kind, p.text = tagField, []byte(ph[len("field:"):])
			t.hasField = true
		default:
			return t, fmt.Errorf("tag %q: unknown placeholder {%s}", s, ph)
		}
		t.parts = append(t.parts, p)
		s = s[open+end+1:]
	}
	return t, nil
}

// render appends the tag for one event. fields may be nil when the template
// has no {field:KEY}.
func (t *tagTemplate) render(dst []byte, c *container, stream []byte, fields *payload) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		n := len(dst)
		switch p.kind {
		case tagLiteral:
			dst = append(dst, p.text...)
			continue
		case tagName:
			dst = append(dst, c.name...)
		case tagID:
			dst = append(dst, c.id...)
		case tagShortID:
			dst = append(dst, c.shortID...)
		case tagStream:
			dst = append(dst, stream...)
		case tagLabel:
			dst = append(dst, c.label(p.text)...)
		case tagField:
			if fields != nil {
				dst, _ = fields.appendField(dst, p.text)
			}
		}
		if len(dst) == n {
			dst = append(dst, unknownValue...)
		}
	}
	return dst
}

package record

import (
	"fmt"
	"strings"
)

// Unknown is what a placeholder without a value renders as.
const Unknown = "unknown"

// Kind is what one part of a tag template renders.
type Kind uint8

// Template part kinds.
const (
	Literal Kind = iota // literal text
	Tag                 // {tag}: the incoming event's tag (AllowTag only)
	Name                // {name}: container name without the leading "/"
	ID                  // {id}: full container id
	ShortID             // {short_id}: first 12 characters of the id
	Stream              // {stream}: stdout or stderr
	Label               // {label:KEY}: a container label
	Field               // {field:KEY}: a top-level field of the record or payload
	// The Kubernetes placeholders (AllowKube only, which drops {name},
	// {id} and {short_id}): the parts of a CRI log path.
	Namespace // {namespace}: the pod's namespace
	Pod       // {pod}: the pod's name
	PodID     // {pod_id}: the pod's uid
	Container // {container}: the container's name in the pod
	// Annotation is {annotation:KEY}: a pod annotation (AllowKube only;
	// {label:KEY} is then a pod label).
	Annotation
)

// CompileFlags change what Compile accepts.
type CompileFlags uint8

const (
	// AllowTag permits {tag}, for an input whose events arrive with a tag.
	AllowTag CompileFlags = 1 << iota
	// AllowKube switches to the placeholders of a Kubernetes container
	// log: {namespace}, {pod}, {pod_id} and {container} instead of the
	// Docker container's {name}, {id} and {short_id} (for the cri input).
	AllowKube
)

// Values supplies placeholder values to Template.Render.
type Values interface {
	// AppendValue appends the value of a placeholder of kind k to dst;
	// key is the KEY of {label:KEY}, {annotation:KEY} and {field:KEY},
	// nil otherwise.
	// Appending nothing renders Unknown.
	AppendValue(dst []byte, k Kind, key []byte) []byte
}

// Template is a compiled tag template. It is immutable, so one Template
// may be rendered by several goroutines at once.
type Template struct {
	parts  []part
	fields [][]byte // the distinct KEYs of {field:KEY}, in order
	uses   uint16   // bit 1<<Kind for each kind present
}

type part struct {
	kind Kind
	text []byte // literal text, or the KEY of {label:KEY} / {annotation:KEY} / {field:KEY}
	// alts are the further alternatives of {a|b|c}: rendered in order
	// while the previous ones give no value.
	alts []part
}

// Compile parses a template such as "docker.{name}.{label:app}". Unknown
// placeholders, {tag} without AllowTag, an unclosed '{', an unmatched '}'
// and an empty template are errors.
func Compile(s string, flags CompileFlags) (*Template, error) {
	if s == "" {
		return nil, fmt.Errorf("empty tag template")
	}
	t := &Template{}
	for rest := s; rest != ""; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, part{kind: Literal, text: []byte(rest)})
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("tag template %q: unmatched '}'", s)
		}
		if i > 0 {
			t.parts = append(t.parts, part{kind: Literal, text: []byte(rest[:i])})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("tag template %q: unclosed '{'", s)
		}
		names := strings.Split(rest[i+1:i+j], "|")
		rest = rest[i+j+1:]
		var p part
		for k, name := range names {
			a, err := t.placeholder(s, name, flags)
			if err != nil {
				return nil, err
			}
			if k == 0 {
				p = a
			} else {
				p.alts = append(p.alts, a)
			}
		}
		t.parts = append(t.parts, p)
	}
	return t, nil
}

// placeholder compiles one placeholder name (one alternative) of s.
func (t *Template) placeholder(s, name string, flags CompileFlags) (part, error) {
	p := part{kind: placeholderKind(name, flags)}
	switch {
	case p.kind == Tag && flags&AllowTag == 0:
		return p, fmt.Errorf("tag template %q: {tag} is not available here (want %s)", s, want(flags))
	case p.kind != Literal:
	case strings.HasPrefix(name, "label:") && len(name) > len("label:"):
		p = part{kind: Label, text: []byte(name[len("label:"):])}
	case flags&AllowKube != 0 && strings.HasPrefix(name, "annotation:") && len(name) > len("annotation:"):
		p = part{kind: Annotation, text: []byte(name[len("annotation:"):])}
	case strings.HasPrefix(name, "field:") && len(name) > len("field:"):
		p = part{kind: Field, text: []byte(name[len("field:"):])}
		if !wanted(t.fields, p.text) {
			t.fields = append(t.fields, p.text)
		}
	default:
		return p, fmt.Errorf("tag template %q: unknown placeholder {%s} (want %s)", s, name, want(flags))
	}
	t.uses |= 1 << p.kind
	return p, nil
}

var (
	placeholders     = map[string]Kind{"tag": Tag, "name": Name, "id": ID, "short_id": ShortID, "stream": Stream}
	kubePlaceholders = map[string]Kind{"tag": Tag, "namespace": Namespace, "pod": Pod, "pod_id": PodID, "container": Container, "stream": Stream}
)

// placeholderKind is the kind of a fixed placeholder name in the
// vocabulary flags select, or Literal.
func placeholderKind(name string, flags CompileFlags) Kind {
	if flags&AllowKube != 0 {
		return kubePlaceholders[name]
	}
	return placeholders[name]
}

func want(flags CompileFlags) string {
	w := "{name}, {id}, {short_id}, {stream}, {label:KEY} or {field:KEY}"
	if flags&AllowKube != 0 {
		w = "{namespace}, {pod}, {pod_id}, {container}, {stream}, {label:KEY}, {annotation:KEY} or {field:KEY}"
	}
	if flags&AllowTag != 0 {
		w = "{tag}, " + w
	}
	return w
}

// Uses reports whether the template has a placeholder of kind k.
func (t *Template) Uses(k Kind) bool { return t.uses&(1<<k) != 0 }

// FieldKeys returns the distinct KEYs of the template's {field:KEY}, the
// keys to pass to Fields.Find. The caller must not modify them.
func (t *Template) FieldKeys() [][]byte { return t.fields }

// Render appends the tag to dst, asking v for each placeholder's value (v
// may be nil: every placeholder is then Unknown).
func (t *Template) Render(dst []byte, v Values) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		if p.kind == Literal {
			dst = append(dst, p.text...)
			continue
		}
		n := len(dst)
		if v != nil {
			dst = v.AppendValue(dst, p.kind, p.text)
			for k := 0; len(dst) == n && k < len(p.alts); k++ {
				dst = v.AppendValue(dst, p.alts[k].kind, p.alts[k].text)
			}
		}
		if len(dst) == n {
			dst = append(dst, Unknown...)
		}
	}
	return dst
}

package forward

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tinylib/msgp/msgp"
)

// unknown is what a template placeholder without a value renders as, as in
// the docker input.
const unknown = "unknown"

// Placeholder kinds of a tag template.
const (
	segLiteral = iota
	segTag     // {tag}: the client's tag
	segName    // {name}: container name without the leading slash
	segID      // {id}: full container id
	segShortID // {short_id}: first 12 characters of the id
	segStream  // {stream}: stdout or stderr
	segLabel   // {label:K}: a container label (Docker driver extra)
	segField   // {field:K}: a top-level str field of the stored record
)

type segment struct {
	kind int
	text []byte // literal text, or the key of {label:K} / {field:K}
}

// tagTemplate is a compiled ForwardInput.Tag.
type tagTemplate struct {
	segs     []segment
	hasField bool // has a {field:KEY}
}

// parseTagTemplate compiles s. Unknown placeholders and unbalanced braces
// are errors, so a typo is caught at start and not at the first event.
func parseTagTemplate(s string) (*tagTemplate, error) {
	t := &tagTemplate{}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.segs = append(t.segs, segment{kind: segLiteral, text: []byte(rest)})
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("tag template %q: unmatched '}'", s)
		}
		if i > 0 {
			t.segs = append(t.segs, segment{kind: segLiteral, text: []byte(rest[:i])})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("tag template %q: unclosed '{'", s)
		}
		name := rest[i+1 : i+j]
		rest = rest[i+j+1:]
		var seg segment
		switch {
		case name == "tag":
			seg.kind = segTag
		case name == "name":
			seg.kind = segName
		case name == "id":
			seg.kind = segID
		case name == "short_id":
			seg.kind = segShortID
		case name == "stream":
			seg.kind = segStream
		case strings.HasPrefix(name, "label:") && len(name) > len("label:"):
			seg = segment{kind: segLabel, text: []byte(name[len("label:"):])}
		case strings.HasPrefix(name, "field:") && len(name) > len("field:"):
			seg = segment{kind: segField, text: []byte(name[len("field:"):])}
			t.hasField = true
		default:
			return nil, fmt.Errorf("tag template %q: unknown placeholder {%s} (want tag, name, id, short_id, stream, label:KEY or field:KEY)", s, name)
		}
		t.segs = append(t.segs, seg)
	}
	if len(t.segs) == 0 {
		return nil, fmt.Errorf("tag template %q: empty", s)
	}
	return t, nil
}

// render appends the tag of one event to dst. clientTag is the request's
// tag; record is the record as it will be stored (normalized); payload, if
// not nil, is a msgpack map of the JSON log payload's fields, looked up by
// {field:KEY} when the record has no such field (parse_json off).
func (t *tagTemplate) render(dst, clientTag, record, payload []byte) []byte {
	for i := range t.segs {
		s := &t.segs[i]
		var v []byte
		ok := false
		switch s.kind {
		case segLiteral:
			dst = append(dst, s.text...)
			continue
		case segTag:
			v, ok = clientTag, len(clientTag) > 0
		case segName:
			v, ok = lookupStr(record, keyContainerName)
			if ok && len(v) > 0 && v[0] == '/' {
				v = v[1:]
			}
		case segID:
			v, ok = lookupStr(record, keyContainerID)
		case segShortID:
			v, ok = lookupStr(record, keyContainerID)
			if len(v) > 12 {
				v = v[:12]
			}
		case segStream:
			if v, ok = lookupStr(record, keyStream); !ok {
				v, ok = lookupStr(record, keySource)
			}
		case segLabel:
			if labels, found := lookupRaw(record, keyLabels); found {
				v, ok = lookupStr(labels, s.text)
			}
		case segField:
			raw, found := lookupRaw(record, s.text)
			if !found && payload != nil {
				raw, found = lookupRaw(payload, s.text)
			}
			if found {
				n := len(dst)
				if dst, ok = appendScalar(dst, raw); ok && len(dst) > n {
					continue
				}
				dst = dst[:n]
			}
		}
		if !ok || len(v) == 0 {
			dst = append(dst, unknown...)
			continue
		}
		dst = append(dst, v...)
	}
	return dst
}

// appendScalar appends a str, integer, float or bool msgpack value as text,
// as the docker input renders {field:KEY}. ok is false for other types.
func appendScalar(dst, v []byte) ([]byte, bool) {
	switch msgp.NextType(v) {
	case msgp.StrType, msgp.BinType:
		s, _, ok := readStrBin(v)
		return append(dst, s...), ok
	case msgp.IntType:
		n, _, err := msgp.ReadInt64Bytes(v)
		return strconv.AppendInt(dst, n, 10), err == nil
	case msgp.UintType:
		n, _, err := msgp.ReadUint64Bytes(v)
		return strconv.AppendUint(dst, n, 10), err == nil
	case msgp.Float64Type, msgp.Float32Type:
		f, _, err := msgp.ReadFloat64Bytes(v)
		return strconv.AppendFloat(dst, f, 'g', -1, 64), err == nil
	case msgp.BoolType:
		b, _, err := msgp.ReadBoolBytes(v)
		return strconv.AppendBool(dst, b), err == nil
	}
	return dst, false
}

package docker

import (
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
)

// reservedKeys are the record keys the input sets itself; a payload field
// with such a name is not merged (its data is still in "log") and is not
// found by {field:KEY}.
var reservedKeys = record.NewKeys("log", "stream", "container_id", "container_name", "labels", "ecs")

// tagValues are the values of one event's tag placeholders.
type tagValues struct {
	c      *container
	stream []byte
	fields parse.FieldSet // nil: the payload gave no fields (or they are unused)
}

// AppendValue implements record.Values.
func (v *tagValues) AppendValue(dst []byte, k record.Kind, key []byte) []byte {
	switch k {
	case record.Name:
		return append(dst, v.c.name...)
	case record.ID:
		return append(dst, v.c.id...)
	case record.ShortID:
		return append(dst, v.c.shortID...)
	case record.Stream:
		return append(dst, v.stream...)
	case record.Label:
		return append(dst, v.c.label(key)...)
	case record.Field:
		if v.fields != nil {
			if val, ok := v.fields.Value(key); ok {
				dst, _ = record.AppendText(dst, val)
			}
		}
	}
	return dst
}

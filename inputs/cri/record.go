package cri

import (
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

var (
	keyLog    = msgp.AppendString(nil, "log")
	keyStream = msgp.AppendString(nil, "stream")
)

// reservedKeys are the record keys the input sets itself; a payload field
// with such a name is not merged (its data is still in "log") and is not
// found by {field:KEY}.
var reservedKeys = record.NewKeys("log", "stream", "kubernetes")

// container is one container directory of a pod, with the metadata its
// path gives: the tail.Source of its log files. It is used on the tail's
// reader goroutine only.
type container struct {
	in    *Input
	meta  podPath
	fixed []byte // msgpack "kubernetes" key and map

	// tagCache holds the rendered tag per stream (stdout, stderr) when the
	// template does not depend on the payload.
	tagCache [2][]byte
	tagOK    [2]bool
}

func newContainer(in *Input, key string) *container {
	c := &container{in: in, meta: parseKey(key)}
	b := msgp.AppendString(nil, "kubernetes")
	b = msgp.AppendMapHeader(b, 4)
	for _, kv := range [...][2]string{
		{"namespace_name", c.meta.namespace},
		{"pod_name", c.meta.pod},
		{"pod_id", c.meta.uid},
		{"container_name", c.meta.container},
	} {
		b = msgp.AppendString(b, kv[0])
		b = msgp.AppendString(b, kv[1])
	}
	c.fixed = b
	return c
}

// Refresh implements tail.Source: the metadata is the path's, which does
// not change.
func (*container) Refresh() error { return nil }

// Event implements tail.Source: it builds the record (see the package doc
// for its layout) and the tag of one line, in the input's scratch buffers.
func (c *container) Event(l *tail.Line) *pipeline.Event {
	in := c.in
	msg, stream := l.Content, l.Stream
	// The payload's fields: all of them with parse_json, else only those
	// the tag's {field:KEY} read (the others are checked, not converted).
	var fields *record.Fields
	switch {
	case in.parseJSON:
		if in.fields.Parse(msg, reservedKeys) {
			fields = &in.fields
		}
	case in.tpl.Uses(record.Field):
		if in.fields.Find(msg, in.tpl.FieldKeys(), reservedKeys) {
			fields = &in.fields
		}
	}
	nFields := 0
	if in.parseJSON && fields != nil {
		nFields = fields.Len()
	}
	rec := msgp.AppendMapHeader(in.rec[:0], uint32(3+nFields))
	rec = append(rec, keyLog...)
	rec = msgp.AppendStringFromBytes(rec, msg)
	rec = append(rec, keyStream...)
	rec = msgp.AppendStringFromBytes(rec, stream)
	rec = append(rec, c.fixed...)
	if nFields > 0 {
		rec = append(rec, fields.Pairs()...)
	}
	in.rec = rec
	in.ev = pipeline.Event{Tag: in.tagFor(c, stream, fields), Time: l.Time, Record: rec}
	return &in.ev
}

// tagFor renders the event tag, from the per-container cache when the
// template does not depend on the payload.
func (in *Input) tagFor(c *container, stream []byte, fields *record.Fields) []byte {
	si := -1
	if !in.tpl.Uses(record.Field) {
		switch {
		case !in.tpl.Uses(record.Stream) || string(stream) == "stdout":
			si = 0
		case string(stream) == "stderr":
			si = 1
		}
	}
	if si < 0 {
		in.tv = tagValues{c: c, stream: stream, fields: fields}
		in.tagBuf = in.tpl.Render(in.tagBuf[:0], &in.tv)
		return in.tagBuf
	}
	if !c.tagOK[si] {
		in.tv = tagValues{c: c, stream: stream}
		c.tagCache[si] = in.tpl.Render(c.tagCache[si][:0], &in.tv)
		c.tagOK[si] = true
	}
	return c.tagCache[si]
}

// tagValues are the values of one event's tag placeholders.
type tagValues struct {
	c      *container
	stream []byte
	fields *record.Fields // nil: the payload is not a JSON object (or unused)
}

// AppendValue implements record.Values.
func (v *tagValues) AppendValue(dst []byte, k record.Kind, key []byte) []byte {
	switch k {
	case record.Namespace:
		return append(dst, v.c.meta.namespace...)
	case record.Pod:
		return append(dst, v.c.meta.pod...)
	case record.PodID:
		return append(dst, v.c.meta.uid...)
	case record.Container:
		return append(dst, v.c.meta.container...)
	case record.Stream:
		return append(dst, v.stream...)
	case record.Field:
		if v.fields != nil {
			if val, ok := v.fields.Value(key); ok {
				dst, _ = record.AppendText(dst, val)
			}
		}
	}
	return dst
}

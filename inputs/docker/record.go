package docker

import (
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

var (
	keyLog    = msgp.AppendString(nil, "log")
	keyStream = msgp.AppendString(nil, "stream")
	// keyParseError marks a payload the configured parser rejected.
	keyParseError = msgp.AppendString(nil, parse.KeyParseError)
)

// Event implements tail.Source: it builds the record (see the package doc
// for its layout) and the tag of one line, in the input's scratch buffers.
func (c *container) Event(l *tail.Line) *pipeline.Event {
	in := c.in
	msg, stream := l.Content, l.Stream
	// The payload's fields: all of them with a parser (or parse_json),
	// else only those the tag's {field:KEY} read (the others are checked,
	// not converted).
	var keys [][]byte
	if in.tpl.Uses(record.Field) {
		keys = in.tpl.FieldKeys()
	}
	res := in.payload.Parse(msg, keys, reservedKeys)
	fields := res.Fields
	nFields, extra := 0, 0
	if in.payload.Stores() && fields != nil {
		nFields = fields.Len()
	}
	if res.Failed {
		extra = 1
	}
	rec := msgp.AppendMapHeader(in.rec[:0], uint32(2+c.nFixed+nFields+extra))
	rec = append(rec, keyLog...)
	rec = msgp.AppendStringFromBytes(rec, msg)
	rec = append(rec, keyStream...)
	rec = msgp.AppendStringFromBytes(rec, stream)
	rec = append(rec, c.fixed...)
	if nFields > 0 {
		rec = append(rec, fields.Pairs()...)
	}
	if res.Failed {
		rec = append(rec, keyParseError...)
		rec = msgp.AppendString(rec, in.payload.Kind())
	}
	t := l.Time
	if res.HasTime {
		t = res.Time
	}
	in.rec = rec
	in.ev = pipeline.Event{Tag: in.tagFor(c, stream, fields), Time: t, Record: rec}
	return &in.ev
}

// tagFor renders the event tag, from the per-container cache when the
// template does not depend on the payload.
func (in *Input) tagFor(c *container, stream []byte, fields parse.FieldSet) []byte {
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

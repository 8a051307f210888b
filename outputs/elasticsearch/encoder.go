package elasticsearch

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// idLen is the length of a stable _id: base64url of 15 bytes, the length
// of the ids Elasticsearch generates itself.
const (
	idBytes = 15
	idLen   = 20
)

// template is a compiled index or data stream template.
type template struct {
	parts     []tpart
	usesTag   bool
	usesTime  bool
	usesField bool
}

type tpart struct {
	kind config.IndexPartKind
	text []byte   // literal, or the field's full KEY
	path [][]byte // the KEY split at '.', for nested lookups
}

func compileTemplate(s string) (*template, error) {
	parts, err := config.ParseIndexTemplate(s)
	if err != nil {
		return nil, err
	}
	t := &template{}
	for _, p := range parts {
		tp := tpart{kind: p.Kind, text: []byte(p.Text)}
		switch p.Kind {
		case config.IndexLiteral:
		case config.IndexTag:
			t.usesTag = true
		case config.IndexField:
			t.usesField = true
			tp.path = bytes.Split(tp.text, []byte("."))
		default:
			t.usesTime = true
		}
		t.parts = append(t.parts, tp)
	}
	return t, nil
}

// sanitize maps each byte of a placeholder value: ASCII uppercase to
// lowercase, the bytes an index name cannot hold to '_'.
var sanitize = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c - 'A' + 'a')
	}
	for _, c := range []byte(config.IndexForbidden) {
		t[c] = '_'
	}
	return t
}()

func appendSanitized(dst, v []byte) []byte {
	for _, c := range v {
		dst = append(dst, sanitize[c])
	}
	return dst
}

// civil is the UTC date and hour of one hour bucket.
type civil struct {
	bucket     int64 // unix seconds / 3600
	y, m, d, h int
	valid      bool
}

func (c *civil) set(unixNano int64) {
	sec := unixNano / 1e9
	if unixNano%1e9 < 0 {
		sec--
	}
	b := sec / 3600
	if sec%3600 < 0 {
		b--
	}
	if c.valid && c.bucket == b {
		return
	}
	t := time.Unix(b*3600, 0).UTC()
	y, m, d := t.Date()
	*c = civil{bucket: b, y: y, m: int(m), d: d, h: t.Hour(), valid: true}
}

func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10%10), byte('0'+v%10)) }

// render appends the target name for one event, unescaped.
func (t *template) render(dst []byte, c *civil, ev *delivery.Event) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case config.IndexLiteral:
			dst = append(dst, p.text...)
		case config.IndexYear:
			dst = strconv.AppendInt(dst, int64(c.y), 10)
		case config.IndexMonth:
			dst = append2(dst, c.m)
		case config.IndexDay:
			dst = append2(dst, c.d)
		case config.IndexHour:
			dst = append2(dst, c.h)
		case config.IndexTag:
			n := len(dst)
			dst = appendSanitized(dst, ev.Tag)
			if len(dst) == n {
				dst = append(dst, record.Unknown...)
			}
		case config.IndexField:
			n := len(dst)
			dst = appendField(dst, ev.Record, p)
			if len(dst) == n {
				dst = append(dst, record.Unknown...)
			}
		}
	}
	return dst
}

// appendField appends the sanitized value of the record field p names: a
// top-level key equal to the whole KEY first, else the dotted path into
// nested maps. Strings are taken as they are, integers, floats and
// booleans in their JSON spelling; other values append nothing.
func appendField(dst, rec []byte, p *tpart) []byte {
	v, ok := lookup(rec, p.text)
	if !ok && len(p.path) > 1 {
		v, ok = rec, true
		for _, k := range p.path {
			if v, ok = lookup(v, k); !ok {
				break
			}
		}
	}
	if !ok || len(v) == 0 {
		return dst
	}
	switch msgp.NextType(v) {
	case msgp.StrType, msgp.BinType:
		if s, _, ok := wire.ReadStrBin(v); ok {
			return appendSanitized(dst, s)
		}
	case msgp.IntType:
		if i, _, err := msgp.ReadInt64Bytes(v); err == nil {
			return strconv.AppendInt(dst, i, 10)
		}
	case msgp.UintType:
		if u, _, err := msgp.ReadUint64Bytes(v); err == nil {
			return strconv.AppendUint(dst, u, 10)
		}
	case msgp.BoolType:
		if b, _, err := msgp.ReadBoolBytes(v); err == nil {
			return strconv.AppendBool(dst, b)
		}
	case msgp.Float64Type, msgp.Float32Type:
		if f, _, err := msgp.ReadFloat64Bytes(v); err == nil {
			return strconv.AppendFloat(dst, f, 'f', -1, 64)
		}
	}
	return dst
}

// lookup returns the value (a view starting at it) of key in the msgpack
// map m; keys are compared as str or bin only.
func lookup(m, key []byte) ([]byte, bool) {
	n, rest, ok := wire.ReadMapHeader(m)
	if !ok {
		return nil, false
	}
	for range n {
		if k, after, isStr := wire.ReadStrBin(rest); isStr {
			if bytes.Equal(k, key) {
				return after, true
			}
			rest = after
		} else if rest, ok = wire.Skip(rest); !ok {
			return nil, false
		}
		if rest, ok = wire.Skip(rest); !ok {
			return nil, false
		}
	}
	return nil, false
}

// settings are what every encoder of an output shares; immutable.
type settings struct {
	id        string
	tmpl      *template
	action    []byte // `{"create":{"_index":` or `{"index":{"_index":`
	stableIDs bool
	doc       *jsonl.Encoder
	maxBytes  int // max_bulk_bytes
	maxEvents int
	gzipLevel int // 0: no compression
	limit     *bulkLimit
}

// encoder is one bulk request being built: NDJSON, an action line and a
// document per event. Add runs on the engine's loop; Send's helpers
// (compress, response buffers) on a worker, one at a time.
type encoder struct {
	s    *settings
	body []byte
	offs []int // start of each event's action line in body
	n    int

	// target cache: the rendered, JSON-quoted action prefix for the
	// last hour bucket and tag (templates without {field:KEY}).
	cal      civil
	prefix   []byte
	preTag   []byte
	preValid bool
	scratch  []byte

	idIn   []byte
	idSalt []byte

	// Send's buffers.
	zw    *gzip.Writer
	zbuf  bytes.Buffer
	rbuf  bytes.Buffer
	resp  bulkResponse
	tried []bool
}

func newEncoder(s *settings) *encoder {
	e := &encoder{s: s}
	if s.stableIDs {
		e.idSalt = append([]byte(s.id), 0)
	}
	return e
}

func (e *encoder) Len() int   { return e.n }
func (e *encoder) Bytes() int { return len(e.body) }

func (e *encoder) Reset() {
	e.body, e.offs, e.n = e.body[:0], e.offs[:0], 0
}

// Full reports that the batch reached max_bulk_events or is within a
// small margin of the byte limit.
func (e *encoder) Full() bool {
	limit := e.s.limit.get()
	return e.n >= e.s.maxEvents || len(e.body) >= limit-min(512, limit/8)
}

// Add appends the event's action line and document. The byte limit is
// the learned one (see bulkLimit) for a batch that has events already,
// max_bulk_bytes for the first event: an event alone larger than that is
// rejected (too_large).
func (e *encoder) Add(ev *delivery.Event) error {
	start := len(e.body)
	body, err := e.appendEvent(e.body, ev)
	if err != nil {
		e.body = body[:start]
		return delivery.Reject("undecodable", "%v", err)
	}
	switch {
	case e.n > 0 && len(body) > e.s.limit.get():
		e.body = body[:start]
		return delivery.ErrFull
	case e.n == 0 && len(body) > e.s.maxBytes:
		e.body = body[:start]
		return delivery.Reject("too_large", "the event is %d bytes as a bulk item, more than max_bulk_bytes (%d)", len(body)-start, e.s.maxBytes)
	}
	e.body = body
	e.offs = append(e.offs, start)
	e.n++
	return nil
}

func (e *encoder) appendEvent(dst []byte, ev *delivery.Event) ([]byte, error) {
	dst = e.appendPrefix(dst, ev)
	if e.s.stableIDs {
		dst = append(dst, `,"_id":"`...)
		dst = e.appendID(dst, ev)
		dst = append(dst, '"')
	}
	dst = append(dst, "}}\n"...)
	dst, err := e.s.doc.AppendRecord(dst, ev.Tag, ev.Time, ev.Record)
	if err != nil {
		return dst, err
	}
	return append(dst, '\n'), nil
}

// appendPrefix appends `{"create":{"_index":"<target>"`.
func (e *encoder) appendPrefix(dst []byte, ev *delivery.Event) []byte {
	t := e.s.tmpl
	if t.usesTime {
		b := e.cal.bucket
		e.cal.set(ev.Time)
		if b != e.cal.bucket {
			e.preValid = false
		}
	}
	cache := !t.usesField
	if cache && e.preValid && (!t.usesTag || bytes.Equal(e.preTag, ev.Tag)) {
		return append(dst, e.prefix...)
	}
	e.scratch = t.render(e.scratch[:0], &e.cal, ev)
	if !cache {
		dst = append(dst, e.s.action...)
		return jsonl.AppendString(dst, e.scratch)
	}
	e.prefix = jsonl.AppendString(append(e.prefix[:0], e.s.action...), e.scratch)
	e.preTag = append(e.preTag[:0], ev.Tag...)
	e.preValid = true
	return append(dst, e.prefix...)
}

// appendID appends the event's stable _id: base64url (no padding) of the
// first 15 bytes of SHA-256 over the output id, a zero byte, the tag, a
// zero byte, the chunk's queue position (segment, offset), the event's
// index in the chunk, its time, and the length and CRC-32C of its stored
// entry (time and record bytes).
func (e *encoder) appendID(dst []byte, ev *delivery.Event) []byte {
	in := append(append(e.idIn[:0], e.idSalt...), ev.Tag...)
	in = append(in, 0)
	in = binary.BigEndian.AppendUint64(in, ev.Chunk.Segment)
	in = binary.BigEndian.AppendUint64(in, uint64(ev.Chunk.Offset))
	in = binary.BigEndian.AppendUint32(in, uint32(ev.Index))
	in = binary.BigEndian.AppendUint64(in, uint64(ev.Time))
	in = binary.BigEndian.AppendUint32(in, uint32(len(ev.Entry)))
	in = binary.BigEndian.AppendUint32(in, crc32.Checksum(ev.Entry, castagnoli))
	e.idIn = in
	sum := sha256.Sum256(in)
	n := len(dst)
	dst = append(dst, make([]byte, idLen)...)
	base64.RawURLEncoding.Encode(dst[n:], sum[:idBytes])
	return dst
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// end returns the end of event i's bytes in body.
func (e *encoder) end(i int) int {
	if i+1 < e.n {
		return e.offs[i+1]
	}
	return len(e.body)
}

// compress gzips raw into the encoder's buffer.
func (e *encoder) compress(raw []byte) ([]byte, error) {
	e.zbuf.Reset()
	if e.zw == nil {
		zw, err := gzip.NewWriterLevel(&e.zbuf, e.s.gzipLevel)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		e.zw = zw
	} else {
		e.zw.Reset(&e.zbuf)
	}
	if _, err := e.zw.Write(raw); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := e.zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return e.zbuf.Bytes(), nil
}

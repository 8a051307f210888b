package kafka

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

const (
	// recordOverhead bounds what a record adds to its key, value and
	// headers in a record batch (length, attributes, timestamp and offset
	// deltas, lengths as varints), headerOverhead what each header adds,
	// batchOverhead the batch's own header with the margin the producer
	// keeps for the produce request: an event is sent only if its record
	// alone fits in max_message_bytes with them.
	recordOverhead = 40
	headerOverhead = 10
	batchOverhead  = 128
	// maxInterned bounds each encoder's topic caches.
	maxInterned = 4096
	// fullMargin: a batch this close to max_batch_bytes is sent.
	fullMargin = 512
)

// path is a record field: the whole key (a top-level key equal to it
// wins) and its dotted parts, for nested maps.
type path struct {
	full  []byte
	parts [][]byte
}

func newPath(key string) *path {
	if key == "" {
		return nil
	}
	p := &path{full: []byte(key)}
	if bytes.IndexByte(p.full, '.') >= 0 {
		p.parts = bytes.Split(p.full, []byte("."))
	}
	return p
}

// value returns the msgpack value of p in the record rec (a view).
func (p *path) value(rec []byte) ([]byte, bool) {
	if v, ok := lookup(rec, p.full); ok {
		return v, true
	}
	if len(p.parts) < 2 {
		return nil, false
	}
	v := rec
	for _, k := range p.parts {
		var ok bool
		if v, ok = lookup(v, k); !ok {
			return nil, false
		}
	}
	return v, true
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

// scalar returns the text of a msgpack scalar v: a view of a str or bin,
// else its JSON spelling appended to dst (the view is then dst's new
// tail). ok is false for maps, arrays, nil and extensions.
func scalar(dst, v []byte) (out, text []byte, ok bool) {
	if len(v) == 0 {
		return dst, nil, false
	}
	n := len(dst)
	switch msgp.NextType(v) {
	case msgp.StrType, msgp.BinType:
		s, _, ok := wire.ReadStrBin(v)
		return dst, s, ok
	case msgp.IntType:
		i, _, err := msgp.ReadInt64Bytes(v)
		if err != nil {
			return dst, nil, false
		}
		dst = strconv.AppendInt(dst, i, 10)
	case msgp.UintType:
		u, _, err := msgp.ReadUint64Bytes(v)
		if err != nil {
			return dst, nil, false
		}
		dst = strconv.AppendUint(dst, u, 10)
	case msgp.BoolType:
		b, _, err := msgp.ReadBoolBytes(v)
		if err != nil {
			return dst, nil, false
		}
		dst = strconv.AppendBool(dst, b)
	case msgp.Float64Type, msgp.Float32Type:
		f, _, err := msgp.ReadFloat64Bytes(v)
		if err != nil {
			return dst, nil, false
		}
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
	default:
		return dst, nil, false
	}
	return dst, dst[n:], true
}

// topicTemplate is a compiled topic template.
type topicTemplate struct {
	parts     []topicPart
	static    string // the topic, when the template has no placeholder
	usesTag   bool
	usesField bool
}

type topicPart struct {
	kind  config.KafkaTopicKind
	text  []byte
	n     int   // tag part, -1 for the whole tag
	field *path // {field:KEY}
}

func compileTopic(s string) (*topicTemplate, error) {
	parts, err := config.ParseKafkaTopic(s)
	if err != nil {
		return nil, err
	}
	t := &topicTemplate{}
	for _, p := range parts {
		tp := topicPart{kind: p.Kind, text: []byte(p.Text), n: p.N}
		switch p.Kind {
		case config.KafkaTopicTag:
			t.usesTag = true
		case config.KafkaTopicField:
			t.usesField = true
			tp.field = newPath(p.Text)
		}
		t.parts = append(t.parts, tp)
	}
	if !t.usesTag && !t.usesField {
		t.static = s
	}
	return t, nil
}

// render appends the topic of one event.
func (t *topicTemplate) render(dst []byte, ev *delivery.Event) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		n := len(dst)
		switch p.kind {
		case config.KafkaTopicText:
			dst = append(dst, p.text...)
			continue
		case config.KafkaTopicTag:
			v := ev.Tag
			if p.n >= 0 {
				v = tagPart(v, p.n)
			}
			dst = appendSanitized(dst, v)
		case config.KafkaTopicField:
			if v, ok := p.field.value(ev.Record); ok {
				var text []byte
				if dst, text, ok = scalar(dst, v); ok && len(dst) == n {
					dst = appendSanitized(dst, text) // a view: not yet appended
				} else if ok {
					sanitizeInPlace(dst[n:])
				}
			}
		}
		if len(dst) == n {
			dst = append(dst, record.Unknown...)
		}
	}
	return dst
}

// tagPart returns the n-th dot-separated part of tag, or nil.
func tagPart(tag []byte, n int) []byte {
	for i := 0; ; i++ {
		j := bytes.IndexByte(tag, '.')
		if i == n {
			if j < 0 {
				return tag
			}
			return tag[:j]
		}
		if j < 0 {
			return nil
		}
		tag = tag[j+1:]
	}
}

// topicBytes maps each byte to itself if a topic may hold it, else '_'.
var topicBytes = func() (t [256]byte) {
	for i := range t {
		t[i] = '_'
		if config.KafkaTopicByte(byte(i)) {
			t[i] = byte(i)
		}
	}
	return t
}()

func appendSanitized(dst, v []byte) []byte {
	for _, c := range v {
		dst = append(dst, topicBytes[c])
	}
	return dst
}

func sanitizeInPlace(b []byte) {
	for i, c := range b {
		b[i] = topicBytes[c]
	}
}

// validTopic reports whether a rendered topic is a name Kafka accepts
// (its bytes are sanitized already).
func validTopic[T string | []byte](t T) bool {
	return len(t) > 0 && len(t) <= config.KafkaMaxTopicLen && string(t) != "." && string(t) != ".."
}

// header is one configured header: the tag, a static value or a field.
type header struct {
	name  string
	value []byte
	field *path
	tag   bool
}

// settings are what every encoder of an output shares; immutable.
type settings struct {
	id        string
	topic     *topicTemplate
	key       *path
	json      *jsonl.Encoder
	rawKey    []byte // format raw: the field sent; nil for json
	headers   []header
	maxMsg    int // max_message_bytes
	maxBytes  int // max_batch_bytes
	maxEvents int
	m         *outputMetrics
}

// flight is the storage of one batch: its records and the bytes they
// point into, and the promise state. Records are handed to the producer by
// Send, which waits for every promise; if Send returns early (its context
// ended) the producer may still hold them, so the flight is abandoned to
// it (Reset starts a new one) instead of being reused.
type flight struct {
	recs []kgo.Record
	errs []error            // per record, set by the promise
	hdrs []kgo.RecordHeader // len(settings.headers) per record
	buf  []byte             // JSON values, formatted keys and headers

	pending   atomic.Int32
	done      chan struct{} // closed by the last promise
	abandoned bool          // Send returned before every promise
	promise   func(*kgo.Record, error)
}

// alloc sizes a new flight's storage for a batch of the limits, so that
// the buffer does not grow (copying itself) while the first batches fill.
func (f *flight) alloc(s *settings) {
	n := min(s.maxEvents, 4096)
	f.recs = make([]kgo.Record, 0, n)
	f.errs = make([]error, 0, n)
	f.hdrs = make([]kgo.RecordHeader, 0, n*len(s.headers))
	f.buf = make([]byte, 0, s.maxBytes+64<<10)
}

func newFlight() *flight {
	f := &flight{}
	f.promise = f.onPromise
	return f
}

// onPromise records one record's outcome. Promises are called one at a
// time by the producer's promise goroutine.
func (f *flight) onPromise(r *kgo.Record, err error) {
	i := f.index(r)
	if i < 0 {
		return // not ours: cannot happen
	}
	f.errs[i] = err
	if f.pending.Add(-1) == 0 {
		close(f.done)
	}
}

// index returns r's position in f.recs (records are handed out as
// &f.recs[i], and f.recs does not move while they are in flight), or -1.
func (f *flight) index(r *kgo.Record) int {
	if len(f.recs) == 0 {
		return -1
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(f.recs)))
	off := uintptr(unsafe.Pointer(r)) - base
	i := int(off / unsafe.Sizeof(kgo.Record{}))
	if off%unsafe.Sizeof(kgo.Record{}) != 0 || i < 0 || i >= len(f.recs) || &f.recs[i] != r {
		return -1
	}
	return i
}

// encoder is one batch being built: a kgo.Record per event. Values, keys
// and header values are views into the queue's chunks (the raw field, a
// string key, the tag) or into the flight's buffer (JSON, formatted
// numbers); nothing is copied per event but the JSON transcoding. Add runs
// on the engine's loop, Send on a worker, one at a time.
type encoder struct {
	s     *settings
	f     *flight
	n     int
	bytes int // the records' key, value and header bytes

	// Topic caches: the last tag's topic, topics by tag (templates without
	// {field:KEY}) and interned rendered topics (with).
	lastTag   []byte
	lastTopic string
	lastOK    bool
	byTag     map[string]string
	interned  map[string]string
	scratch   []byte
	hdrValues [][]byte // per configured header, this event's value (nil: left out)
}

func newEncoder(s *settings) *encoder {
	return &encoder{
		s:         s,
		f:         newFlight(),
		byTag:     map[string]string{},
		interned:  map[string]string{},
		hdrValues: make([][]byte, len(s.headers)),
	}
}

func (e *encoder) Len() int   { return e.n }
func (e *encoder) Bytes() int { return e.bytes }

// Full reports that the batch reached max_batch_events or is within a
// small margin of max_batch_bytes.
func (e *encoder) Full() bool {
	return e.n >= e.s.maxEvents || e.bytes >= e.s.maxBytes-fullMargin
}

// Reset empties the batch: its flight is reused, or replaced if Send
// abandoned it to the producer.
func (e *encoder) Reset() {
	f := e.f
	if f.abandoned {
		e.f = newFlight()
	} else {
		clear(f.recs[:e.n])
		clear(f.errs[:e.n])
		clear(f.hdrs[:e.n*len(e.s.headers)])
		f.buf = f.buf[:0]
	}
	e.n, e.bytes = 0, 0
}

// Add adds ev's record to the batch. An event whose record alone exceeds
// max_message_bytes is rejected (too_large), one whose topic renders to
// an invalid name too (invalid_topic); an event that would take the batch
// past max_batch_bytes is ErrFull.
func (e *encoder) Add(ev *delivery.Event) error {
	f, s := e.f, e.s
	if f.recs == nil {
		f.alloc(s)
	}
	start := len(f.buf)
	topic, ok := e.topicFor(ev)
	if !ok {
		return delivery.Reject("invalid_topic", "topic %q rendered from the template is not a valid topic name", e.scratch)
	}

	var key []byte
	if s.key != nil {
		if v, found := s.key.value(ev.Record); found {
			var text []byte
			if f.buf, text, found = scalar(f.buf, v); found {
				key = text
				if key == nil {
					key = []byte{} // an empty string key, not a null one
				}
			}
		}
	}

	var value []byte
	if s.rawKey != nil {
		if v, found := lookup(ev.Record, s.rawKey); found {
			if raw, _, isStr := wire.ReadStrBin(v); isStr {
				if n := len(raw); n > 0 && raw[n-1] == '\n' {
					raw = raw[:n-1]
				}
				value = raw
				if value == nil {
					value = []byte{}
				}
			}
		}
		if value == nil {
			s.m.rawFallback.Inc()
		}
	}
	if value == nil {
		vs := len(f.buf)
		out, err := s.json.AppendRecord(f.buf, ev.Tag, ev.Time, ev.Record)
		if err != nil {
			f.buf = f.buf[:start]
			return delivery.Reject("undecodable", "%v", err)
		}
		f.buf = out
		value = out[vs:]
	}

	size := len(key) + len(value) + recordOverhead
	for i := range s.headers {
		h := &s.headers[i]
		var hv []byte
		switch {
		case h.tag:
			hv = ev.Tag
		case h.field != nil:
			if v, found := h.field.value(ev.Record); found {
				var text []byte
				if f.buf, text, found = scalar(f.buf, v); found {
					hv = text
					if hv == nil {
						hv = []byte{}
					}
				}
			}
		default:
			hv = h.value
		}
		e.hdrValues[i] = hv
		if hv != nil {
			size += len(h.name) + len(hv) + headerOverhead
		}
	}

	switch {
	case size+batchOverhead > s.maxMsg:
		f.buf = f.buf[:start]
		return delivery.Reject("too_large", "the event's record is %d bytes, more than max_message_bytes (%d) allows", size, s.maxMsg)
	case e.n > 0 && e.bytes+size > s.maxBytes:
		f.buf = f.buf[:start]
		return delivery.ErrFull
	}

	nh := len(s.headers)
	if e.n == len(f.recs) {
		f.recs = append(f.recs, kgo.Record{})
		f.errs = append(f.errs, nil)
		f.hdrs = append(f.hdrs, make([]kgo.RecordHeader, nh)...)
	}
	hdrs := f.hdrs[e.n*nh : e.n*nh : (e.n+1)*nh]
	for i := range s.headers {
		if hv := e.hdrValues[i]; hv != nil {
			hdrs = append(hdrs, kgo.RecordHeader{Key: s.headers[i].name, Value: hv})
		}
		e.hdrValues[i] = nil
	}
	if len(hdrs) == 0 {
		hdrs = nil
	}
	f.recs[e.n] = kgo.Record{
		Topic:     topic,
		Key:       key,
		Value:     value,
		Headers:   hdrs,
		Timestamp: time.Unix(0, ev.Time),
	}
	e.n++
	e.bytes += size
	return nil
}

// topicFor returns ev's topic, interned, and whether it is valid (else
// e.scratch holds the rendered name).
func (e *encoder) topicFor(ev *delivery.Event) (string, bool) {
	t := e.s.topic
	if t.static != "" {
		return t.static, true
	}
	if !t.usesField {
		if e.lastTag != nil && bytes.Equal(e.lastTag, ev.Tag) {
			return e.lastTopic, e.lastOK
		}
		topic, ok := e.byTag[string(ev.Tag)]
		if !ok {
			e.scratch = t.render(e.scratch[:0], ev)
			topic = string(e.scratch)
			if len(e.byTag) >= maxInterned {
				clear(e.byTag)
			}
			e.byTag[string(ev.Tag)] = topic
		}
		e.lastTag = append(e.lastTag[:0], ev.Tag...)
		e.lastTopic, e.lastOK = topic, validTopic(topic)
		if !e.lastOK {
			e.scratch = append(e.scratch[:0], topic...)
		}
		return e.lastTopic, e.lastOK
	}
	e.scratch = t.render(e.scratch[:0], ev)
	if !validTopic(e.scratch) {
		return "", false
	}
	topic, ok := e.interned[string(e.scratch)]
	if !ok {
		topic = string(e.scratch)
		if len(e.interned) >= maxInterned {
			clear(e.interned)
		}
		e.interned[topic] = topic
	}
	return topic, true
}

package s3

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

type codec uint8

const (
	codecNone codec = iota
	codecGzip
	codecZstd
)

// blockBytes is how much uncompressed content an object stages before it
// is compressed (in Add, on the engine's loop): the staging memory per
// open object. gzip's window is 32 KiB and zstd's ratio hardly improves
// past it, so a block boundary costs almost nothing.
const blockBytes = 256 << 10

// gzipHeader is a gzip member header without name, time or extra fields.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// object is the content of one S3 object being built: one distinct key
// (partition) of a batch.
type object struct {
	partition   string // the key with {unique} and {index} markers
	events      int
	raw         int    // uncompressed bytes
	stage       []byte // uncompressed bytes not compressed yet (codecNone: unused)
	body        []byte // the object's stored bytes so far
	crc         uint32 // gzip: CRC-32 of the uncompressed content
	first, last int64  // event times, unix ns
	key         string // set by Send
}

// encoder is the delivery.Encoder of the s3 output: the objects of one
// batch. Add runs on the engine's loop; Send (finish, upload) on a worker.
type encoder struct {
	s       *sink
	objs    []*object
	spare   []*object
	byPart  map[string]int
	evObj   []int32 // object of each event added, in order
	raw     int     // uncompressed bytes of all objects
	entries int     // queued entry bytes of the events added
	scratch []byte
	fw      *flate.Writer // gzip: compresses one block at a time
	bw      appender

	// The last event's partition: events of the same tag (when the key
	// uses it) within [lastLo, lastHi) share lastObj.
	lastObj        int
	lastTag        []byte
	lastLo, lastHi int64
	finished       bool
}

// appender is an io.Writer appending to *b.
type appender struct{ b *[]byte }

func (a appender) Write(p []byte) (int, error) { *a.b = append(*a.b, p...); return len(p), nil }

func (s *sink) NewEncoder() delivery.Encoder {
	e := &encoder{s: s, byPart: map[string]int{}, lastObj: -1}
	if s.codec == codecGzip {
		e.fw, _ = flate.NewWriter(nil, flate.BestSpeed) // level 1 never fails
	}
	return e
}

func (e *encoder) Len() int { return len(e.evObj) }

// Bytes is the stored size so far: compressed blocks plus staged content
// (after Send, the exact size of every object).
func (e *encoder) Bytes() int {
	n := 0
	for _, o := range e.objs {
		n += len(o.body) + len(o.stage)
	}
	return n
}

// Full reports that the batch holds max_object_bytes of content or as
// many queued bytes as the engine's in-flight bound allows one batch.
func (e *encoder) Full() bool { return e.raw >= e.s.maxObject || e.entries >= e.s.entryCap }

func (e *encoder) Reset() {
	for _, o := range e.objs {
		*o = object{stage: o.stage[:0], body: o.body[:0]}
		e.spare = append(e.spare, o)
	}
	clear(e.objs)
	e.objs = e.objs[:0]
	clear(e.byPart)
	e.evObj = e.evObj[:0]
	e.raw, e.entries = 0, 0
	e.lastObj, e.lastTag = -1, e.lastTag[:0]
	e.finished = false
}

func (e *encoder) Add(ev *delivery.Event) error {
	oi, created, err := e.objectFor(ev)
	if err != nil {
		return err
	}
	o := e.objs[oi]
	buf := &o.stage
	if e.s.codec == codecNone {
		buf = &o.body
	}
	before := len(*buf)
	*buf, err = e.appendLine(*buf, ev)
	if err != nil {
		if created { // no empty object stays behind
			e.spare = append(e.spare, o)
			e.objs = e.objs[:oi]
			delete(e.byPart, o.partition)
			*o = object{stage: o.stage[:0], body: o.body[:0]}
			e.lastObj = -1
		}
		return delivery.Reject("undecodable", "%v", err)
	}
	n := len(*buf) - before
	if o.events == 0 || ev.Time < o.first {
		o.first = ev.Time
	}
	o.last = max(o.last, ev.Time)
	o.events++
	o.raw += n
	e.raw += n
	e.entries += len(ev.Entry)
	e.evObj = append(e.evObj, int32(oi))
	if len(o.stage) >= blockBytes {
		e.compress(o, false)
	}
	return nil
}

// appendLine appends ev's line: the JSON object, or for format raw the
// raw field's value without its trailing newline (the JSON object when
// the record has no such string field).
func (e *encoder) appendLine(dst []byte, ev *delivery.Event) ([]byte, error) {
	if e.s.rawKey != "" {
		if out, ok := jsonl.AppendRawField(dst, ev.Record, e.s.rawKey); ok {
			if n := len(out); n > len(dst) && out[n-1] == '\n' {
				out = out[:n-1]
			}
			return append(out, '\n'), nil
		}
		e.s.m.rawFallback.Inc()
	}
	out, err := e.s.json.AppendRecord(dst, ev.Tag, ev.Time, ev.Record)
	if err != nil {
		return dst, err
	}
	return append(out, '\n'), nil
}

// objectFor returns the index of ev's object, creating it if needed (and
// allowed: ErrFull past max_open_objects).
func (e *encoder) objectFor(ev *delivery.Event) (int, bool, error) {
	k := e.s.key
	if e.lastObj >= 0 && ev.Time >= e.lastLo && ev.Time < e.lastHi && (!k.usesTag || bytes.Equal(ev.Tag, e.lastTag)) {
		return e.lastObj, false, nil
	}
	e.scratch = k.appendPartition(e.scratch[:0], ev.Tag, ev.Time)
	i, ok := e.byPart[string(e.scratch)]
	created := false
	if !ok {
		if len(e.objs) >= e.s.maxOpen && len(e.evObj) > 0 {
			return 0, false, delivery.ErrFull
		}
		var o *object
		if n := len(e.spare); n > 0 {
			o, e.spare = e.spare[n-1], e.spare[:n-1]
		} else {
			o = &object{}
		}
		o.partition = string(e.scratch)
		if e.s.codec == codecGzip {
			o.body = append(o.body, gzipHeader...)
		}
		i = len(e.objs)
		e.objs = append(e.objs, o)
		e.byPart[o.partition] = i
		created = true
	}
	e.lastObj = i
	e.lastTag = append(e.lastTag[:0], ev.Tag...)
	e.lastLo, e.lastHi = k.bucket(ev.Time)
	return i, created, nil
}

// compress moves o's staged content into its body: a gzip block sequence
// ending on a byte boundary (sync flush; the final one closes the deflate
// stream), or one zstd frame (concatenated frames are one valid stream).
func (e *encoder) compress(o *object, final bool) {
	switch e.s.codec {
	case codecGzip:
		e.bw.b = &o.body
		e.fw.Reset(e.bw)
		e.fw.Write(o.stage) // appender never fails
		if final {
			e.fw.Close()
		} else {
			e.fw.Flush()
		}
		e.bw.b = nil
		o.crc = crc32.Update(o.crc, crc32.IEEETable, o.stage)
	case codecZstd:
		if len(o.stage) > 0 {
			o.body = e.s.zenc.EncodeAll(o.stage, o.body)
		}
	}
	o.stage = o.stage[:0]
}

// finish completes every object's body (Send, on the worker goroutine).
func (e *encoder) finish() {
	if e.finished {
		return
	}
	e.finished = true
	for _, o := range e.objs {
		if e.s.codec == codecNone {
			continue
		}
		e.compress(o, true)
		if e.s.codec == codecGzip {
			o.body = binary.LittleEndian.AppendUint32(o.body, o.crc)
			o.body = binary.LittleEndian.AppendUint32(o.body, uint32(o.raw))
		}
	}
}

// newZstd returns the zstd encoder every batch of an output shares
// (EncodeAll is safe for concurrent use).
func newZstd(concurrency int) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(concurrency))
}

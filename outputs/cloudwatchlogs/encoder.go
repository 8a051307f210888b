package cloudwatchlogs

import (
	"bytes"
	"slices"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/awsout"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

const (
	overhead = config.CloudWatchLogsEventOverhead
	// maxStreams bounds the distinct log streams of one batch: one more
	// seals it.
	maxStreams = 64
	// maxNames bounds an encoder's cache of rendered names.
	maxNames = 4096
	// maxSpanMs: a request's events span less than 24 hours.
	maxSpanMs = 24 * 3600 * 1000
	// truncMarker ends a truncated message.
	truncMarker = "[truncated]"
)

// streamName is a rendered group and stream; cached per encoder, so that
// a batch costs no allocation per event or per stream.
type streamName struct {
	group, stream string
}

// event is one event of a batch.
type event struct {
	off, n int32 // message in buf
	ts     int64 // ms since the epoch
	stream int32 // index in streams
	trunc  bool
}

// batchStream is the events of one log stream in a batch.
type batchStream struct {
	name *streamName
	idx  []int32 // events in the order added
}

// request is one PutLogEvents call of a Send: input[from:to].
type request struct {
	stream   int32
	from, to int
	err      error
}

// encoder is the delivery.Encoder of the output: the events of one batch,
// grouped by log stream. Add runs on the engine's loop, Send on a worker,
// one at a time.
type encoder struct {
	s       *sink
	buf     []byte
	evs     []event
	streams []batchStream
	bytes   int // messages + 26 per event

	names   map[string]*streamName // "group\x00stream" -> name
	key     []byte
	scratch []byte
	lastTag []byte
	last    *streamName // of lastTag (templates without {field:...})

	// Send's, rebuilt from the above.
	order []int32 // events in request order
	input []types.InputLogEvent
	msgs  []string
	tss   []int64
	reqs  []request
}

func (s *sink) NewEncoder() delivery.Encoder {
	return &encoder{s: s, names: map[string]*streamName{}}
}

func (e *encoder) Len() int   { return len(e.evs) }
func (e *encoder) Bytes() int { return e.bytes }

func (e *encoder) Reset() {
	e.buf, e.evs, e.bytes = e.buf[:0], e.evs[:0], 0
	for i := range e.streams {
		e.streams[i].name = nil
		e.streams[i].idx = e.streams[i].idx[:0]
	}
	e.streams = e.streams[:0]
	clear(e.msgs)
}

// Full reports that no further event fits: max_batch_events reached, or
// less room left than the smallest message.
func (e *encoder) Full() bool {
	return len(e.evs) >= e.s.maxEvents || e.bytes+overhead+2 > e.s.maxBytes
}

// nameOf returns the rendered group and stream of ev.
func (e *encoder) nameOf(ev *delivery.Event) *streamName {
	s := e.s
	if !s.group.usesFild && !s.stream.usesFild {
		if e.last != nil && (!s.group.usesTag && !s.stream.usesTag || bytes.Equal(e.lastTag, ev.Tag)) {
			return e.last
		}
	}
	k, sc := s.group.render(e.key[:0], ev, e.scratch)
	k = append(k, 0)
	k, sc = s.stream.render(k, ev, sc)
	e.key, e.scratch = k, sc
	n, ok := e.names[string(k)]
	if !ok {
		if len(e.names) >= maxNames {
			clear(e.names)
		}
		g, st, _ := bytes.Cut(k, []byte{0})
		n = &streamName{group: string(g), stream: string(st)}
		e.names[string(k)] = n
	}
	e.last = n
	e.lastTag = append(e.lastTag[:0], ev.Tag...)
	return n
}

// Add adds ev's message to the batch; a message over max_event_bytes is
// truncated (counted when its result is final). An event of a stream the
// batch does not hold, when it holds 64 already, or one that would take
// the batch over max_batch_events or max_batch_bytes, is ErrFull.
func (e *encoder) Add(ev *delivery.Event) error {
	s := e.s
	if len(e.evs) >= s.maxEvents {
		return delivery.ErrFull
	}
	name := e.nameOf(ev)
	si := -1
	for i := len(e.streams) - 1; i >= 0; i-- {
		if e.streams[i].name == name {
			si = i
			break
		}
	}
	if si < 0 && len(e.streams) >= maxStreams {
		return delivery.ErrFull
	}
	start := len(e.buf)
	buf, err := s.msg.Append(e.buf, ev)
	if err != nil {
		e.buf = buf[:start]
		return delivery.Reject("undecodable", "%v", err)
	}
	n, trunc := len(buf)-start, false
	if n > s.maxEvent {
		cut := awsout.TruncateUTF8(buf[start:], s.maxEvent-len(truncMarker))
		buf = append(buf[:start+cut], truncMarker...)
		n, trunc = len(buf)-start, true
	}
	if len(e.evs) > 0 && e.bytes+n+overhead > s.maxBytes {
		e.buf = buf[:start]
		return delivery.ErrFull
	}
	e.buf = buf
	if si < 0 {
		si = len(e.streams)
		if si < cap(e.streams) {
			e.streams = e.streams[:si+1]
			e.streams[si].name = name
		} else {
			e.streams = append(e.streams, batchStream{name: name})
		}
	}
	e.streams[si].idx = append(e.streams[si].idx, int32(len(e.evs)))
	ms := ev.Time / 1e6
	if ev.Time < 0 && ev.Time%1e6 != 0 {
		ms--
	}
	e.evs = append(e.evs, event{off: int32(start), n: int32(n), ts: ms, stream: int32(si), trunc: trunc})
	e.bytes += n + overhead
	return nil
}

// prepare builds the requests of the batch: per stream, its events sorted
// by timestamp (stable: events of one millisecond keep their order), cut
// wherever the next event would make the request span 24 hours or more.
// The batch's own bounds keep each request within the count and byte
// limits.
func (e *encoder) prepare() {
	n := len(e.evs)
	e.order = slices.Grow(e.order[:0], n)
	e.reqs = e.reqs[:0]
	for si := range e.streams {
		idx := e.streams[si].idx
		if len(idx) == 0 {
			continue
		}
		from := len(e.order)
		e.order = append(e.order, idx...)
		part := e.order[from:]
		slices.SortStableFunc(part, func(a, b int32) int {
			ta, tb := e.evs[a].ts, e.evs[b].ts
			switch {
			case ta < tb:
				return -1
			case ta > tb:
				return 1
			}
			return 0
		})
		first := from
		for k := from; k < len(e.order); k++ {
			if e.evs[e.order[k]].ts-e.evs[e.order[first]].ts >= maxSpanMs {
				e.reqs = append(e.reqs, request{stream: int32(si), from: first, to: k})
				first = k
			}
		}
		e.reqs = append(e.reqs, request{stream: int32(si), from: first, to: len(e.order)})
	}
	e.msgs = slices.Grow(e.msgs[:0], n)[:n]
	e.tss = slices.Grow(e.tss[:0], n)[:n]
	e.input = slices.Grow(e.input[:0], n)[:n]
	for k, i := range e.order {
		ev := &e.evs[i]
		if ev.n > 0 {
			// The message stays in buf, unchanged until Reset: no copy.
			e.msgs[k] = unsafe.String(&e.buf[ev.off], int(ev.n))
		} else {
			e.msgs[k] = ""
		}
		e.tss[k] = ev.ts
		e.input[k] = types.InputLogEvent{Message: &e.msgs[k], Timestamp: &e.tss[k]}
	}
}

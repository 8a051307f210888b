package forward

import (
	"bytes"
	"slices"

	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/tinylib/msgp/msgp"
)

func cmpKey(a, b kv) int { return bytes.Compare(a.k, b.k) }

// Record keys of Docker's fluentd log driver (formats.md §2.1) and of the
// stored event shape shared with the docker input.
var (
	keyLog            = []byte("log")
	keyStream         = []byte("stream")
	keySource         = []byte("source")
	keyContainerID    = []byte("container_id")
	keyContainerName  = []byte("container_name")
	keyLabels         = []byte("labels")
	keyPartialMessage = []byte("partial_message")
	keyPartialID      = []byte("partial_id")
	keyPartialOrdinal = []byte("partial_ordinal")
	keyPartialLast    = []byte("partial_last")
	valTrue           = []byte("true")
)

// kv is one key with its raw msgpack value.
type kv struct{ k, v []byte }

// recInfo is what scanRecord learns about one incoming record. Its slices
// are views into the record.
type recInfo struct {
	// docker is set for a record of Docker's fluentd driver: a map with str
	// keys and str values for container_id, source and log.
	docker bool
	log    []byte
	hasLog bool // log present as a str (any record)
	source []byte
	id     []byte
	name   []byte

	partial                  bool // partial_message == "true"
	pid, pordinal, plast     []byte
	hasPOrdinal, hasPLast    bool
	ecs                      []kv // FireLens/ECS fields, kept top-level
	extras                   []kv // driver extras (labels, env): the labels map
	hasID, hasSource, hasNam bool
}

// isECSKey reports whether k is a field FireLens adds to a record; those
// stay top-level fields.
func isECSKey(k []byte) bool {
	switch string(k) {
	case "ecs_cluster", "ecs_task_arn", "ecs_task_definition", "ec2_instance_id":
		return true
	}
	return false
}

// scanRecord fills ri from rec in one pass over its top-level pairs.
func scanRecord(rec []byte, ri *recInfo) {
	ecs, extras := ri.ecs[:0], ri.extras[:0]
	*ri = recInfo{ecs: ecs, extras: extras}
	it, ok := newMapIter(rec)
	if !ok {
		return
	}
	allStr := true
	for {
		k, kok, v, ok := it.next()
		if !ok {
			break
		}
		if !kok {
			allStr = false
			continue
		}
		s, _, sok := wire.ReadStrBin(v)
		switch string(k) {
		case "log":
			ri.log, ri.hasLog = s, sok
			continue
		case "source":
			ri.source, ri.hasSource = s, sok
			continue
		case "container_id":
			ri.id, ri.hasID = s, sok
			continue
		case "container_name":
			ri.name, ri.hasNam = s, sok
			continue
		case "partial_message":
			ri.partial = sok && string(s) == "true"
			continue
		case "partial_id":
			ri.pid = s
			continue
		case "partial_ordinal":
			ri.pordinal, ri.hasPOrdinal = s, sok
			continue
		case "partial_last":
			ri.plast, ri.hasPLast = s, sok
			continue
		}
		if isECSKey(k) {
			ri.ecs = append(ri.ecs, kv{k, v})
		} else {
			ri.extras = append(ri.extras, kv{k, v})
		}
	}
	ri.docker = allStr && it.left == 0 && ri.hasID && ri.hasSource && ri.hasLog
	if !ri.docker {
		ri.partial = false
	}
}

// isLast reports whether a partial fragment is the last of its line.
func (ri *recInfo) isLast() bool { return string(ri.plast) == "true" }

// appendDockerRecord appends the stored form of a Docker driver record:
//
//	log, stream, container_id, container_name (no leading '/'),
//	labels (map of the driver's extras sorted by key; only if any),
//	the FireLens fields (ecs_cluster, ecs_task_arn, ecs_task_definition,
//	ec2_instance_id) as sent,
//	[partial_message, partial_id, partial_ordinal, partial_last] (only when
//	keepPartial: a fragment that could not be joined),
//	[the fields of a JSON log payload, with parseJSON]
//
// log replaces the record's log (a joined partial line). fields and taken
// are scratch for the payload's fields.
func appendDockerRecord(dst []byte, ri *recInfo, log []byte, keepPartial bool, fields payloadParser, mark string, taken *record.Keys) (_ []byte, parsed bool) {
	n := 4 + len(ri.ecs)
	if len(ri.extras) > 0 {
		n++
	}
	if keepPartial {
		n += 4
	}
	added := 0
	if fields != nil {
		taken.Reset()
		taken.Add(keyLog)
		taken.Add(keyStream)
		taken.Add(keyContainerID)
		taken.Add(keyContainerName)
		taken.Add(keyLabels)
		for _, f := range ri.ecs {
			taken.Add(f.k)
		}
		if keepPartial {
			taken.Add(keyPartialMessage)
			taken.Add(keyPartialID)
			taken.Add(keyPartialOrdinal)
			taken.Add(keyPartialLast)
		}
		if parsed = fields.Parse(trimEOL(log), taken); parsed {
			added = fields.Len()
		} else if mark != "" {
			n++
		}
	}
	dst = msgp.AppendMapHeader(dst, uint32(n+added))
	dst = appendStr(dst, keyLog)
	dst = appendStr(dst, log)
	dst = appendStr(dst, keyStream)
	dst = appendStr(dst, ri.source)
	dst = appendStr(dst, keyContainerID)
	dst = appendStr(dst, ri.id)
	dst = appendStr(dst, keyContainerName)
	name := ri.name
	for len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if len(name) == 0 {
		name = ri.id
		if len(name) > 12 {
			name = name[:12]
		}
	}
	dst = appendStr(dst, name)
	if len(ri.extras) > 0 {
		slices.SortFunc(ri.extras, cmpKey)
		dst = appendStr(dst, keyLabels)
		dst = msgp.AppendMapHeader(dst, uint32(len(ri.extras)))
		for _, f := range ri.extras {
			dst = appendStr(dst, f.k)
			dst = append(dst, f.v...)
		}
	}
	for _, f := range ri.ecs {
		dst = appendStr(dst, f.k)
		dst = append(dst, f.v...)
	}
	if keepPartial {
		dst = appendStr(dst, keyPartialMessage)
		dst = appendStr(dst, valTrue)
		dst = appendStr(dst, keyPartialID)
		dst = appendStr(dst, ri.pid)
		dst = appendStr(dst, keyPartialOrdinal)
		dst = appendStr(dst, ri.pordinal)
		dst = appendStr(dst, keyPartialLast)
		dst = appendStr(dst, ri.plast)
	}
	if added > 0 {
		dst = append(dst, fields.Pairs()...)
	}
	if fields != nil && !parsed && mark != "" {
		dst = appendStr(dst, keyParseError)
		dst = appendStr(dst, []byte(mark))
	}
	return dst, parsed
}

// payloadParser is what parses a log payload: record.Fields (parse_json)
// or a configured internal/parse Parser.
type payloadParser interface {
	Parse(line []byte, skip *record.Keys) bool
	Len() int
	Pairs() []byte
	Value(key []byte) ([]byte, bool)
}

// keyParseError marks a payload the configured parser rejected.
var keyParseError = []byte(parse.KeyParseError)

// trimEOL drops a trailing "\n" or "\r\n": not part of the payload.
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// appendParsedRecord appends rec (a record passed through as is) extended
// with the fields of its log payload; keys already in rec are not added.
// ok is false, and dst unchanged, when the payload gave no new field and
// there is no failure to mark (mark: the configured parser's type, which
// a rejected payload gains as parse_error). parsed says the parser
// accepted the payload. fields and taken are scratch.
func appendParsedRecord(dst, rec []byte, ri *recInfo, fields payloadParser, mark string, taken *record.Keys) (out []byte, ok, parsed bool) {
	n, body, hok := wire.ReadMapHeader(rec)
	if !hok || !ri.hasLog {
		return dst, false, false
	}
	taken.Reset()
	for it := (mapIter{rest: body, left: n}); ; {
		k, kok, _, more := it.next()
		if !more {
			break
		}
		if kok {
			taken.Add(k)
		}
	}
	if !fields.Parse(trimEOL(ri.log), taken) {
		if mark == "" || taken.Has(keyParseError) {
			return dst, false, false
		}
		dst = msgp.AppendMapHeader(dst, uint32(n+1))
		dst = append(dst, body...)
		dst = appendStr(dst, keyParseError)
		return appendStr(dst, []byte(mark)), true, false
	}
	if fields.Len() == 0 {
		return dst, false, true
	}
	dst = msgp.AppendMapHeader(dst, uint32(n+fields.Len()))
	dst = append(dst, body...)
	return append(dst, fields.Pairs()...), true, true
}

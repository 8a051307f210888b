// Package jsonl is the record codec of every output that speaks JSON (file,
// stdout, Elasticsearch _bulk, S3 JSON lines, CloudWatch Logs, Kinesis,
// Firehose, Kafka): it transcodes the msgpack records of stored chunks
// straight to JSON, without decoding them into Go values.
//
// An Encoder, compiled once from Options, writes one event as one object,
// the fields it adds first:
//
//	{"@timestamp":"2024-01-02T03:04:05.123000000Z","tag":"app.web","log":"...",...}
//
// AppendLine and AppendChunk write the file output's line format, which
// nests the record instead:
//
//	{"tag":"app.web","time":"2024-01-02T03:04:05.123Z","record":{...}}
//
// # Invariants
//
//   - The output is always valid JSON and valid UTF-8, whatever the input
//     bytes (json.Valid holds for every object written).
//   - An event is transcoded whole or not at all: on error dst comes back
//     at its original length, and the error says why (ErrNotMap,
//     ErrTruncated, ErrMalformed, ErrDepth, ErrKeyType, ErrTrailing; never
//     wrapped, never allocated).
//   - Nothing is allocated per event once dst has grown to size; nesting
//     costs no recursion (a fixed stack of MaxDepth = 64 levels, the
//     record's own map being level 1; deeper is ErrDepth).
//   - An added field (time, tag) is left out when the record has a
//     top-level key of the same name: the record's own value wins and no
//     key is written twice on its account. Duplicate keys within the
//     record itself are passed through in order.
//   - In AppendChunk, when the chunk's entries themselves cannot be split
//     (a broken frame), the events before the break are kept and the rest
//     are lost; AppendChunk reports how many lines it made so the caller
//     can count the others.
//   - The package keeps no state; callers own their buffers.
//
// # Transcoding rules
//
//   - str and bin become JSON strings. '"', '\\' and every control byte
//     below 0x20 are escaped (\b \f \n \r \t short, the others \u00XX);
//     each byte that is not part of a valid UTF-8 sequence (a lone
//     continuation byte, a truncated sequence, an overlong form, a UTF-8
//     encoded surrogate such as ED A0 80, anything above U+10FFFF) becomes
//     \ufffd, one per byte, as encoding/json does. All else is copied as
//     is, including DEL, U+2028 and U+2029 (valid JSON; encoding/json
//     escapes the last two only for JSONP). Runs of plain ASCII are
//     copied eight bytes at a time.
//   - Integers of every width become decimal numbers (uint64 above 2^63
//     included; a reader into float64 may round those above 2^53).
//   - float32 and float64 are written as encoding/json writes them: the
//     shortest text that reads back as the same value of that width, in
//     exponent form below 1e-6 and from 1e21. NaN and ±Inf, which JSON
//     lacks, become null.
//   - nil is null, booleans true and false.
//   - Arrays and maps are transcoded recursively, in order.
//   - Map keys: str and bin as strings (escaped as above), integers as
//     their decimal text ("5"), booleans as "true" and "false". Any other
//     key (nil, float, ext, array, map) fails the event with ErrKeyType.
//   - Ext: a Forward EventTime (type 0, 8 bytes: uint32 seconds, uint32
//     nanoseconds) or a msgpack timestamp (type -1, 4, 8 or 12 bytes)
//     nested in a record becomes an RFC 3339 UTC string, always in that
//     layout whatever the Encoder's TimeFormat (nine fraction digits from
//     an Encoder, trimmed in AppendLine). Every other ext, and a time ext
//     whose nanoseconds are not below 1e9, becomes the padded standard
//     base64 string of its payload (the ext type is dropped).
//   - The event time an Encoder adds is written in Options.TimeFormat:
//     RFC3339Nano (the default: a string with nine fraction digits),
//     EpochSeconds (a number with nine fraction digits), EpochMillis
//     (rounded down) or EpochNanos (integers).
package jsonl

import (
	"fmt"

	"github.com/sluice-agent/sluice/internal/wire"
)

// AppendLine appends the JSON line of one event (with its trailing
// newline) to dst:
//
//	{"tag":"t","time":"2024-01-02T03:04:05.123Z","record":{...}}
//
// The time is in the layout of time.RFC3339Nano (UTC, fraction trimmed);
// record, a msgpack map, is transcoded by the package's rules. On error
// dst is returned unchanged.
func AppendLine(dst, tag []byte, unixNano int64, record []byte) ([]byte, error) {
	start := len(dst)
	pairs, rest, ok := wire.ReadMapHeader(record)
	if !ok {
		if len(record) > 0 && (record[0]&0xf0 == 0x80 || record[0] == 0xde || record[0] == 0xdf) {
			return dst, fmt.Errorf("record: %w", ErrTruncated)
		}
		return dst, fmt.Errorf("record: %w", ErrNotMap)
	}
	dst = append(dst, `{"tag":`...)
	dst = AppendString(dst, tag)
	dst = append(dst, `,"time":`...)
	dst = appendTime(dst, unixNano, RFC3339Nano, true)
	dst = append(dst, `,"record":{`...)
	dst, rest, _, err := transcodeMembers(dst, rest, pairs, false, true, nil)
	if err == nil && len(rest) != 0 {
		err = ErrTrailing
	}
	if err != nil {
		return dst[:start], fmt.Errorf("record: %w", err)
	}
	return append(dst, "}\n"...), nil
}

// AppendChunk appends the JSON line of every event in entries (a chunk's
// concatenated Forward entries) to dst. It returns the extended dst, the
// number of lines appended and the first problem met, nil if every event
// was transcoded. An event whose record does not transcode is left out and
// the next one tried; a break in the entries themselves ends the chunk.
// A caller that knows the chunk's event count counts count-lines events
// as not delivered.
func AppendChunk(dst, tag, entries []byte) (_ []byte, lines int, err error) {
	i := 0 // index of the current event
	werr := wire.ForEachEntry(entries, func(ns int64, record []byte) error {
		var e error
		if dst, e = AppendLine(dst, tag, ns, record); e != nil {
			if err == nil {
				err = fmt.Errorf("event %d: %w", i, e)
			}
		} else {
			lines++
		}
		i++
		return nil
	})
	if werr != nil && err == nil {
		err = fmt.Errorf("event %d: %w", i, werr)
	}
	return dst, lines, err
}

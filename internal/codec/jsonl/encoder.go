package jsonl

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/sluice-agent/sluice/internal/wire"
)

// DefaultTimeKey is the time field's name when Options.TimeKey is empty.
const DefaultTimeKey = "@timestamp"

// Options configure an Encoder.
type Options struct {
	// TimeKey names the time field added to each object. Empty means
	// DefaultTimeKey, unless OmitTime is set.
	TimeKey string
	// TimeFormat is how the time field is written; the zero value is
	// RFC3339Nano.
	TimeFormat TimeFormat
	// TagKey names the tag field added to each object; empty adds none.
	TagKey string
	// OmitTime adds no time field at all (TimeKey and TimeFormat are then
	// ignored).
	OmitTime bool
}

// An Encoder writes records as JSON objects according to its Options. It
// is immutable once made by NewEncoder and safe for concurrent use. The
// zero Encoder adds neither a time nor a tag field.
type Encoder struct {
	timeKey, tagKey       string // "" = not added
	timeMember, tagMember []byte // `"key":`, escaped
	timeRepl, tagRepl     bool   // the key holds U+FFFD (see keyIs)
	format                TimeFormat
}

// NewEncoder compiles o. It fails for an unknown TimeFormat, a key that
// is not valid UTF-8, and a TagKey equal to the time field's name.
func NewEncoder(o Options) (*Encoder, error) {
	e := &Encoder{format: o.TimeFormat}
	if o.TimeFormat >= numTimeFormats {
		return nil, fmt.Errorf("jsonl: unknown time format %d", o.TimeFormat)
	}
	if !o.OmitTime {
		e.timeKey = o.TimeKey
		if e.timeKey == "" {
			e.timeKey = DefaultTimeKey
		}
	}
	e.tagKey = o.TagKey
	for _, k := range []string{e.timeKey, e.tagKey} {
		if !utf8.ValidString(k) {
			return nil, fmt.Errorf("jsonl: field name %q is not valid UTF-8", k)
		}
	}
	if e.tagKey != "" && e.tagKey == e.timeKey {
		return nil, fmt.Errorf("jsonl: tag and time fields have the same name %q", e.tagKey)
	}
	if e.timeKey != "" {
		e.timeMember = append(AppendString(nil, []byte(e.timeKey)), ':')
		e.timeRepl = strings.ContainsRune(e.timeKey, utf8.RuneError)
	}
	if e.tagKey != "" {
		e.tagMember = append(AppendString(nil, []byte(e.tagKey)), ':')
		e.tagRepl = strings.ContainsRune(e.tagKey, utf8.RuneError)
	}
	return e, nil
}

// AppendRecord appends to dst one JSON object for the event (tag,
// unixNano, record): first the time field (unless OmitTime), then the tag
// field (if TagKey is set), then the members of record, a msgpack map,
// transcoded in order. An added field is left out when the record has a
// top-level key that reads as the same name (the record's value wins, and
// the object has no duplicate of it). No newline is added. On error dst
// is returned unchanged and the error is one of the package's Err values;
// AppendRecord never allocates beyond growing dst.
func (e *Encoder) AppendRecord(dst, tag []byte, unixNano int64, record []byte) ([]byte, error) {
	pairs, rest, ok := wire.ReadMapHeader(record)
	if !ok {
		if len(record) > 0 && (record[0]&0xf0 == 0x80 || record[0] == 0xde || record[0] == 0xdf) {
			return dst, ErrTruncated
		}
		return dst, ErrNotMap
	}
	// The added fields are written first, optimistically; should the
	// record have one of their keys (rare), they are cut out afterwards.
	start := len(dst)
	dst = append(dst, '{')
	addTime, addTag := e.timeKey != "", e.tagKey != ""
	if addTime {
		dst = append(dst, e.timeMember...)
		dst = appendTime(dst, unixNano, e.format, false)
	}
	tagStart := len(dst) // of the tag member, with its ',' after the time
	if addTag {
		if addTime {
			dst = append(dst, ',')
		}
		dst = append(dst, e.tagMember...)
		dst = AppendString(dst, tag)
	}
	addEnd := len(dst)
	var (
		found uint8
		err   error
	)
	if addTime || addTag {
		dst, rest, found, err = transcodeMembers(dst, rest, pairs, true, false, e)
	} else {
		dst, rest, _, err = transcodeMembers(dst, rest, pairs, false, false, nil)
	}
	if err == nil && len(rest) != 0 {
		err = ErrTrailing
	}
	if err != nil {
		return dst[:start], err
	}
	if found != 0 {
		// The record is not empty, so a ',' follows the added fields.
		var cut0, cut1 int // dst[cut0:cut1] goes
		keepTime, keepTag := addTime && found&foundTime == 0, addTag && found&foundTag == 0
		switch {
		case keepTime && !keepTag: // drop ",tag"
			cut0, cut1 = tagStart, addEnd
		case keepTag && !keepTime: // drop "time,"
			cut0, cut1 = start+1, tagStart+1
		case !keepTime && !keepTag: // drop everything added, and the ','
			cut0, cut1 = start+1, addEnd+1
		}
		dst = dst[:cut0+copy(dst[cut0:], dst[cut1:])]
	}
	return dst, nil
}

const (
	foundTime = 1 << iota
	foundTag
)

// collides reports which added field (foundTime, foundTag) a top-level key
// of the record reads as: written is the key as transcoded, quoted; raw
// the msgpack bytes from the key on.
func (e *Encoder) collides(written, raw []byte) (found uint8) {
	if e.timeMember != nil && keyIs(written, raw, e.timeMember, e.timeKey, e.timeRepl) {
		found |= foundTime
	}
	if e.tagMember != nil && keyIs(written, raw, e.tagMember, e.tagKey, e.tagRepl) {
		found |= foundTag
	}
	return found
}

// keyIs reports whether the key written (from raw) names the field whose
// member text is member (`"name":`). When name holds U+FFFD, written as
// itself, a str key whose invalid bytes were written as \ufffd may still
// read the same: such keys are compared decoded.
func keyIs(written, raw, member []byte, name string, repl bool) bool {
	if len(written) == len(member)-1 && string(written) == string(member[:len(member)-1]) {
		return true
	}
	if !repl {
		return false
	}
	k, _, ok := wire.ReadStrBin(raw)
	return ok && sanitizedEqual(k, name)
}

// AppendEntry is AppendRecord for one raw Forward entry, the [time,
// record] array as a chunk stores it (see NextEntry). An entry that is not
// one valid entry is refused with an error wrapping wire.ErrMalformed.
func (e *Encoder) AppendEntry(dst, tag, entry []byte) ([]byte, error) {
	ns, record, err := DecodeEntry(entry)
	if err != nil {
		return dst, err
	}
	return e.AppendRecord(dst, tag, ns, record)
}

var errTwoEntries = fmt.Errorf("%w: more than one entry", wire.ErrMalformed)

// DecodeEntry splits one Forward entry into its time, in nanoseconds, and
// its record, a view into entry. It reads time forms as wire.ForEachEntry
// does (integer seconds, EventTime, [time, metadata]; a time of 0 seconds
// means now). An invalid or truncated entry, or bytes after it, give an
// error wrapping wire.ErrMalformed.
func DecodeEntry(entry []byte) (unixNano int64, record []byte, err error) {
	if len(entry) == 0 {
		return 0, nil, fmt.Errorf("%w: empty entry", wire.ErrMalformed)
	}
	n := 0
	err = wire.ForEachEntry(entry, func(ns int64, rec []byte) error {
		if n++; n > 1 {
			return errTwoEntries
		}
		unixNano, record = ns, rec
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return unixNano, record, nil
}

// ErrBrokenEntries: NextEntry met bytes that are not one complete msgpack
// value; the rest of the chunk cannot be split. It matches
// wire.ErrMalformed.
var ErrBrokenEntries error = &codecError{msg: "jsonl: chunk entries truncated or malformed", is: wire.ErrMalformed}

// NextEntry splits the first entry off a chunk's concatenated entries,
// without allocating or checking that the entry is a valid Forward entry
// (AppendEntry and DecodeEntry do). It returns io.EOF when entries is
// empty and ErrBrokenEntries, with rest == entries, when it does not start
// with a complete msgpack value:
//
//	for rest := entries; ; {
//		entry, r, err := jsonl.NextEntry(rest)
//		if err != nil { break } // io.EOF at the end
//		rest = r
//		...
//	}
func NextEntry(entries []byte) (entry, rest []byte, err error) {
	if len(entries) == 0 {
		return nil, nil, io.EOF
	}
	rest, ok := wire.Skip(entries)
	if !ok {
		return nil, entries, ErrBrokenEntries
	}
	n := len(entries) - len(rest)
	return entries[:n:n], rest, nil
}

// AppendRawField appends the value of the top-level field key of record
// as it is, bytes unescaped and unchecked, for outputs whose payload is a
// single field (the raw log line). It reports false, with dst unchanged,
// if record is not a map, if key is absent (keys compared as str or bin
// only) or if its first occurrence's value is not a str or bin.
func AppendRawField(dst, record []byte, key string) ([]byte, bool) {
	pairs, rest, ok := wire.ReadMapHeader(record)
	if !ok {
		return dst, false
	}
	for range pairs {
		k, after, isStr := wire.ReadStrBin(rest)
		if isStr {
			if string(k) == key {
				v, _, ok := wire.ReadStrBin(after)
				if !ok {
					return dst, false
				}
				return append(dst, v...), true
			}
			rest = after
		} else if rest, ok = wire.Skip(rest); !ok {
			return dst, false
		}
		if rest, ok = wire.Skip(rest); !ok {
			return dst, false
		}
	}
	return dst, false
}

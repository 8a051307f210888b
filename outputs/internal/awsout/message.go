package awsout

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// Message builds the payload of one event: its record as one JSON object
// (format json) or the raw_key field's value (format raw). Immutable after
// NewMessage; safe for concurrent use.
type Message struct {
	json   *jsonl.Encoder
	rawKey string // "" for json
	// ValidUTF8 replaces each byte of a raw value that is not part of
	// valid UTF-8 by U+FFFD (as encoding/json and jsonl do), for services
	// that count and store text (CloudWatch Logs); JSON is always valid.
	validUTF8 bool
	fallback  *metrics.Counter
}

// MessageOptions configure a Message.
type MessageOptions struct {
	Format     string // "json" or "raw"
	RawKey     string
	TimeKey    string // "" adds no time field
	TimeFormat string // rfc3339nano, epoch_seconds, epoch_millis, epoch_nanos
	TagKey     string
	ValidUTF8  bool
	// Fallback, if set, counts the raw events sent as JSON (no raw_key
	// string field, or an empty one).
	Fallback *metrics.Counter
}

// NewMessage compiles o.
func NewMessage(o MessageOptions) (*Message, error) {
	jo := jsonl.Options{TimeKey: o.TimeKey, TagKey: o.TagKey, OmitTime: o.TimeKey == ""}
	switch o.TimeFormat {
	case "epoch_seconds":
		jo.TimeFormat = jsonl.EpochSeconds
	case "epoch_millis":
		jo.TimeFormat = jsonl.EpochMillis
	case "epoch_nanos":
		jo.TimeFormat = jsonl.EpochNanos
	}
	enc, err := jsonl.NewEncoder(jo)
	if err != nil {
		return nil, err
	}
	m := &Message{json: enc, validUTF8: o.ValidUTF8, fallback: o.Fallback}
	if o.Format == "raw" {
		m.rawKey = o.RawKey
	}
	return m, nil
}

// Append appends ev's payload to dst. Raw values lose one trailing "\n"
// (Docker's json-file lines end with one); a raw event without the field,
// or whose value is empty, is appended as JSON instead (counted in
// Fallback), so a payload is never empty. On error (a record that
// cannot be transcoded) dst comes back unchanged.
func (m *Message) Append(dst []byte, ev *delivery.Event) ([]byte, error) {
	if m.rawKey != "" {
		n := len(dst)
		if out, ok := jsonl.AppendRawField(dst, ev.Record, m.rawKey); ok {
			if len(out) > n && out[len(out)-1] == '\n' {
				out = out[:len(out)-1]
			}
			if len(out) > n {
				if m.validUTF8 && !utf8.Valid(out[n:]) {
					out = AppendValidUTF8(out[:n], bytes.Clone(out[n:])) // rare: not worth a scratch
				}
				return out, nil
			}
			dst = out[:n]
		}
		if m.fallback != nil {
			m.fallback.Inc()
		}
	}
	return m.json.AppendRecord(dst, ev.Tag, ev.Time, ev.Record)
}

// AppendValidUTF8 appends s to dst with every byte that is not part of a
// valid UTF-8 sequence replaced by U+FFFD, one per byte. s must not share
// memory with dst's spare capacity.
func AppendValidUTF8(dst, s []byte) []byte {
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[:size]...)
		}
		s = s[size:]
	}
	return dst
}

// TruncateUTF8 returns the length ≤ n at which b can be cut without
// splitting a UTF-8 sequence (b is valid UTF-8; for invalid bytes it
// backs off at most three).
func TruncateUTF8(b []byte, n int) int {
	if n >= len(b) {
		return len(b)
	}
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(b[n]); i++ {
		n--
	}
	return n
}

// Field is a compiled record field reference: a top-level key, or a
// dotted path into nested maps.
type Field struct {
	full []byte
	path [][]byte
}

// NewField compiles key ("level", "kubernetes.pod_name").
func NewField(key string) Field {
	f := Field{full: []byte(key)}
	if bytes.IndexByte(f.full, '.') >= 0 {
		f.path = bytes.Split(f.full, []byte("."))
	}
	return f
}

// Append appends the value of f in rec, a msgpack map: a top-level key
// equal to the whole key first, else the dotted path. Strings are taken
// as they are; integers, floats and booleans in their JSON spelling; any
// other value, or none, appends nothing and reports false.
func (f *Field) Append(dst, rec []byte) ([]byte, bool) {
	v, ok := lookup(rec, f.full)
	if !ok && len(f.path) > 1 {
		v, ok = rec, true
		for _, k := range f.path {
			if v, ok = lookup(v, k); !ok {
				break
			}
		}
	}
	if !ok || len(v) == 0 {
		return dst, false
	}
	switch msgp.NextType(v) {
	case msgp.StrType, msgp.BinType:
		if s, _, ok := wire.ReadStrBin(v); ok {
			return append(dst, s...), true
		}
	case msgp.IntType:
		if i, _, err := msgp.ReadInt64Bytes(v); err == nil {
			return strconv.AppendInt(dst, i, 10), true
		}
	case msgp.UintType:
		if u, _, err := msgp.ReadUint64Bytes(v); err == nil {
			return strconv.AppendUint(dst, u, 10), true
		}
	case msgp.BoolType:
		if b, _, err := msgp.ReadBoolBytes(v); err == nil {
			return strconv.AppendBool(dst, b), true
		}
	case msgp.Float64Type, msgp.Float32Type:
		if x, _, err := msgp.ReadFloat64Bytes(v); err == nil {
			return strconv.AppendFloat(dst, x, 'f', -1, 64), true
		}
	}
	return dst, false
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

package jsonl

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

// This file holds the test oracle: a slow, recursive msgpack-to-Go-value
// reader built on tinylib/msgp's readers (not on the code under test),
// whose values encoding/json marshals into what the transcoder must mean.

var errRef = errors.New("ref: not transcodable")

// refValue reads the first value of b as a Go value encoding/json
// marshals the way the package's rules say: strings (invalid UTF-8 is
// replaced by json.Marshal, per byte, as the package does), int64/uint64,
// float32/float64 (nil for NaN, Inf), time strings, []byte for other ext
// payloads (base64), map[string]any and []any.
func refValue(b []byte, depth int, trim bool) (any, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.StrType:
		s, rest, err := msgp.ReadStringZC(b)
		return string(s), rest, err
	case msgp.BinType:
		s, rest, err := msgp.ReadBytesZC(b)
		return string(s), rest, err
	case msgp.IntType:
		return msgp.ReadInt64Bytes(b)
	case msgp.UintType:
		return msgp.ReadUint64Bytes(b)
	case msgp.Float32Type:
		f, rest, err := msgp.ReadFloat32Bytes(b)
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, rest, err
		}
		return f, rest, err
	case msgp.Float64Type:
		f, rest, err := msgp.ReadFloat64Bytes(b)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, rest, err
		}
		return f, rest, err
	case msgp.NilType:
		rest, err := msgp.ReadNilBytes(b)
		return nil, rest, err
	case msgp.BoolType:
		return msgp.ReadBoolBytes(b)
	case msgp.ArrayType:
		if depth >= MaxDepth {
			return nil, b, errRef
		}
		n, rest, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		a := []any{}
		for range n {
			var v any
			if v, rest, err = refValue(rest, depth+1, trim); err != nil {
				return nil, b, err
			}
			a = append(a, v)
		}
		return a, rest, nil
	case msgp.MapType:
		if depth >= MaxDepth {
			return nil, b, errRef
		}
		n, rest, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		m := map[string]any{}
		for range n {
			var k string
			switch msgp.NextType(rest) {
			case msgp.StrType, msgp.BinType:
				var kb []byte
				kb, rest, err = msgp.ReadMapKeyZC(rest)
				k = string(kb)
			case msgp.IntType:
				var i int64
				i, rest, err = msgp.ReadInt64Bytes(rest)
				k = strconv.FormatInt(i, 10)
			case msgp.UintType:
				var u uint64
				u, rest, err = msgp.ReadUint64Bytes(rest)
				k = strconv.FormatUint(u, 10)
			case msgp.BoolType:
				var t bool
				t, rest, err = msgp.ReadBoolBytes(rest)
				k = strconv.FormatBool(t)
			default:
				return nil, b, errRef
			}
			if err != nil {
				return nil, b, err
			}
			var v any
			if v, rest, err = refValue(rest, depth+1, trim); err != nil {
				return nil, b, err
			}
			m[string([]rune(k))] = v // invalid bytes read as U+FFFD each, as written
		}
		return m, rest, nil
	case msgp.ExtensionType, msgp.TimeType, msgp.Complex64Type, msgp.Complex128Type:
		typ, data, rest, err := refExt(b)
		if err != nil {
			return nil, b, err
		}
		return refExtValue(typ, data, trim), rest, nil
	}
	return nil, b, errRef
}

// refExt splits an ext value by the msgpack spec's table.
func refExt(b []byte) (typ int8, data, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, msgp.ErrShortBytes
	}
	var hdr, size int
	switch b[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		hdr, size = 2, map[byte]int{0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}[b[0]]
	case 0xc7:
		hdr, size = 3, int(b[1])
	case 0xc8:
		if len(b) < 4 {
			return 0, nil, nil, msgp.ErrShortBytes
		}
		hdr, size = 4, int(binary.BigEndian.Uint16(b[1:]))
	case 0xc9:
		if len(b) < 6 {
			return 0, nil, nil, msgp.ErrShortBytes
		}
		hdr, size = 6, int(binary.BigEndian.Uint32(b[1:]))
	}
	if len(b) < hdr || len(b)-hdr < size {
		return 0, nil, nil, msgp.ErrShortBytes
	}
	return int8(b[hdr-1]), b[hdr : hdr+size], b[hdr+size:], nil
}

func refExtValue(typ int8, data []byte, trim bool) any {
	var sec, nsec int64
	ok := false
	switch {
	case typ == 0 && len(data) == 8:
		sec, nsec, ok = int64(binary.BigEndian.Uint32(data)), int64(binary.BigEndian.Uint32(data[4:])), true
	case typ == -1 && len(data) == 4:
		sec, ok = int64(binary.BigEndian.Uint32(data)), true
	case typ == -1 && len(data) == 8:
		v := binary.BigEndian.Uint64(data)
		sec, nsec, ok = int64(v&(1<<34-1)), int64(v>>34), true
	case typ == -1 && len(data) == 12:
		nsec, sec, ok = int64(binary.BigEndian.Uint32(data)), int64(binary.BigEndian.Uint64(data[4:])), true
	}
	if !ok || nsec >= 1e9 {
		return append([]byte{}, data...) // marshalled as base64
	}
	return refTime(sec, nsec, trim)
}

func refTime(sec, nsec int64, trim bool) string {
	layout := "2006-01-02T15:04:05.000000000Z07:00"
	if trim {
		layout = time.RFC3339Nano
	}
	return time.Unix(sec, nsec).UTC().Format(layout)
}

// refRecord is the value an Encoder with OmitTime and no tag must write
// for record, or an error if it must refuse it.
func refRecord(record []byte, trim bool) (any, error) {
	if msgp.NextType(record) != msgp.MapType {
		return nil, errRef
	}
	v, rest, err := refValue(record, 0, trim)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errRef
	}
	return v, nil
}

// decodeJSON decodes one JSON value keeping numbers as text.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one value")
	}
	return v, nil
}

// sameJSON reports whether got means the same as want (a Go value, put
// through json.Marshal first), numbers compared by their text.
func sameJSON(got []byte, want any) error {
	wb, err := json.Marshal(want)
	if err != nil {
		return fmt.Errorf("marshal want: %v", err)
	}
	g, err := decodeJSON(got)
	if err != nil {
		return fmt.Errorf("decode %q: %v", got, err)
	}
	w, err := decodeJSON(wb)
	if err != nil {
		return fmt.Errorf("decode want: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		return fmt.Errorf("got  %s\nwant %s", got, wb)
	}
	return nil
}

// refString is the slow escaper AppendString must agree with byte for
// byte.
func refString(s []byte) []byte {
	out := []byte{'"'}
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case r == '"' || r == '\\':
			out = append(out, '\\', byte(r))
		case r == '\n':
			out = append(out, `\n`...)
		case r == '\r':
			out = append(out, `\r`...)
		case r == '\t':
			out = append(out, `\t`...)
		case r == '\b':
			out = append(out, `\b`...)
		case r == '\f':
			out = append(out, `\f`...)
		case r < 0x20:
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, s[:n]...)
		}
		s = s[n:]
	}
	return append(out, '"')
}

package parse

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
	"github.com/tinylib/msgp/msgp"
)

// checkContract fails t unless p, after a Parse of line that returned ok,
// keeps the Parser contract: false holds nothing; true holds Len valid
// msgpack key/value pairs and nothing else, str keys, no key twice, none
// in skip, and Value agrees with Pairs.
func checkContract(t testing.TB, p Parser, line []byte, ok bool, skip *record.Keys) {
	t.Helper()
	if !ok {
		if p.Len() != 0 || len(p.Pairs()) != 0 {
			t.Fatalf("%q rejected but %d fields held (%x)", line, p.Len(), p.Pairs())
		}
		if _, has := p.Time(); has {
			t.Fatalf("%q rejected but a time held", line)
		}
		return
	}
	b := p.Pairs()
	seen := map[string]bool{}
	for i := 0; i < p.Len(); i++ {
		k, rest, err := msgp.ReadStringZC(b)
		if err != nil {
			t.Fatalf("%q: pair %d: key: %v (%x)", line, i, err, p.Pairs())
		}
		after, err := msgp.Skip(rest)
		if err != nil {
			t.Fatalf("%q: pair %d (%q): value: %v", line, i, k, err)
		}
		if seen[string(k)] {
			t.Fatalf("%q: key %q held twice", line, k)
		}
		if skip.Has(k) {
			t.Fatalf("%q: skipped key %q held", line, k)
		}
		seen[string(k)] = true
		v := rest[:len(rest)-len(after)]
		if got, found := p.Value(k); !found || !bytes.Equal(got, v) {
			t.Fatalf("%q: Value(%q) = %x %v, pairs hold %x", line, k, got, found, v)
		}
		b = after
	}
	if len(b) != 0 {
		t.Fatalf("%q: %d bytes after %d pairs", line, len(b), p.Len())
	}
	if _, found := p.Value([]byte("no such key, surely")); found {
		t.Fatalf("%q: Value found a key not held", line)
	}
}

// resultJSON renders what p holds after a Parse as one golden line:
// {"ok":false}, or {"ok":true,"time":"RFC 3339 UTC","fields":{...}} with
// the fields in their order.
func resultJSON(t testing.TB, p Parser, ok bool) string {
	t.Helper()
	if !ok {
		return `{"ok":false}`
	}
	var w bytes.Buffer
	w.WriteString(`{"ok":true`)
	if ts, has := p.Time(); has {
		w.WriteString(`,"time":`)
		writeJSONString(&w, time.Unix(0, ts).UTC().Format(time.RFC3339Nano))
	}
	w.WriteString(`,"fields":{`)
	b := p.Pairs()
	for i := 0; i < p.Len(); i++ {
		k, rest, err := msgp.ReadStringZC(b)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			w.WriteByte(',')
		}
		writeJSONString(&w, string(k))
		w.WriteByte(':')
		if b, err = writeJSONValue(&w, rest); err != nil {
			t.Fatal(err)
		}
	}
	w.WriteString("}}")
	return w.String()
}

func writeJSONString(w *bytes.Buffer, s string) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	w.Truncate(w.Len() - 1) // Encode's newline
}

// writeJSONValue writes the msgpack value at the start of b as JSON (a
// msgpack timestamp as {"$time":"RFC 3339"}) and returns the rest of b.
func writeJSONValue(w *bytes.Buffer, b []byte) ([]byte, error) {
	switch msgp.NextType(b) {
	case msgp.StrType:
		s, rest, err := msgp.ReadStringZC(b)
		writeJSONString(w, string(s))
		return rest, err
	case msgp.IntType:
		n, rest, err := msgp.ReadInt64Bytes(b)
		w.WriteString(strconv.FormatInt(n, 10))
		return rest, err
	case msgp.UintType:
		n, rest, err := msgp.ReadUint64Bytes(b)
		w.WriteString(strconv.FormatUint(n, 10))
		return rest, err
	case msgp.Float64Type, msgp.Float32Type:
		f, rest, err := msgp.ReadFloat64Bytes(b)
		w.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		return rest, err
	case msgp.BoolType:
		v, rest, err := msgp.ReadBoolBytes(b)
		w.WriteString(strconv.FormatBool(v))
		return rest, err
	case msgp.NilType:
		rest, err := msgp.ReadNilBytes(b)
		w.WriteString("null")
		return rest, err
	case msgp.MapType:
		n, rest, err := msgp.ReadMapHeaderBytes(b)
		w.WriteByte('{')
		for i := uint32(0); i < n && err == nil; i++ {
			if i > 0 {
				w.WriteByte(',')
			}
			var k []byte
			if k, rest, err = msgp.ReadStringZC(rest); err == nil {
				writeJSONString(w, string(k))
				w.WriteByte(':')
				rest, err = writeJSONValue(w, rest)
			}
		}
		w.WriteByte('}')
		return rest, err
	case msgp.ArrayType:
		n, rest, err := msgp.ReadArrayHeaderBytes(b)
		w.WriteByte('[')
		for i := uint32(0); i < n && err == nil; i++ {
			if i > 0 {
				w.WriteByte(',')
			}
			rest, err = writeJSONValue(w, rest)
		}
		w.WriteByte(']')
		return rest, err
	}
	if ts, rest, ok := readTimestamp(b); ok {
		w.WriteString(`{"$time":`)
		writeJSONString(w, time.Unix(0, ts).UTC().Format(time.RFC3339Nano))
		w.WriteByte('}')
		return rest, nil
	}
	return nil, msgp.TypeError{Encoded: msgp.NextType(b)}
}

// readTimestamp reads a msgpack timestamp (ext -1) of 8 or 12 bytes.
func readTimestamp(b []byte) (int64, []byte, bool) {
	switch {
	case len(b) >= 10 && b[0] == 0xd7 && b[1] == 0xff:
		v := binary.BigEndian.Uint64(b[2:])
		return int64(v&(1<<34-1))*1e9 + int64(v>>34), b[10:], true
	case len(b) >= 15 && b[0] == 0xc7 && b[1] == 12 && b[2] == 0xff:
		ns := int64(binary.BigEndian.Uint32(b[3:]))
		return int64(binary.BigEndian.Uint64(b[7:]))*1e9 + ns, b[15:], true
	}
	return 0, nil, false
}

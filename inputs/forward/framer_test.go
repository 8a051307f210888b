package forward

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// TestFramerResumable feeds the all-modes stream one byte at a time and
// checks the framer reports exactly each request's end, never rescanning
// from the start (its state only moves forward).
func TestFramerResumable(t *testing.T) {
	stream, _, _ := allModesStream(t)
	var ends []int
	for off := 0; off < len(stream); {
		n, ok := valueLen(stream[off:])
		if !ok {
			t.Fatalf("stream does not parse at %d", off)
		}
		off += n
		ends = append(ends, off)
	}
	var f framer
	start, got := 0, []int(nil)
	for end := start + 1; end <= len(stream); end++ {
		before := f.p
		n, ok, err := f.next(stream[start:end], 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if f.p < before {
				t.Fatalf("framer went back from %d to %d", before, f.p)
			}
			continue
		}
		start += n
		got = append(got, start)
		end = start
	}
	if len(got) != len(ends) {
		t.Fatalf("ends %v, want %v", got, ends)
	}
	for i := range ends {
		if got[i] != ends[i] {
			t.Fatalf("ends %v, want %v", got, ends)
		}
	}
}

func TestFramerLimits(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 100000) // [[[[...]]]]: each level one byte
	for _, tc := range []struct {
		name  string
		b     []byte
		limit int
		err   error
	}{
		{"bin32 announces 100 MiB", []byte{0xc6, 0x06, 0x40, 0x00, 0x00}, 1 << 20, errFrameTooLarge},
		{"str32 header cut", []byte{0xdb, 0x00}, 1 << 20, nil},
		{"array32 of 1M", []byte{0xdd, 0x00, 0x10, 0x00, 0x00}, 1 << 16, errFrameTooLarge},
		{"map16 of 40000 pairs", []byte{0xde, 0x9c, 0x40}, 1 << 16, errFrameTooLarge},
		{"deep nesting over the cap", deep, 1 << 16, errFrameTooLarge},
		{"reserved 0xc1", []byte{0x92, 0xc1}, 1 << 20, errFrameMalformed},
		{"ext32 announces 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x00}, 1 << 20, errFrameTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f framer
			_, ok, err := f.next(tc.b, tc.limit)
			if !errors.Is(err, tc.err) || (tc.err == nil && ok) {
				t.Fatalf("ok=%v err=%v, want %v", ok, err, tc.err)
			}
		})
	}
	// Deep nesting under the cap is fine and costs no stack.
	v := append(bytes.Repeat([]byte{0x91}, 100000), 0xc0)
	var f framer
	if n, ok, err := f.next(v, 1<<20); !ok || err != nil || n != len(v) {
		t.Fatalf("deep value: %d %v %v", n, ok, err)
	}
	// Every ext and fixed-size form.
	var all []byte
	all, _ = msgp.AppendExtension(all, &rawExt{t: 5, d: make([]byte, 300)})
	all = msgp.AppendFloat32(all, 1.5)
	all = msgp.AppendFloat64(all, 2.5)
	all = msgp.AppendInt64(all, -1<<40)
	all = msgp.AppendUint64(all, 1<<63)
	for _, v := range []int{1, 2, 4, 8, 16, 3, 70000} {
		all, _ = msgp.AppendExtension(all, &rawExt{t: 1, d: make([]byte, v)})
	}
	for off := 0; off < len(all); {
		var f framer
		n, ok, err := f.next(all[off:], 1<<20)
		m, _ := msgp.Skip(all[off:])
		if !ok || err != nil || n != len(all[off:])-len(m) {
			t.Fatalf("at %d: %d %v %v, msgp says %d", off, n, ok, err, len(all[off:])-len(m))
		}
		off += n
	}
}

type rawExt struct {
	t int8
	d []byte
}

func (e *rawExt) ExtensionType() int8            { return e.t }
func (e *rawExt) Len() int                       { return len(e.d) }
func (e *rawExt) MarshalBinaryTo(b []byte) error { copy(b, e.d); return nil }
func (e *rawExt) UnmarshalBinary(b []byte) error { e.d = append(e.d[:0], b...); return nil }

package wire

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func TestAppendEventTime(t *testing.T) {
	tests := map[string]struct {
		ns   int64
		want string
	}{
		"epoch":           {0, "d7 00 00000000 00000000"},
		"1700000000.123":  {1700000000123456789, "d7 00 6553f100 075bcd15"},
		"after 2038":      {0xf0000000*1e9 + 1, "d7 00 f0000000 00000001"},
		"before 1970":     {-1, "d7 00 ffffffff 3b9ac9ff"}, // -1 s + 999999999 ns, seconds wrap
		"max nanoseconds": {999999999, "d7 00 00000000 3b9ac9ff"},
	}
	for name, tc := range tests {
		if got := AppendEventTime(nil, tc.ns); !bytes.Equal(got, unhex(t, tc.want)) {
			t.Errorf("%s: % x, want %s", name, got, tc.want)
		}
	}
}

func TestForEachEntry(t *testing.T) {
	var stream []byte
	records := [][]byte{rec("a", "1"), nonUTF8, record200()}
	for i, r := range records {
		stream = AppendEntry(stream, int64(i+1)*1e9+7, r)
	}
	i := 0
	err := ForEachEntry(stream, func(ns int64, r []byte) error {
		if ns != int64(i+1)*1e9+7 || !bytes.Equal(r, records[i]) {
			t.Errorf("entry %d = %d %x", i, ns, r)
		}
		i++
		return nil
	})
	if err != nil || i != 3 {
		t.Fatalf("ForEachEntry: %d entries, err %v", i, err)
	}
	for name, bad := range map[string][]byte{
		"truncated":      stream[:len(stream)-1],
		"invalid entry":  append(bytes.Clone(stream), 0x92, 0x01, 0x01),
		"not an entry":   append(bytes.Clone(stream), 0x01),
		"reserved byte":  append(bytes.Clone(stream), 0xc1),
		"record not map": AppendEntry(nil, 1, str("x")),
	} {
		if err := ForEachEntry(bad, func(int64, []byte) error { return nil }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	stop := errors.New("stop")
	if err := ForEachEntry(stream, func(int64, []byte) error { return stop }); err != stop {
		t.Errorf("callback error: %v", err)
	}
}

func TestLookupString(t *testing.T) {
	withInt := msgp.AppendInt(msgp.AppendString(msgp.AppendMapHeader(nil, 2), "n"), 5)
	withInt = msgp.AppendString(msgp.AppendString(withInt, "s"), "v")
	binKey := msgp.AppendBytes(msgp.AppendBytes(msgp.AppendMapHeader(nil, 1), []byte("k")), []byte("bv"))
	nested := msgp.AppendMapHeader(nil, 2)
	nested = msgp.AppendString(nested, "kubernetes")
	nested = append(nested, rec("pod", "web-0", "ns", "default")...)
	nested = msgp.AppendString(msgp.AppendString(nested, "stream"), "stderr")
	map16 := msgp.AppendMapHeader(nil, 20)
	for range 19 {
		map16 = msgp.AppendString(msgp.AppendString(map16, "x"), "y")
	}
	map16 = msgp.AppendString(msgp.AppendString(map16, "last"), "found")
	tests := map[string]struct {
		record []byte
		key    string
		want   string
		ok     bool
	}{
		"first key":          {rec("a", "1", "b", "2"), "a", "1", true},
		"last key":           {rec("a", "1", "b", "2"), "b", "2", true},
		"absent":             {rec("a", "1"), "z", "", false},
		"int value":          {withInt, "n", "", false},
		"after int value":    {withInt, "s", "v", true},
		"bin key and value":  {binKey, "k", "bv", true},
		"after nested map":   {nested, "stream", "stderr", true},
		"nested not visited": {nested, "pod", "", false},
		"map value":          {nested, "kubernetes", "", false},
		"duplicate first":    {rec("a", "1", "a", "2"), "a", "1", true},
		"map16":              {map16, "last", "found", true},
		"non-UTF-8":          {nonUTF8, "\xffk", "\xc3\x28\xfe\xff\x00", true},
		"empty value":        {rec("a", ""), "a", "", true},
		"not a map":          {str("a"), "a", "", false},
		"empty":              {nil, "a", "", false},
		"truncated":          {rec("a", "1", "b", "2")[:8], "b", "", false},
		"count too large":    {[]byte{0x85, 0xa1, 'a', 0xa1, '1'}, "b", "", false},
	}
	for name, tc := range tests {
		v, ok := LookupString(tc.record, []byte(tc.key))
		if ok != tc.ok || string(v) != tc.want {
			t.Errorf("%s: %q %v, want %q %v", name, v, ok, tc.want, tc.ok)
		}
	}
	r := record200()
	if allocs := testing.AllocsPerRun(100, func() { LookupString(r, []byte("log")) }); allocs != 0 {
		t.Errorf("LookupString: %.1f allocs", allocs)
	}
}

func TestAppendPackedForwardRoundTrip(t *testing.T) {
	var entries []byte
	for i := range 50 {
		entries = AppendEntry(entries, int64(i+1)*1e9, record200())
	}
	g, err := NewGzipper(1)
	if err != nil {
		t.Fatal(err)
	}
	id := ChunkID(NewChunkID("out-1", 3, 4096))
	tests := map[string]struct {
		payload []byte
		o       Options
		mode    Mode
	}{
		"plain no ack": {entries, Options{Size: 50}, ModePackedForward},
		"plain ack":    {entries, Options{Size: 50, Chunk: id}, ModePackedForward},
		"gzip ack":     {g.Compress(nil, entries), Options{Size: 50, Chunk: id, Compressed: true}, ModeCompressedPackedForward},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := AppendPackedForward(nil, []byte("app.web"), tc.payload, tc.o)
			split := append(AppendPackedForwardHeader(nil, []byte("app.web"), len(tc.payload)), tc.payload...)
			if !bytes.Equal(AppendOptions(split, tc.o), b) {
				t.Fatal("header + entries + options differs from AppendPackedForward")
			}
			req, n, err := ReadRequest(b, 0)
			if err != nil || n != len(b) || req.Mode != tc.mode || string(req.Tag) != "app.web" || req.Size != 50 ||
				string(req.Chunk) != tc.o.Chunk || (tc.o.Chunk == "") != (req.Chunk == nil) {
				t.Fatalf("ReadRequest: %+v n %d err %v", req, n, err)
			}
			var got []byte
			_, invalid, err := req.Events(nil, 0, func(ns int64, r []byte) error {
				got = AppendEntry(got, ns, r)
				return nil
			})
			if err != nil || invalid != 0 || !bytes.Equal(got, entries) {
				t.Errorf("events differ: invalid %d err %v", invalid, err)
			}
		})
	}
}

func TestGzipper(t *testing.T) {
	src := bytes.Repeat(record200(), 200)
	for _, level := range []int{1, 5, 9, -1} {
		g, err := NewGzipper(level)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		prefix := []byte("keep")
		out := g.Compress(bytes.Clone(prefix), src)
		out = g.Compress(out, src[:100]) // a second member appended
		if !bytes.HasPrefix(out, prefix) {
			t.Fatal("Compress overwrote dst")
		}
		// Standard library reader, multistream by default.
		r, err := stdgzip.NewReader(bytes.NewReader(out[len(prefix):]))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, append(bytes.Clone(src), src[:100]...)) {
			t.Errorf("level %d: round trip failed: %v", level, err)
		}
		if h := out[len(prefix):][:10]; !bytes.Equal(h[:4], []byte{0x1f, 0x8b, 8, 0}) || h[9] != 0xff {
			t.Errorf("level %d: gzip header % x", level, h)
		}
	}
	if _, err := NewGzipper(42); err == nil {
		t.Error("NewGzipper(42) succeeded")
	}
	g, _ := NewGzipper(1)
	dst := make([]byte, 0, 1<<20)
	if allocs := testing.AllocsPerRun(20, func() { dst = g.Compress(dst[:0], src) }); allocs != 0 {
		t.Errorf("Compress: %.1f allocs in steady state", allocs)
	}
}

func TestChunkID(t *testing.T) {
	a := NewChunkID("out-1", 1, 0)
	if a != NewChunkID("out-1", 1, 0) {
		t.Error("NewChunkID is not deterministic")
	}
	for _, other := range [][16]byte{NewChunkID("out-2", 1, 0), NewChunkID("out-1", 2, 0), NewChunkID("out-1", 1, 1), NewChunkID("out-1\x00", 1, 0)} {
		if other == a {
			t.Error("different positions share a chunk id")
		}
	}
	s := ChunkID(a)
	dec, err := base64.StdEncoding.DecodeString(s)
	if len(s) != 24 || err != nil || !bytes.Equal(dec, a[:]) {
		t.Errorf("ChunkID = %q (%v)", s, err)
	}
	// The §1.9 all-zero id.
	if got := ChunkID([16]byte{}); got != "AAAAAAAAAAAAAAAAAAAAAA==" {
		t.Errorf("ChunkID(zero) = %q", got)
	}
}

func TestParseAck(t *testing.T) {
	chunk := "ZhF11bI0gbYi+4HID7870g==\n"
	reordered := msgp.AppendMapHeader(nil, 3)
	reordered = msgp.AppendString(msgp.AppendInt(msgp.AppendString(reordered, "x"), 1), "extra")
	reordered = append(reordered, rec("n", "m")...)
	reordered = msgp.AppendString(msgp.AppendString(reordered, "ack"), chunk)
	binAck := msgp.AppendBytes(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "ack"), []byte(chunk))
	tests := map[string]struct {
		b     []byte
		chunk string
		n     int
		err   error
	}{
		"ours":             {AppendAck(nil, []byte(chunk)), chunk, 31, nil},
		"followed by more": {append(AppendAck(nil, []byte("c")), 0x81), "c", 7, nil},
		"other keys first": {reordered, chunk, len(reordered), nil},
		"bin value":        {binAck, chunk, len(binAck), nil},
		"empty":            {nil, "", 0, ErrShort},
		"split":            {AppendAck(nil, []byte(chunk))[:10], "", 0, ErrShort},
		"not a map":        {str("ack"), "", 4, ErrUnexpected},
		"no ack key":       {rec("nack", "x"), "", 8, ErrUnexpected},
		"ack not str":      {msgp.AppendInt(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "ack"), 1), "", 6, ErrUnexpected},
		"huge":             {[]byte{mMap32, 0, 1, 0, 0, 0xa3, 'a', 'c', 'k', mStr32, 0, 0, 0x10, 0}, "", 0, ErrTooLarge},
		"reserved":         {[]byte{0xc1}, "", 0, ErrMalformed},
	}
	for name, tc := range tests {
		c, n, err := ParseAck(tc.b)
		if !errors.Is(err, tc.err) || n != tc.n || string(c) != tc.chunk {
			t.Errorf("%s: %q n %d err %v; want %q n %d err %v", name, c, n, err, tc.chunk, tc.n, tc.err)
		}
	}
}

func TestAckStrWidths(t *testing.T) {
	for _, size := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		chunk := bytes.Repeat([]byte{'x'}, size)
		b := AppendAck(nil, chunk)
		if want := msgp.AppendStringFromBytes([]byte{0x81, 0xa3, 'a', 'c', 'k'}, chunk); !bytes.Equal(b, want) {
			t.Errorf("size %d: ack header % x", size, b[:min(len(b), 10)])
		}
		if size < maxAckBytes-16 {
			if c, n, err := ParseAck(b); err != nil || n != len(b) || !bytes.Equal(c, chunk) {
				t.Errorf("size %d: ParseAck n %d err %v", size, n, err)
			}
		}
	}
}

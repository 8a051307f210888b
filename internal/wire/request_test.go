package wire

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/tinylib/msgp/msgp"
)

// timeEncodings returns every accepted encoding of a time, with the expected
// nanoseconds.
func timeEncodings() map[string]struct {
	enc []byte
	ns  int64
} {
	const s = 1767366245
	ext := []byte{0x69, 0x57, 0xde, 0x65, 0x07, 0x5b, 0xcd, 0x15} // 1767366245 s, 123456789 ns
	const extNs = s*1e9 + 123456789
	return map[string]struct {
		enc []byte
		ns  int64
	}{
		"positive fixint":      {[]byte{0x7f}, 127e9},
		"negative fixint":      {[]byte{0xff}, -1e9},
		"uint8":                {[]byte{mUint8, 200}, 200e9},
		"uint16":               {[]byte{mUint16, 0xff, 0xff}, 65535e9},
		"uint32":               {[]byte{mUint32, 0x69, 0x57, 0xde, 0x65}, s * 1e9},
		"uint64":               {[]byte{mUint64, 0, 0, 0, 0, 0x69, 0x57, 0xde, 0x65}, s * 1e9},
		"int8":                 {[]byte{mInt8, 100}, 100e9},
		"int16":                {[]byte{mInt16, 0x7f, 0xff}, 32767e9},
		"int32":                {[]byte{mInt32, 0x69, 0x57, 0xde, 0x65}, s * 1e9},
		"int64":                {[]byte{mInt64, 0, 0, 0, 0, 0x69, 0x57, 0xde, 0x65}, s * 1e9},
		"uint32 after 2038":    {[]byte{mUint32, 0x90, 0, 0, 0}, 0x90000000 * 1e9},
		"fixext8":              {append([]byte{mFixExt8, 0}, ext...), extNs},
		"ext8":                 {append([]byte{mExt8, 8, 0}, ext...), extNs},
		"ext16":                {append([]byte{mExt16, 0, 8, 0}, ext...), extNs},
		"ext32":                {append([]byte{mExt32, 0, 0, 0, 8, 0}, ext...), extNs},
		"EventTime after 2038": {[]byte{mFixExt8, 0, 0xf0, 0, 0, 0, 0, 0, 0, 1}, 0xf0000000*1e9 + 1},
		"array [time, meta]":   {append(append([]byte{0x92, mFixExt8, 0}, ext...), 0x80), extNs},
	}
}

func TestTimeEncodings(t *testing.T) {
	record := rec("log", "x")
	for name, tc := range timeEncodings() {
		t.Run(name, func(t *testing.T) {
			for _, form := range []string{"message", "forward", "packed"} {
				if form == "message" && isArray(tc.enc[0]) {
					continue // [tag, array, ...] is Forward mode by definition
				}
				var b []byte
				entry := append(append([]byte{0x92}, tc.enc...), record...)
				switch form {
				case "message":
					b = append(append(append([]byte{0x93}, str("t")...), tc.enc...), record...)
				case "forward":
					b = arr(str("t"), arr(entry))
				case "packed":
					b = arr(str("t"), strN("bin8", entry))
				}
				req, n, err := ReadRequest(b, 0)
				if err != nil || n != len(b) {
					t.Fatalf("%s: ReadRequest: n %d err %v", form, n, err)
				}
				evs, invalid, err := collect(t, &req, 0)
				if err != nil || invalid != 0 || len(evs) != 1 {
					t.Fatalf("%s: Events: %d events, invalid %d, err %v", form, len(evs), invalid, err)
				}
				if evs[0].ns != tc.ns || !bytes.Equal(evs[0].record, record) {
					t.Errorf("%s: event = %d %x, want %d", form, evs[0].ns, evs[0].record, tc.ns)
				}
			}
		})
	}
}

func TestTimeZeroIsNow(t *testing.T) {
	for name, enc := range map[string][]byte{
		"int 0":              {0x00},
		"EventTime 0":        {mFixExt8, 0, 0, 0, 0, 0, 0, 0, 0, 5},
		"[int 0, metadata]":  {0x92, 0x00, 0x80},
		"uint32 0 (ce form)": {mUint32, 0, 0, 0, 0},
	} {
		entry := append(append([]byte{0x92}, enc...), rec("a", "b")...)
		b := arr(str("t"), strN("bin8", entry))
		before := time.Now().UnixNano()
		req, _, err := ReadRequest(b, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		evs, invalid, err := collect(t, &req, 0)
		after := time.Now().UnixNano()
		if err != nil || invalid != 0 || len(evs) != 1 || evs[0].ns < before || evs[0].ns > after {
			t.Errorf("%s: events %v invalid %d err %v, want one event in [%d, %d]", name, evs, invalid, err, before, after)
		}
	}
}

func TestInvalidEventsCountedAndAcked(t *testing.T) {
	good := rec("log", "ok")
	t0 := []byte{mUint32, 0x65, 0x53, 0xf1, 0x00}
	opt := rec("chunk", "c1")
	entry := func(tm, r []byte) []byte { return append(append([]byte{0x92}, tm...), r...) }
	tests := map[string]struct {
		req     []byte
		valid   int
		invalid int
	}{
		"message time float": {append(append(append(append([]byte{0x94}, str("t")...), 0xcb, 0, 0, 0, 0, 0, 0, 0, 0), good...), opt...), 0, 1},
		"message time nil":   {append(append(append(append([]byte{0x94}, str("t")...), mNil), good...), opt...), 0, 1},
		"message time bool":  {append(append(append(append([]byte{0x94}, str("t")...), mTrue), good...), opt...), 0, 1},
		"message time map":   {append(append(append(append([]byte{0x94}, str("t")...), 0x80), good...), opt...), 0, 1},
		"message ext type 1": {append(append(append(append([]byte{0x94}, str("t")...), mFixExt8, 1, 0, 0, 0, 1, 0, 0, 0, 0), good...), opt...), 0, 1},
		"message fixext4 0":  {append(append(append(append([]byte{0x94}, str("t")...), 0xd6, 0, 0, 0, 0, 1), good...), opt...), 0, 1},
		"message record str": {append(append(append(append([]byte{0x94}, str("t")...), t0...), str("notamap")...), opt...), 0, 1},
		"message record arr": {append(append(append(append([]byte{0x94}, str("t")...), t0...), 0x90), opt...), 0, 1},
		"message tag int":    {append(append(append(append([]byte{0x94}, 0x01), t0...), good...), opt...), 0, 1},
		"message no record":  {append(append([]byte{0x92}, str("t")...), t0...), 0, 1},
		"forward mixed": {arr(str("t"), arr(
			entry(t0, good), entry(t0, str("x")), str("not an entry"), []byte{0x91, 0x01},
			entry([]byte{0xcb, 0, 0, 0, 0, 0, 0, 0, 0}, good), append(append([]byte{0x93, 0x01}, good...), 0x01), entry(t0, good),
		), opt), 3, 4},
		"forward [[nil, meta], r]": {arr(str("t"), arr(entry([]byte{0x92, mNil, 0x80}, good)), opt), 0, 1},
		"forward [[[t]], r]":       {arr(str("t"), arr(entry(append([]byte{0x91, 0x91}, t0...), good)), opt), 0, 1},
		"forward tag nil":          {arr([]byte{mNil}, arr(entry(t0, good), entry(t0, good)), opt), 0, 2},
		"packed mixed": {arr(str("t"), strN("bin16", bytes.Join([][]byte{
			entry(t0, good), entry(t0, []byte{0x01}), {0x01}, entry(t0, good),
		}, nil)), opt), 2, 2},
		"packed tag bin": {arr(strN("bin8", []byte("t")), strN("bin8", entry(t0, good)), opt), 1, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, n, err := ReadRequest(tc.req, 0)
			if err != nil || n != len(tc.req) {
				t.Fatalf("ReadRequest: n %d/%d, err %v", n, len(tc.req), err)
			}
			evs, invalid, err := collect(t, &req, 0)
			if err != nil || len(evs) != tc.valid || invalid != tc.invalid {
				t.Fatalf("Events: %d valid, %d invalid, err %v; want %d, %d", len(evs), invalid, err, tc.valid, tc.invalid)
			}
			for _, ev := range evs {
				if !bytes.Equal(ev.record, good) {
					t.Errorf("record %x, want %x", ev.record, good)
				}
			}
			if name != "message no record" && string(req.Chunk) != "c1" {
				t.Errorf("chunk = %q, want c1 (invalid events are still acked)", req.Chunk)
			}
		})
	}
}

// nonUTF8 is a record with bytes that are not UTF-8 in a key and a value.
var nonUTF8 = append(append(msgp.AppendMapHeader(nil, 1), strN("fixstr", []byte{0xff, 'k'})...), strN("str8", []byte{0xc3, 0x28, 0xfe, 0xff, 0x00})...)

func TestPackedEntryEncodings(t *testing.T) {
	var stream []byte
	for i := range 3 {
		stream = AppendEntry(stream, int64(i+1)*1e9, nonUTF8)
	}
	for _, kind := range []string{"bin8", "bin16", "bin32", "str8", "str16", "str32"} {
		t.Run(kind, func(t *testing.T) {
			b := arr(str("tag"), strN(kind, stream), rec("size", "x"))
			req, n, err := ReadRequest(b, 0)
			if err != nil || n != len(b) || req.Mode != ModePackedForward {
				t.Fatalf("ReadRequest: mode %v n %d err %v", req.Mode, n, err)
			}
			evs, invalid, err := collect(t, &req, 0)
			if err != nil || invalid != 0 || len(evs) != 3 {
				t.Fatalf("Events: %d events, invalid %d, err %v", len(evs), invalid, err)
			}
			for i, ev := range evs {
				if ev.ns != int64(i+1)*1e9 || !bytes.Equal(ev.record, nonUTF8) {
					t.Errorf("event %d = %d %x", i, ev.ns, ev.record)
				}
			}
			if req.Size != -1 {
				t.Errorf("size %d for a str size option, want -1", req.Size)
			}
		})
	}
}

func TestOptionForms(t *testing.T) {
	entries := AppendEntry(nil, 1e9, rec("a", "b"))
	fwd := arr(AppendEntry(nil, 1e9, rec("a", "b")))
	chunkNL := "ZhF11bI0gbYi+4HID7870g==\n"
	tests := map[string]struct {
		req        []byte
		mode       Mode
		hasOption  bool
		chunk      []byte
		size       int
		compressed string
	}{
		"packed absent":  {arr(str("t"), strN("bin8", entries)), ModePackedForward, false, nil, -1, ""},
		"packed empty":   {arr(str("t"), strN("bin8", entries), []byte{0x80}), ModePackedForward, true, nil, -1, ""},
		"packed nil":     {arr(str("t"), strN("bin8", entries), []byte{mNil}), ModePackedForward, false, nil, -1, ""},
		"packed not map": {arr(str("t"), strN("bin8", entries), str("x")), ModePackedForward, false, nil, -1, ""},
		"packed full": {arr(str("t"), strN("str32", entries), rec("size", "x", "compressed", "text", "chunk", chunkNL)),
			ModePackedForward, true, []byte(chunkNL), -1, "text"},
		"packed unknown compression": {arr(str("t"), strN("bin8", entries), rec("compressed", "lz4")), ModePackedForward, true, nil, -1, "lz4"},
		"forward absent":             {arr(str("t"), fwd), ModeForward, false, nil, -1, ""},
		"forward empty":              {arr(str("t"), fwd, []byte{0x80}), ModeForward, true, nil, -1, ""},
		"forward gzip ignored":       {arr(str("t"), fwd, rec("compressed", "gzip")), ModeForward, true, nil, -1, "gzip"},
		"message absent":             {arr(str("t"), []byte{0x01}, rec("a", "b")), ModeMessage, false, nil, -1, ""},
		"message empty":              {arr(str("t"), []byte{0x01}, rec("a", "b"), []byte{0x80}), ModeMessage, true, nil, -1, ""},
		"message chunk":              {arr(str("t"), []byte{0x01}, rec("a", "b"), rec("chunk", "c")), ModeMessage, true, []byte("c"), -1, ""},
		"message extra element":      {arr(str("t"), []byte{0x01}, rec("a", "b"), rec("chunk", "c"), []byte{0x01}), ModeMessage, true, []byte("c"), -1, ""},
		"empty chunk still acked":    {arr(str("t"), fwd, rec("chunk", "")), ModeForward, true, []byte{}, -1, ""},
	}
	// Options with non-string values and keys, built by hand.
	o := msgp.AppendMapHeader(nil, 5)
	o = msgp.AppendString(o, "size")
	o = msgp.AppendInt(o, 1)
	o = msgp.AppendInt(o, 7) // int key: skipped
	o = msgp.AppendString(o, "x")
	o = msgp.AppendString(o, "fluent_signal")
	o = msgp.AppendInt(o, 0)
	o = msgp.AppendString(o, "chunk")
	o = msgp.AppendBytes(o, []byte("binchunk"))
	o = msgp.AppendString(o, "compressed")
	o = msgp.AppendString(o, "gzip")
	tests["typed values, gzip"] = struct {
		req        []byte
		mode       Mode
		hasOption  bool
		chunk      []byte
		size       int
		compressed string
	}{arr(str("t"), strN("bin8", gz(t, entries)), o), ModeCompressedPackedForward, true, []byte("binchunk"), 1, "gzip"}

	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, n, err := ReadRequest(tc.req, 0)
			if err != nil || n != len(tc.req) {
				t.Fatalf("ReadRequest: n %d err %v", n, err)
			}
			if req.Mode != tc.mode || req.HasOption != tc.hasOption || !bytes.Equal(req.Chunk, tc.chunk) ||
				(req.Chunk == nil) != (tc.chunk == nil) || req.Size != tc.size || req.Compressed != tc.compressed {
				t.Errorf("got mode %v option %v chunk %q size %d compressed %q", req.Mode, req.HasOption, req.Chunk, req.Size, req.Compressed)
			}
			evs, invalid, err := collect(t, &req, 0)
			if err != nil || invalid != 0 || len(evs) != 1 {
				t.Errorf("Events: %d events, invalid %d, err %v", len(evs), invalid, err)
			}
			if tc.chunk != nil {
				want := append([]byte{0x81, 0xa3, 'a', 'c', 'k'}, msgp.AppendStringFromBytes(nil, tc.chunk)...)
				if got := AppendAck(nil, req.Chunk); !bytes.Equal(got, want) {
					t.Errorf("ack % x, want % x", got, want)
				}
			}
		})
	}
}

// requestCorpus returns one request of each kind, for split and stream tests.
func requestCorpus(t testing.TB) map[string][]byte {
	entries := AppendEntry(nil, 1767366245e9, rec("log", "one"))
	entries = AppendEntry(entries, 1767366246e9, nonUTF8)
	ext8Msg := append(append([]byte{0x94}, str("tag.a")...), mExt8, 8, 0, 0x69, 0x57, 0xde, 0x65, 0, 0, 0, 7)
	ext8Msg = append(append(ext8Msg, rec("log", "x")...), rec("chunk", "abc\n")...)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4200) // forces str32 / bin32 / array16 paths
	bigEntries := AppendEntry(nil, 1e9, rec("log", string(big)))
	var many [][]byte
	for i := range 20 {
		many = append(many, AppendEntry(nil, int64(i+1)*1e9, rec("i", fmt.Sprint(i))))
	}
	return map[string][]byte{
		"nil":             {mNil},
		"message ext8":    ext8Msg,
		"message int":     unhex(t, "94 a3 617070 d2 6553f100 81 a3 6c6f67 a2 6869 80"),
		"forward":         arr(str("t"), arr(entries[:len(entries)/2], entries[len(entries)/2:]), rec("chunk", "c")),
		"forward array16": arr(str("t"), arr(many...), rec("chunk", "c")),
		"packed bin8":     arr(str("t"), strN("bin8", entries), rec("chunk", "c", "compressed", "text")),
		"packed str32":    arr(str("t"), strN("str32", bigEntries), rec("chunk", "c")),
		"packed bin32":    arr(str("t"), strN("bin32", bigEntries)),
		"gzip":            arr(str("t"), strN("bin16", gz(t, entries, entries)), rec("compressed", "gzip", "chunk", "g")),
	}
}

func TestEverySplitPointIsShort(t *testing.T) {
	for name, b := range requestCorpus(t) {
		t.Run(name, func(t *testing.T) {
			for i := range len(b) {
				req, n, err := ReadRequest(b[:i], 0)
				if err != ErrShort || n != 0 || req.Mode != ModeNil {
					t.Fatalf("prefix %d/%d: n %d err %v, want ErrShort", i, len(b), n, err)
				}
			}
			req, n, err := ReadRequest(b, 0)
			if err != nil || n != len(b) {
				t.Fatalf("full: n %d err %v", n, err)
			}
			if _, invalid, err := collect(t, &req, 0); err != nil || invalid != 0 {
				t.Fatalf("Events: invalid %d err %v", invalid, err)
			}
		})
	}
}

func TestSeveralRequestsInOneBuffer(t *testing.T) {
	corpus := requestCorpus(t)
	names := []string{"nil", "message ext8", "forward", "packed bin8", "gzip", "nil", "packed str32", "message int"}
	var stream []byte
	for _, name := range names {
		stream = append(stream, corpus[name]...)
	}
	// Feed the stream in pieces of several sizes, as reads from a socket.
	for _, piece := range []int{1, 3, 17, 1000, len(stream)} {
		var buf []byte
		var got []string
		events, fed := 0, 0
		for fed < len(stream) || len(buf) > 0 {
			req, n, err := ReadRequest(buf, 0)
			if err == ErrShort {
				if fed == len(stream) {
					t.Fatalf("piece %d: ErrShort with %d bytes left and no more input", piece, len(buf))
				}
				end := min(fed+piece, len(stream))
				buf = append(buf, stream[fed:end]...)
				fed = end
				continue
			}
			if err != nil {
				t.Fatalf("piece %d: %v", piece, err)
			}
			evs, _, err := collect(t, &req, 0)
			if err != nil {
				t.Fatal(err)
			}
			events += len(evs)
			got = append(got, req.Mode.String())
			buf = buf[n:]
		}
		want := []string{"Nil", "Message", "Forward", "PackedForward", "CompressedPackedForward", "Nil", "PackedForward", "Message"}
		if fmt.Sprint(got) != fmt.Sprint(want) || events != 1+2+2+4+1+1 {
			t.Errorf("piece %d: modes %v events %d, want %v and 11", piece, got, events, want)
		}
	}
}

func TestReadRequestErrors(t *testing.T) {
	tests := map[string]struct {
		b        []byte
		maxBytes int
		err      error
		n        int
	}{
		"empty":                {nil, 0, ErrShort, 0},
		"heartbeat":            {[]byte{mNil, 0x93}, 0, nil, 1},
		"not array map":        {append(rec("a", "b"), 0x93), 0, ErrNotArray, 5},
		"not array int":        {[]byte{0x05, 0xc0}, 0, ErrNotArray, 1},
		"not array str":        {str("hello"), 0, ErrNotArray, 6},
		"empty array":          {[]byte{0x90}, 0, ErrInvalidRequest, 1},
		"one element":          {arr(str("t")), 0, ErrInvalidRequest, 3},
		"reserved byte":        {[]byte{0x93, 0xc1}, 0, ErrMalformed, 0},
		"str32 announces 1GiB": {[]byte{mStr32, 0x40, 0, 0, 0}, 1 << 20, ErrTooLarge, 0},
		"bin32 in request":     {[]byte{0x93, 0xa1, 't', mBin32, 0x01, 0, 0, 0}, 1 << 20, ErrTooLarge, 0},
		"array32 4G elements":  {[]byte{mArray32, 0xff, 0xff, 0xff, 0xff}, 1 << 20, ErrTooLarge, 0},
		"map32 in forward":     {[]byte{0x92, 0xa1, 't', 0x91, 0x92, 0x01, mMap32, 0x10, 0, 0, 0}, 1 << 20, ErrTooLarge, 0},
		"header over cap":      {[]byte{0x93, 0xa1, 't', mBin32}, 4, ErrTooLarge, 0},
		"exactly at cap":       {arr(str("t"), []byte{0x01}, rec("a", "b")), 9, nil, 9},
		"one over cap":         {arr(str("t"), []byte{0x01}, rec("a", "b")), 8, ErrTooLarge, 0},
		"ext split in header":  {[]byte{0x94, 0xa1, 't', mExt8, 8}, 0, ErrShort, 0},
		"fixext split":         {[]byte{0x94, 0xa1, 't', mFixExt8}, 0, ErrShort, 0},
		"ext32 too large":      {[]byte{0x94, 0xa1, 't', mExt32, 0x10, 0, 0, 0}, 1 << 20, ErrTooLarge, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, n, err := ReadRequest(tc.b, tc.maxBytes)
			if !errors.Is(err, tc.err) || n != tc.n {
				t.Errorf("got n %d err %v, want n %d err %v", n, err, tc.n, tc.err)
			}
		})
	}
}

func TestDeepNestingUsesNoStack(t *testing.T) {
	const depth = 1 << 20
	b := append([]byte{0x92, 0xa1, 't'}, bytes.Repeat([]byte{0x91}, depth)...)
	if _, _, err := ReadRequest(b, 0); err != ErrShort {
		t.Fatalf("unterminated nesting: %v, want ErrShort", err)
	}
	b = append(b, mNil)
	req, n, err := ReadRequest(b, 0)
	if err != nil || n != len(b) || req.Mode != ModeForward {
		t.Fatalf("nesting: mode %v n %d err %v", req.Mode, n, err)
	}
	if _, invalid, err := collect(t, &req, 0); err != nil || invalid != 1 {
		t.Fatalf("Events: invalid %d err %v, want 1 invalid", invalid, err)
	}
}

func TestCompressed(t *testing.T) {
	var part1, part2 []byte
	for i := range 4 {
		part1 = AppendEntry(part1, int64(i+1)*1e9, rec("seq", fmt.Sprint(i+1)))
		part2 = AppendEntry(part2, int64(i+5)*1e9, rec("seq", fmt.Sprint(i+5)))
	}
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zenc.Close()
	zstd2 := zenc.EncodeAll(part2, zenc.EncodeAll(part1, nil)) // two frames
	g, err := NewGzipper(1)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		payload    []byte
		compressed string
		mode       Mode
	}{
		"gzip one member":   {gz(t, append(append([]byte(nil), part1...), part2...)), "gzip", ModeCompressedPackedForward},
		"gzip two members":  {gz(t, part1, part2), "gzip", ModeCompressedPackedForward},
		"gzip from Gzipper": {g.Compress(g.Compress(nil, part1), part2), "gzip", ModeCompressedPackedForward},
		"zstd two frames":   {zstd2, "zstd", ModeCompressedPackedForward},
		"text":              {append(append([]byte(nil), part1...), part2...), "text", ModePackedForward},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := arr(str("t"), strN("bin32", tc.payload), rec("compressed", tc.compressed, "chunk", "x"))
			req, _, err := ReadRequest(b, 0)
			if err != nil || req.Mode != tc.mode {
				t.Fatalf("ReadRequest: mode %v err %v", req.Mode, err)
			}
			evs, invalid, err := collect(t, &req, 0)
			if err != nil || invalid != 0 || len(evs) != 8 {
				t.Fatalf("Events: %d events, invalid %d, err %v", len(evs), invalid, err)
			}
			for i, ev := range evs {
				if v, ok := LookupString(ev.record, []byte("seq")); !ok || string(v) != fmt.Sprint(i+1) || ev.ns != int64(i+1)*1e9 {
					t.Errorf("event %d: seq %q time %d", i, v, ev.ns)
				}
			}
		})
	}
}

func TestCompressedErrors(t *testing.T) {
	entries := AppendEntry(nil, 1e9, rec("a", "b"))
	good := gz(t, entries)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-5] ^= 0xff // CRC
	tests := map[string]struct {
		payload []byte
		algo    string
		err     error
	}{
		"not gzip":          {[]byte("plain text, not gzip"), "gzip", ErrMalformed},
		"bad crc":           {corrupt, "gzip", ErrMalformed},
		"trailing garbage":  {append(bytes.Clone(good), 0x01, 0x02), "gzip", ErrMalformed},
		"truncated member":  {good[:len(good)-3], "gzip", ErrMalformed},
		"not zstd":          {[]byte("plain text, not zstd"), "zstd", ErrMalformed},
		"gzip of a partial": {gz(t, entries[:len(entries)-1]), "gzip", ErrMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := arr(str("t"), strN("bin32", tc.payload), rec("compressed", tc.algo))
			req, _, err := ReadRequest(b, 0)
			if err != nil {
				t.Fatal(err)
			}
			evs, _, err := collect(t, &req, 0)
			if !errors.Is(err, tc.err) || len(evs) != 0 {
				t.Errorf("got %d events, err %v; want err %v", len(evs), err, tc.err)
			}
		})
	}
	// An empty payload is zero events, not an error.
	req, _, _ := ReadRequest(arr(str("t"), strN("bin8", nil), rec("compressed", "gzip")), 0)
	if evs, invalid, err := collect(t, &req, 0); err != nil || invalid != 0 || len(evs) != 0 {
		t.Errorf("empty gzip payload: %d events, invalid %d, err %v", len(evs), invalid, err)
	}
}

func TestGzipBombRejected(t *testing.T) {
	const limit = 1 << 20
	bomb := gz(t, make([]byte, 16<<20)) // 16 MiB of zeros, about 16 KiB compressed
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	zbomb := zenc.EncodeAll(make([]byte, 16<<20), nil)
	zenc.Close()
	for name, tc := range map[string]struct {
		payload []byte
		algo    string
	}{"gzip": {bomb, "gzip"}, "zstd": {zbomb, "zstd"}} {
		t.Run(name, func(t *testing.T) {
			b := arr(str("t"), strN("bin32", tc.payload), rec("compressed", tc.algo, "chunk", "x"))
			req, _, err := ReadRequest(b, 0)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			called := false
			scratch, _, err := req.Events(nil, limit, func(int64, []byte) error { called = true; return nil })
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) || called {
				t.Fatalf("err %v called %v, want ErrTooLarge before any event", err, called)
			}
			if cap(scratch) > limit+1 {
				t.Errorf("scratch grew to %d bytes, cap %d", cap(scratch), limit)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*limit {
				t.Errorf("allocated %d bytes for a %d-byte cap", alloc, limit)
			}
		})
	}
	// Exactly at the cap is accepted.
	entries := AppendEntry(nil, 1e9, rec("a", "b"))
	req, _, _ := ReadRequest(arr(str("t"), strN("bin8", gz(t, entries)), rec("compressed", "gzip")), 0)
	if _, _, err := req.Events(nil, len(entries), func(int64, []byte) error { return nil }); err != nil {
		t.Errorf("entries exactly at cap: %v", err)
	}
	if _, _, err := req.Events(nil, len(entries)-1, func(int64, []byte) error { return nil }); !errors.Is(err, ErrTooLarge) {
		t.Errorf("entries one over cap: %v, want ErrTooLarge", err)
	}
}

func TestPackedTruncatedTail(t *testing.T) {
	entries := AppendEntry(nil, 1e9, rec("a", "1"))
	entries = AppendEntry(entries, 2e9, rec("a", "2"))
	third := AppendEntry(nil, 3e9, rec("a", "3"))
	entries = append(entries, third[:len(third)-2]...)
	req, _, err := ReadRequest(arr(str("t"), strN("bin8", entries), rec("chunk", "c")), 0)
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := collect(t, &req, 0)
	if !errors.Is(err, ErrMalformed) || len(evs) != 2 {
		t.Errorf("got %d events, err %v; want the 2 complete events then ErrMalformed", len(evs), err)
	}
}

func TestEventsCallbackError(t *testing.T) {
	stop := errors.New("stop")
	for name, b := range requestCorpus(t) {
		if name == "nil" {
			continue
		}
		req, _, err := ReadRequest(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		_, _, err = req.Events(nil, 0, func(int64, []byte) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("%s: err %v after %d calls, want stop after 1", name, err, calls)
		}
	}
}

func TestEventsZeroAlloc(t *testing.T) {
	corpus := requestCorpus(t)
	for _, name := range []string{"message ext8", "forward", "forward array16", "packed bin8", "packed str32", "gzip"} {
		b := corpus[name]
		scratch := make([]byte, 0, 1<<16)
		n := 0
		fn := func(int64, []byte) error { n++; return nil }
		allocs := testing.AllocsPerRun(50, func() {
			req, _, err := ReadRequest(b, 0)
			if err != nil {
				t.Fatal(err)
			}
			if scratch, _, err = req.Events(scratch, 0, fn); err != nil {
				t.Fatal(err)
			}
		})
		// gzip may refill its sync.Pool after a GC; everything else is exact.
		if (name != "gzip" && allocs != 0) || allocs > 1 {
			t.Errorf("%s: %.1f allocs per request, want 0", name, allocs)
		}
	}
}

func TestWithinDepth(t *testing.T) {
	nested := func(depth int, inner []byte) []byte {
		var b []byte
		for i := 0; i < depth; i++ {
			if i%2 == 0 {
				b = msgp.AppendMapHeader(b, 1)
				b = msgp.AppendString(b, "k")
			} else {
				b = msgp.AppendArrayHeader(b, 1)
			}
		}
		return append(b, inner...)
	}
	scalar := msgp.AppendString(nil, "v")
	flat := msgp.AppendMapHeader(nil, 2)
	flat = msgp.AppendString(flat, "a")
	flat = msgp.AppendArrayHeader(flat, 0)
	flat = msgp.AppendString(flat, "b")
	flat = msgp.AppendMapHeader(flat, 1)
	flat = msgp.AppendString(flat, "c")
	flat = msgp.AppendInt(flat, 7)
	cases := []struct {
		name string
		b    []byte
		max  int
		want bool
	}{
		{"scalar", scalar, 0, true},
		{"map of map", flat, 2, true},
		{"map of map, max 1", flat, 1, false},
		{"depth 65 under 65", nested(65, scalar), 65, true},
		{"depth 66 under 65", nested(66, scalar), 65, false},
		{"100000 deep", nested(100000, scalar), 65, false},
		{"truncated", flat[:len(flat)-1], 5, false},
		{"empty", nil, 5, false},
		{"siblings after deep", append(msgp.AppendArrayHeader(nil, 2), append(nested(3, scalar), scalar...)...), 4, true},
	}
	for _, c := range cases {
		if got := WithinDepth(c.b, c.max); got != c.want {
			t.Errorf("%s: WithinDepth = %v, want %v", c.name, got, c.want)
		}
	}
	deep := nested(64, scalar)
	if n := testing.AllocsPerRun(10, func() { WithinDepth(deep, 65) }); n > 0 {
		t.Errorf("%v allocs", n)
	}
}

package forward

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/pipeline"
)

// want is one expected stored event.
type want struct {
	tag       string
	sec, nsec int64
	record    []byte
}

func gzipMembers(t testing.TB, parts ...[]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, p := range parts {
		zw := gzip.NewWriter(&out)
		zw.Write(p)
		zw.Close()
	}
	return out.Bytes()
}

// modeCases returns requests in every mode and form with the events and ack
// bytes the server must produce.
func modeCases(t testing.TB) []struct {
	name   string
	req    []byte
	events []want
	ack    []byte
} {
	ra, rb := rec("log", "a"), rec("log", "b")
	stream := append(entry(1700000000, 0, ra), entry(1700000001, 500000000, rb)...)
	type tc = struct {
		name   string
		req    []byte
		events []want
		ack    []byte
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hx := func(s string) []byte {
		var b []byte
		for _, f := range strings.Fields(s) {
			var v []byte
			fmt.Sscanf(f, "%x", &v)
			b = append(b, v...)
		}
		return b
	}
	hi := rec("log", "hi")
	chunk := "AAAAAAAAAAAAAAAAAAAAAA=="
	fdChunk := "p8n9gmxTQVC8/nh2wlKKeQ==\n"
	str32 := func(b []byte) []byte {
		n := len(b)
		return append([]byte{0xdb, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, b...)
	}
	bin := func(b []byte) []byte { return msgp.AppendBytes(nil, b) }
	opt := func(kv ...any) []byte {
		b := msgp.AppendMapHeader(nil, uint32(len(kv)/2))
		for i := 0; i < len(kv); i += 2 {
			b = msgp.AppendString(b, kv[i].(string))
			switch v := kv[i+1].(type) {
			case string:
				b = msgp.AppendString(b, v)
			case int:
				b = msgp.AppendInt(b, v)
			}
		}
		return b
	}
	gz := gzipMembers(t, entry(1700000000, 0, ra), entry(1700000001, 500000000, rb))
	return []tc{
		{
			name:   "message int time, empty option (formats.md 1.9)",
			req:    hx("94 a3 617070 d2 6553f100 81 a3 6c6f67 a2 6869 80"),
			events: []want{{"app", 1700000000, 0, hi}},
		},
		{
			name:   "message EventTime with ack (formats.md 1.9)",
			req:    hx("94 a3 617070 d7 00 6553f100 075bcd15 81 a3 6c6f67 a2 6869 81 a5 6368756e6b b8 414141414141414141414141414141414141414141413d3d"),
			events: []want{{"app", 1700000000, 123456789, hi}},
			ack:    hx("81 a3 61636b b8 414141414141414141414141414141414141414141413d3d"),
		},
		{
			name:   "message ext8 EventTime, no option",
			req:    cat([]byte{0x93}, msgp.AppendString(nil, "app"), hx("c7 08 00 6553f100 075bcd15"), hi),
			events: []want{{"app", 1700000000, 123456789, hi}},
		},
		{
			name:   "message uint32 time, chunk with newline",
			req:    cat([]byte{0x94}, msgp.AppendString(nil, "app"), hx("ce 6553f100"), hi, options(fdChunk)),
			events: []want{{"app", 1700000000, 0, hi}},
			ack:    ack(fdChunk),
		},
		{
			name:   "message uint64 and int64 times (forward entries)",
			req:    cat([]byte{0x92}, msgp.AppendString(nil, "app"), []byte{0x92}, []byte{0x92}, hx("cf 000000006553f100"), ra, []byte{0x92}, hx("d3 000000006553f101"), rb),
			events: []want{{"app", 1700000000, 0, ra}, {"app", 1700000001, 0, rb}},
		},
		{
			name:   "forward, option absent (formats.md 1.9)",
			req:    cat(hx("92 a3 617070 92"), stream),
			events: []want{{"app", 1700000000, 0, ra}, {"app", 1700000001, 500000000, rb}},
		},
		{
			name:   "forward with chunk ending in newline",
			req:    cat(hx("93 a3 617070 92"), stream, options(fdChunk)),
			events: []want{{"app", 1700000000, 0, ra}, {"app", 1700000001, 500000000, rb}},
			ack:    ack(fdChunk),
		},
		{
			name:   "packed forward, bin8 entries, size option (formats.md 1.9)",
			req:    cat(hx("93 a3 617070 c4 24"), stream, hx("81 a4 73697a65 02")),
			events: []want{{"app", 1700000000, 0, ra}, {"app", 1700000001, 500000000, rb}},
		},
		{
			name:   "packed forward, str32 entries, compressed text, chunk (Fluentd)",
			req:    cat(hx("93 a3 617070"), str32(stream), opt("size", 2, "compressed", "text", "chunk", fdChunk)),
			events: []want{{"app", 1700000000, 0, ra}, {"app", 1700000001, 500000000, rb}},
			ack:    ack(fdChunk),
		},
		{
			name:   "compressed packed forward, two gzip members, chunk",
			req:    cat(hx("93 a3 617070"), bin(gz), opt("size", 2, "compressed", "gzip", "chunk", chunk)),
			events: []want{{"app", 1700000000, 0, ra}, {"app", 1700000001, 500000000, rb}},
			ack:    ack(chunk),
		},
		{
			name:   "Fluent Bit [[time, meta], record] entries (formats.md 1.9)",
			req:    cat(hx("92 a3 617070 91 92 92 d7 00 6553f100 00000000 80 81 a3 6c6f67 a1 61")),
			events: []want{{"app", 1700000000, 0, ra}},
		},
		{
			name: "packed forward, empty stream, chunk: acked, nothing stored",
			req:  cat(hx("93 a3 617070 c4 00"), options(chunk)),
			ack:  ack(chunk),
		},
	}
}

func checkEvents(t testing.TB, got []storedEvent, events []want) {
	t.Helper()
	if len(got) != len(events) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(events), got)
	}
	for i, w := range events {
		g := got[i]
		if g.Tag != w.tag || g.Time != w.sec*1e9+w.nsec {
			t.Errorf("event %d: tag %q time %d, want %q %d", i, g.Tag, g.Time, w.tag, w.sec*1e9+w.nsec)
		}
		if !bytes.Equal(g.Record, w.record) {
			t.Errorf("event %d: record %x, want %x", i, g.Record, w.record)
		}
	}
}

// TestModes sends each request form over TCP and checks the stored events
// and the ack bytes.
func TestModes(t *testing.T) {
	for _, tc := range modeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, config.ForwardInput{}, nil)
			c := s.dial(t)
			if _, err := c.Write(tc.req); err != nil {
				t.Fatal(err)
			}
			if tc.ack != nil {
				if got := readN(t, c, len(tc.ack)); !bytes.Equal(got, tc.ack) {
					t.Fatalf("ack %x, want %x", got, tc.ack)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			if rest := readAll(t, c); len(rest) != 0 {
				t.Fatalf("unexpected bytes after the ack: %x", rest)
			}
			s.stop()
			checkEvents(t, s.q.snapshot(), tc.events)
		})
	}
}

// allModesStream concatenates every mode case: the stream and its acks.
func allModesStream(t testing.TB) (stream, acks []byte, events []want) {
	for _, tc := range modeCases(t) {
		stream = append(stream, tc.req...)
		acks = append(acks, tc.ack...)
		events = append(events, tc.events...)
	}
	return stream, acks, events
}

// TestSplitEverywhere sends all request forms back to back, split in two
// at every byte offset, and once byte by byte.
func TestSplitEverywhere(t *testing.T) {
	stream, acks, events := allModesStream(t)
	run := func(t *testing.T, writes [][]byte) {
		q := &fakeQueue{}
		in, _ := newInput(t, config.ForwardInput{}, q)
		cli, done := pipeConn(t, in)
		got := make(chan []byte, 1)
		go func() {
			var all []byte
			buf := make([]byte, 4096)
			for {
				n, err := cli.Read(buf)
				all = append(all, buf[:n]...)
				if err != nil {
					got <- all
					return
				}
			}
		}()
		for _, w := range writes {
			if _, err := cli.Write(w); err != nil {
				t.Fatal(err)
			}
		}
		// net.Pipe has no half close: wait until every ack arrived, then close.
		deadline := time.Now().Add(5 * time.Second)
		for len(q.snapshot()) < len(events) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(2 * time.Millisecond)
		cli.Close()
		<-done
		if a := <-got; !bytes.Equal(a, acks) {
			t.Fatalf("acks %x, want %x", a, acks)
		}
		checkEvents(t, q.snapshot(), events)
	}
	for i := 1; i < len(stream); i++ {
		run(t, [][]byte{stream[:i], stream[i:]})
		if t.Failed() {
			t.Fatalf("split at %d of %d", i, len(stream))
		}
	}
	var bytewise [][]byte
	for i := range stream {
		bytewise = append(bytewise, stream[i:i+1])
	}
	run(t, bytewise)
}

// TestBatching: Docker's one-Message-per-write stream that arrives in one
// read is flushed once, and the acks of several chunked requests arriving
// together follow one flush.
func TestBatching(t *testing.T) {
	for _, withAck := range []bool{false, true} {
		t.Run(fmt.Sprintf("ack=%v", withAck), func(t *testing.T) {
			s := startServer(t, config.ForwardInput{}, nil)
			c := s.dial(t)
			var req, wantAcks []byte
			for i := range 100 {
				chunk := ""
				if withAck {
					chunk = fmt.Sprintf("chunk-%03d", i)
					wantAcks = append(wantAcks, ack(chunk)...)
				}
				req = append(req, message("docker.web", uint32(1700000000+i), rec("log", fmt.Sprint(i)), chunk)...)
			}
			c.Write(req)
			if withAck {
				if got := readN(t, c, len(wantAcks)); !bytes.Equal(got, wantAcks) {
					t.Fatalf("acks differ")
				}
			}
			s.q.waitEvents(t, 100)
			s.q.mu.Lock()
			appends := s.q.appends
			s.q.mu.Unlock()
			// A 100-message write can arrive in more than one read; it must
			// not be one append per event.
			if appends > 5 {
				t.Fatalf("%d appends for 100 events in one write", appends)
			}
		})
	}
}

// TestAckOnlyAfterDurable: while the queue's Append blocks, no ack is
// written; the ack follows the Append's return.
func TestAckOnlyAfterDurable(t *testing.T) {
	q := &fakeQueue{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := startServer(t, config.ForwardInput{}, q)
	c := s.dial(t)
	c.Write(message("app", 1700000000, rec("log", "x"), "c1"))
	select {
	case <-q.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Append was not called")
	}
	expectNothing(t, c, 300*time.Millisecond)
	if n := len(q.snapshot()); n != 0 {
		t.Fatalf("%d events stored while Append blocks", n)
	}
	q.gate <- struct{}{}
	if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
		t.Fatalf("ack %x", got)
	}
	if n := len(q.snapshot()); n != 1 {
		t.Fatalf("ack received but %d events stored", n)
	}
}

// TestFlushFailureHoldsThenDelivers: appends fail in the middle of a
// Flush that holds many chunks (events bigger than a chunk, a long line, a
// joined partial line). No ack is sent while the queue fails; once it
// recovers every event is stored exactly once, in order, and acked.
func TestFlushFailureHoldsThenDelivers(t *testing.T) {
	q := &fakeQueue{}
	q.setErr(errors.New("no space left on device"), 3)
	set := metrics.NewSet()
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q, ChunkBytes: 256}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := New("fw", config.ForwardInput{Listen: "127.0.0.1:0"}, r, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, in, q, set)
	c := s.dial(t)
	var want []string
	var req []byte
	// Without acks: a Docker line split in three fragments (joined), then
	// lines each bigger than a chunk.
	req = append(req, message("app", 1700000000, fragment("stdout", "p1", 1, false, "part-one "), "")...)
	req = append(req, message("app", 1700000000, fragment("stdout", "p1", 2, false, "part-two "), "")...)
	req = append(req, message("app", 1700000000, fragment("stdout", "p1", 3, true, "part-three"), "")...)
	want = append(want, "part-one part-two part-three")
	for i := range 20 {
		l := fmt.Sprintf("big-%02d-%s", i, strings.Repeat("x", 300))
		req = append(req, message("app", 1700000001, rec("log", l), "")...)
		want = append(want, l)
	}
	// A long line and a Forward-mode request of 30 events, both acked.
	long := "long-" + strings.Repeat("y", 64<<10)
	req = append(req, message("app", 1700000002, rec("log", long), "c-long")...)
	want = append(want, long)
	fwd := append([]byte{0x93}, msgp.AppendString(nil, "app")...)
	fwd = msgp.AppendArrayHeader(fwd, 30)
	for i := range 30 {
		l := fmt.Sprintf("fwd-%02d-%s", i, strings.Repeat("z", i*10))
		fwd = append(fwd, entry(1700000003, 0, rec("log", l))...)
		want = append(want, l)
	}
	fwd = append(fwd, options("c-fwd")...)
	req = append(req, fwd...)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, c, 500*time.Millisecond) // no ack while the queue fails
	if n := s.counter(`sluice_input_flush_failures_total{input="fw"}`); n == 0 {
		t.Fatal("no flush failure counted")
	}
	q.setErr(nil, 0)
	if got, exp := readN(t, c, len(ack("c-long"))+len(ack("c-fwd"))), append(ack("c-long"), ack("c-fwd")...); !bytes.Equal(got, exp) {
		t.Fatalf("acks %q, want %q", got, exp)
	}
	got := q.waitEvents(t, len(want))
	if len(got) != len(want) {
		t.Fatalf("stored %d events, want %d", len(got), len(want))
	}
	for i, ev := range got {
		if l, _ := decodeRecord(t, ev.Record)["log"].(string); l != want[i] {
			t.Fatalf("event %d: log %.40q, want %.40q", i, l, want[i])
		}
	}
	if n := s.counter(`sluice_input_discarded_events_total{input="fw"}`); n != 0 {
		t.Fatalf("%d events discarded", n)
	}
}

// TestFlushFailureAtShutdownCounted: when the queue still fails as the
// input stops, the connection gives up: the acks stay withheld and the
// held events are counted as discarded, never silently gone.
func TestFlushFailureAtShutdownCounted(t *testing.T) {
	q := &fakeQueue{}
	q.setErr(fmt.Errorf("disk full"), 0)
	s := startServer(t, config.ForwardInput{}, q)
	c := s.dial(t)
	c.Write(message("app", 1700000000, rec("log", "x"), "c1"))
	expectNothing(t, c, 300*time.Millisecond)
	s.stop()
	if got := readAll(t, c); len(got) != 0 {
		t.Fatalf("server sent %x after a failed flush", got)
	}
	if n := s.counter(`sluice_input_acks_total{input="fw"}`); n != 0 {
		t.Fatalf("acks counter %d", n)
	}
	if n := s.counter(`sluice_input_discarded_events_total{input="fw"}`); n != 1 {
		t.Fatalf("discarded %d, want 1", n)
	}
}

// TestAckAfter: with ack_after fsync (the default) an ack waits for
// SyncTo and is withheld when it fails; with "write" it is sent once the
// events are appended, without an fsync.
func TestAckAfter(t *testing.T) {
	for _, mode := range []string{"fsync", "write"} {
		q := &fakeQueue{syncErr: errors.New("fsync failed")}
		s := startServer(t, config.ForwardInput{AckAfter: mode}, q)
		c := s.dial(t)
		c.Write(message("app", 1700000000, rec("log", "x"), "c1"))
		if mode == "fsync" {
			if got := readAll(t, c); len(got) != 0 {
				t.Fatalf("fsync: ack %q sent although the fsync failed", got)
			}
		} else if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
			t.Fatalf("write: ack %q", got)
		}
		q.mu.Lock()
		syncs := q.syncs
		q.mu.Unlock()
		if (mode == "fsync") != (syncs > 0) {
			t.Fatalf("%s: %d SyncTo calls", mode, syncs)
		}
		s.stop()
	}
}

// TestRefusedBeforeAck: an event bigger than a buffer segment, and one
// nested 100,000 deep, are refused before the ack (counted), while the
// good events of the same request are stored and the request acked.
func TestRefusedBeforeAck(t *testing.T) {
	q := &segQueue{max: 200 << 10}
	set := metrics.NewSet()
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := New("fw", config.ForwardInput{Listen: "127.0.0.1:0"}, r, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, in, &q.fakeQueue, set)
	deep := msgp.AppendMapHeader(nil, 2)
	deep = msgp.AppendString(deep, "log")
	deep = msgp.AppendString(deep, "deep")
	deep = msgp.AppendString(deep, "nest")
	for range 100000 {
		deep = msgp.AppendArrayHeader(deep, 1)
	}
	deep = msgp.AppendNil(deep)
	fwd := append([]byte{0x93}, msgp.AppendString(nil, "app")...)
	fwd = msgp.AppendArrayHeader(fwd, 202)
	for i := range 100 {
		fwd = append(fwd, entry(1700000000, 0, rec("log", fmt.Sprint("a", i)))...)
	}
	fwd = append(fwd, entry(1700000000, 0, rec("log", strings.Repeat("b", 300<<10)))...)
	fwd = append(fwd, entry(1700000000, 0, deep)...)
	for i := range 100 {
		fwd = append(fwd, entry(1700000000, 0, rec("log", fmt.Sprint("c", i)))...)
	}
	fwd = append(fwd, options("c1")...)
	c := s.dial(t)
	c.Write(fwd)
	if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
		t.Fatalf("ack %q", got)
	}
	if got := q.snapshot(); len(got) != 200 {
		t.Fatalf("stored %d events, want 200", len(got))
	}
	if n := s.counter(`sluice_input_refused_events_total{input="fw",reason="event_bytes"}`); n != 1 {
		t.Fatalf("refused for size: %d", n)
	}
	if n := s.counter(`sluice_input_refused_events_total{input="fw",reason="nesting_depth"}`); n != 1 {
		t.Fatalf("refused for depth: %d", n)
	}
}

// segQueue is a fakeQueue with a segment-like entries limit.
type segQueue struct {
	fakeQueue
	max int
}

func (q *segQueue) MaxEntries(int) int { return q.max }

// TestInvalidInput: invalid events are skipped and counted but their
// Message is still acked (as in_forward); non-array values and nil
// heartbeats are skipped; the connection stays usable.
func TestInvalidInput(t *testing.T) {
	s := startServer(t, config.ForwardInput{}, nil)
	c := s.dial(t)
	notMap := append(append([]byte{0x94}, msgp.AppendString(nil, "app")...), eventTime(1700000000, 0)...)
	notMap = append(notMap, msgp.AppendString(nil, "not a map")...)
	notMap = append(notMap, options("bad1")...)
	badTag := append([]byte{0x94, 0x05}, eventTime(1700000000, 0)...)
	badTag = append(append(badTag, rec("log", "x")...), options("bad2")...)
	badTime := append(append([]byte{0x94}, msgp.AppendString(nil, "app")...), 0xc3) // time true
	badTime = append(append(badTime, rec("log", "x")...), options("bad3")...)
	// A forward request with one invalid entry between two good ones.
	mixed := append([]byte{0x93}, msgp.AppendString(nil, "app")...)
	mixed = append(mixed, 0x93)
	mixed = append(mixed, entry(1700000000, 0, rec("log", "1"))...)
	mixed = append(mixed, 0x92, 0xc0, 0x80) // [nil, {}]
	mixed = append(mixed, entry(1700000002, 0, rec("log", "2"))...)
	mixed = append(mixed, options("mixed")...)
	var req []byte
	req = append(req, 0xc0)                                 // TCP heartbeat
	req = append(req, 0x05)                                 // not an array
	req = append(req, msgp.AppendString(nil, "garbage")...) // not an array
	req = append(req, 0x91, 0xa1, 'x')                      // array of one element
	req = append(req, notMap...)
	req = append(req, badTag...)
	req = append(req, badTime...)
	req = append(req, mixed...)
	req = append(req, message("app", 1700000003, rec("log", "3"), "ok")...)
	c.Write(req)
	wantAcks := bytes.Join([][]byte{ack("bad1"), ack("bad2"), ack("bad3"), ack("mixed"), ack("ok")}, nil)
	if got := readN(t, c, len(wantAcks)); !bytes.Equal(got, wantAcks) {
		t.Fatalf("acks %q, want %q", got, wantAcks)
	}
	got := s.q.waitEvents(t, 3)
	checkEvents(t, got, []want{
		{"app", 1700000000, 0, rec("log", "1")},
		{"app", 1700000002, 0, rec("log", "2")},
		{"app", 1700000003, 0, rec("log", "3")},
	})
	if n := s.counter(`sluice_input_invalid_events_total{input="fw"}`); n != 4 {
		t.Errorf("invalid events %d, want 4", n)
	}
	if n := s.counter(`sluice_input_invalid_requests_total{input="fw"}`); n != 3 {
		t.Errorf("invalid requests %d, want 3", n)
	}
}

// TestMalformedClosesAfterEarlierAcks: bytes that are not msgpack close the
// connection, after the requests before them were stored and acked.
func TestMalformedClosesAfterEarlierAcks(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []byte
	}{
		{"reserved byte 0xc1", []byte{0xc1}},
		{"corrupt gzip", append(append([]byte{0x93, 0xa3, 'a', 'p', 'p', 0xc4, 0x04, 1, 2, 3, 4}, msgp.AppendMapHeader(nil, 2)...),
			append(msgp.AppendString(msgp.AppendString(nil, "compressed"), "gzip"), msgp.AppendString(msgp.AppendString(nil, "chunk"), "never")...)...)},
		{"json", []byte(`["app", 1700000000, {"log":"x"}]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, config.ForwardInput{}, nil)
			c := s.dial(t)
			first := message("app", 1700000000, rec("log", "x"), "c1")
			if tc.name == "json" {
				first = nil // JSON is detected on the first byte of the connection
			}
			c.Write(append(append([]byte(nil), first...), tc.bad...))
			got := readAll(t, c)
			var wantAck []byte
			if first != nil {
				wantAck = ack("c1")
			}
			if !bytes.Equal(got, wantAck) {
				t.Fatalf("server sent %x, want %x then close", got, wantAck)
			}
			if n := s.counter(`sluice_input_protocol_errors_total{input="fw"}`); n != 1 {
				t.Fatalf("protocol errors %d", n)
			}
		})
	}
}

// TestEndInsideRequest: a client that disconnects in the middle of a
// request loses only that request (it was never acked).
func TestEndInsideRequest(t *testing.T) {
	s := startServer(t, config.ForwardInput{}, nil)
	c := s.dial(t)
	full := message("app", 1700000000, rec("log", "x"), "c1")
	c.Write(append(append([]byte(nil), full...), full[:7]...))
	if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
		t.Fatalf("ack %x", got)
	}
	c.Close()
	s.q.waitEvents(t, 1)
	deadline := time.Now().Add(5 * time.Second)
	for s.counter(`sluice_input_protocol_errors_total{input="fw"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("truncated request not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLimits: an oversized request is refused from its header, a gzip bomb
// by the decompression cap, extra connections are closed at once.
func TestLimits(t *testing.T) {
	t.Run("message bytes", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{MaxMessageBytes: 64 << 10}, nil)
		c := s.dial(t)
		req := message("app", 1700000000, rec("log", "x"), "c1")
		// A PackedForward whose bin32 header announces 100 MiB: refused
		// before any of those bytes is sent.
		req = append(req, 0x93, 0xa3, 'a', 'p', 'p', 0xc6, 0x06, 0x40, 0x00, 0x00)
		c.Write(req)
		start := time.Now()
		if got := readAll(t, c); !bytes.Equal(got, ack("c1")) {
			t.Fatalf("server sent %x", got)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("refusal took %s", d)
		}
		if n := s.counter(`sluice_input_limit_violations_total{input="fw",limit="message_bytes"}`); n != 1 {
			t.Fatalf("limit counter %d", n)
		}
		checkEvents(t, s.q.snapshot(), []want{{"app", 1700000000, 0, rec("log", "x")}})
	})
	t.Run("message bytes, many small elements", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{MaxMessageBytes: 64 << 10}, nil)
		c := s.dial(t)
		// A forward request with array32 header of 1M entries.
		c.Write([]byte{0x92, 0xa3, 'a', 'p', 'p', 0xdd, 0x00, 0x10, 0x00, 0x00})
		if got := readAll(t, c); len(got) != 0 {
			t.Fatalf("server sent %x", got)
		}
		if n := s.counter(`sluice_input_limit_violations_total{input="fw",limit="message_bytes"}`); n != 1 {
			t.Fatalf("limit counter %d", n)
		}
	})
	t.Run("gzip bomb", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{MaxDecompressedBytes: 1 << 20}, nil)
		c := s.dial(t)
		var zeros bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zeros, gzip.BestCompression)
		zw.Write(make([]byte, 16<<20))
		zw.Close()
		req := append([]byte{0x93, 0xa3, 'a', 'p', 'p'}, msgp.AppendBytes(nil, zeros.Bytes())...)
		o := msgp.AppendMapHeader(nil, 2)
		o = msgp.AppendString(msgp.AppendString(o, "compressed"), "gzip")
		o = msgp.AppendString(msgp.AppendString(o, "chunk"), "bomb")
		req = append(req, o...)
		c.Write(req)
		if got := readAll(t, c); len(got) != 0 {
			t.Fatalf("server acked a gzip bomb: %x", got)
		}
		if n := s.counter(`sluice_input_limit_violations_total{input="fw",limit="decompressed_bytes"}`); n != 1 {
			t.Fatalf("limit counter %d", n)
		}
		if n := len(s.q.snapshot()); n != 0 {
			t.Fatalf("%d events stored", n)
		}
	})
	t.Run("connections", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{MaxConnections: 2}, nil)
		c1, c2 := s.dial(t), s.dial(t)
		// Make sure both are registered before the third arrives.
		for i, c := range []net.Conn{c1, c2} {
			c.Write(message("app", 1700000000, rec("log", "x"), fmt.Sprint("c", i)))
			readN(t, c, len(ack("c0")))
		}
		s.expectRefused(t, "tcp", s.addr) // reset: see abort
		if n := s.counter(`sluice_input_limit_violations_total{input="fw",limit="connections"}`); n != 1 {
			t.Fatalf("limit counter %d", n)
		}
		// A freed slot is usable again.
		c1.Close()
		deadline := time.Now().Add(5 * time.Second)
		for s.set.GetOrCreateGauge(`sluice_input_connections{input="fw"}`, nil).Get() != 1 {
			if time.Now().After(deadline) {
				t.Fatal("connection gauge did not drop")
			}
			time.Sleep(5 * time.Millisecond)
		}
		c4 := s.dial(t)
		c4.Write(message("app", 1700000000, rec("log", "x"), "c4"))
		if got := readN(t, c4, len(ack("c4"))); !bytes.Equal(got, ack("c4")) {
			t.Fatalf("ack %x", got)
		}
	})
}

// TestRunErrors: a taken port makes Run fail at once; Addr does not hang.
func TestRunErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	in, _ := newInput(t, config.ForwardInput{Listen: ln.Addr().String()}, &fakeQueue{})
	if err := in.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "listen tcp") {
		t.Fatalf("Run: %v", err)
	}
	if a := in.Addr(); a != nil {
		t.Fatalf("Addr %v after a failed Run", a)
	}
}

// TestNewErrors checks configuration errors are reported by New.
func TestNewErrors(t *testing.T) {
	bad := uint32(0o1777)
	for _, tc := range []struct {
		cfg  config.ForwardInput
		want string
	}{
		{config.ForwardInput{Tag: "docker.{nme}"}, "unknown placeholder {nme}"},
		{config.ForwardInput{Tag: "docker.{name"}, "unclosed"},
		{config.ForwardInput{MaxMessageBytes: -1}, "max_message_bytes must be positive"},
		{config.ForwardInput{UnixMode: &bad}, "unix_mode"},
		{config.ForwardInput{TLS: &config.TLS{Enabled: true}}, "cert_file and key_file are required"},
		{config.ForwardInput{Security: &config.Security{Users: []config.User{{Username: ""}}}}, "empty username"},
	} {
		_, err := New("fw", tc.cfg, newRouter(t, &fakeQueue{}), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestShutdown: Run returns after cancel with connections open, having
// stored what they sent (a held partial line too) and sent their acks.
func TestShutdown(t *testing.T) {
	s := startServer(t, config.ForwardInput{}, nil)
	c := s.dial(t)
	frag := dockerRecord("/web", "stdout", "first half ", "partial_message", "true",
		"partial_id", "p1", "partial_ordinal", "1", "partial_last", "false")
	c.Write(message("cid", 1700000000, frag, ""))
	c.Write(message("app", 1700000001, rec("log", "acked"), "c1"))
	readN(t, c, len(ack("c1")))
	idle := s.dial(t) // a connection that never sends
	_ = idle
	start := time.Now()
	s.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	got := s.q.snapshot()
	if len(got) != 2 {
		t.Fatalf("%d events after shutdown", len(got))
	}
	var logs []string
	for _, e := range got {
		logs = append(logs, decodeRecord(t, e.Record)["log"].(string))
	}
	if !reflect.DeepEqual(logs, []string{"acked", "first half "}) {
		t.Fatalf("logs %q", logs)
	}
}

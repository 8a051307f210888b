// Package receivertest is the conformance suite every receiver.Codec must
// pass: all four Forward modes, acks byte-exact, heartbeats, split writes,
// duplicates, Stop/Start at the same address, and the replay of real
// Fluentd/Fluent Bit client transcripts (testdata, copied from
// shared/fixtures/forward) whose recorded server acks must be reproduced
// byte for byte.
package receivertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Options tunes the suite for one codec.
type Options struct {
	// SkipFixtures maps a fixture name to the reason the codec cannot
	// decode it (a known limitation of that implementation).
	SkipFixtures map[string]string
}

// Run runs the suite against servers built by newServer (which must return
// a started server on addr).
func Run(t *testing.T, newServer func(t *testing.T, addr string) *receiver.Server, o Options) {
	t.Run("Modes", func(t *testing.T) { testModes(t, newServer(t, "127.0.0.1:0")) })
	t.Run("SplitWrites", func(t *testing.T) { testSplit(t, newServer(t, "127.0.0.1:0")) })
	t.Run("StopStart", func(t *testing.T) { testStopStart(t, newServer(t, "127.0.0.1:0")) })
	t.Run("Fixtures", func(t *testing.T) { testFixtures(t, newServer, o) })
}

// LogRecord returns a msgpack record {"log": <loggen payload>, "stream":
// "stdout"} for (src, seq).
func LogRecord(dst []byte, src string, seq int64) []byte {
	dst = msgp.AppendMapHeader(dst, 2)
	dst = msgp.AppendString(dst, "log")
	dst = msgp.AppendString(dst, fmt.Sprintf(`{"log_type":"app","src":%q,"seq":%d,"pad":"xyz"}`, src, seq))
	dst = msgp.AppendString(dst, "stream")
	return msgp.AppendString(dst, "stdout")
}

// FieldRecord returns a record with top-level "src" and "seq" (as the
// docker input writes with parse_json); float encodes seq as a float64.
func FieldRecord(dst []byte, src string, seq int64, float bool) []byte {
	dst = msgp.AppendMapHeader(dst, 4)
	dst = msgp.AppendString(dst, "log_type")
	dst = msgp.AppendString(dst, "app")
	dst = msgp.AppendString(dst, "src")
	dst = msgp.AppendString(dst, src)
	dst = msgp.AppendString(dst, "seq")
	if float {
		dst = msgp.AppendFloat64(dst, float64(seq))
	} else {
		dst = msgp.AppendInt64(dst, seq)
	}
	dst = msgp.AppendString(dst, "labels")
	dst = msgp.AppendMapHeader(dst, 1)
	dst = msgp.AppendString(dst, "seq")
	return msgp.AppendString(dst, "not-this-one")
}

// Packed returns a PackedForward request of records (src, from..to-1),
// gzip-compressed as two concatenated members when gz is set.
func Packed(src string, from, to int64, chunk string, gz bool) []byte {
	ns := time.Now().UnixNano()
	mid := to
	if gz {
		mid = from + (to-from)/2
	}
	var first, second, rec []byte
	for s := from; s < to; s++ {
		rec = LogRecord(rec[:0], src, s)
		if s < mid {
			first = wire.AppendEntry(first, ns, rec)
		} else {
			second = wire.AppendEntry(second, ns, rec)
		}
	}
	o := wire.Options{Chunk: chunk, Size: int(to - from)}
	entries := first
	if gz {
		g, err := wire.NewGzipper(1)
		if err != nil {
			panic(err)
		}
		entries = g.Compress(g.Compress(nil, first), second)
		o.Compressed = true
	}
	return wire.AppendPackedForward(nil, []byte("app.test"), entries, o)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAck reads one ack and returns its chunk.
func readAck(t *testing.T, c net.Conn, buf *[]byte) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	tmp := make([]byte, 512)
	for {
		if len(*buf) > 0 {
			chunk, n, err := wire.ParseAck(*buf)
			if err == nil {
				s := string(chunk)
				*buf = (*buf)[n:]
				return s
			}
			if err != wire.ErrShort {
				t.Fatalf("parse ack: %v", err)
			}
		}
		n, err := c.Read(tmp)
		if err != nil {
			t.Fatalf("read ack: %v", err)
		}
		*buf = append(*buf, tmp[:n]...)
	}
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func waitCount(t *testing.T, s *receiver.Server, n int64) {
	t.Helper()
	if !s.WaitCount(n, 5*time.Second) {
		t.Fatalf("count %d, want %d (%s; errors %v)", s.Count(), n, s.Stats(), s.Errors())
	}
}

func testModes(t *testing.T, s *receiver.Server) {
	c := dial(t, s.Addr())
	var acks []byte
	ns := time.Now().UnixNano()

	// PackedForward with a chunk: ack echoed verbatim (incl. a newline).
	write(t, c, Packed("p", 0, 100, "chunk-1\n", false))
	if got := readAck(t, c, &acks); got != "chunk-1\n" {
		t.Fatalf("ack %q, want %q", got, "chunk-1\n")
	}
	if got := s.Distinct("p"); got != 100 {
		t.Fatalf("after ack: distinct(p) = %d, want 100 (events must be recorded before the ack)", got)
	}

	// CompressedPackedForward, two gzip members.
	write(t, c, Packed("z", 0, 50, "chunk-2", true))
	if got := readAck(t, c, &acks); got != "chunk-2" {
		t.Fatalf("ack %q", got)
	}

	// Heartbeat, then Forward mode with top-level fields (int and float seq).
	write(t, c, []byte{0xc0})
	req := msgp.AppendArrayHeader(nil, 3)
	req = msgp.AppendString(req, "app.fields")
	req = msgp.AppendArrayHeader(req, 4)
	var rec []byte
	for i := range int64(4) {
		req = msgp.AppendArrayHeader(req, 2)
		req = wire.AppendEventTime(req, ns)
		rec = FieldRecord(rec[:0], "f", i, i%2 == 1)
		req = append(req, rec...)
	}
	req = msgp.AppendMapHeader(req, 1)
	req = msgp.AppendString(req, "chunk")
	req = msgp.AppendString(req, "chunk-3")
	write(t, c, req)
	if got := readAck(t, c, &acks); got != "chunk-3" {
		t.Fatalf("ack %q", got)
	}

	// Message mode: EventTime with chunk, int time without option.
	req = msgp.AppendArrayHeader(req[:0], 4)
	req = msgp.AppendString(req, "app.msg")
	req = wire.AppendEventTime(req, ns)
	req = LogRecord(req, "m", 0)
	req = msgp.AppendMapHeader(req, 1)
	req = msgp.AppendString(req, "chunk")
	req = msgp.AppendString(req, "chunk-4")
	write(t, c, req)
	if got := readAck(t, c, &acks); got != "chunk-4" {
		t.Fatalf("ack %q", got)
	}
	req = msgp.AppendArrayHeader(req[:0], 3)
	req = msgp.AppendString(req, "app.msg")
	req = msgp.AppendInt64(req, ns/1e9)
	req = LogRecord(req, "m", 1)
	write(t, c, req)

	// An unkeyed record still counts as an event.
	req = msgp.AppendArrayHeader(req[:0], 3)
	req = msgp.AppendString(req, "app.msg")
	req = msgp.AppendInt64(req, ns/1e9)
	req = msgp.AppendMapHeader(req, 1)
	req = msgp.AppendString(req, "log")
	req = msgp.AppendString(req, "plain text")
	write(t, c, req)

	// Duplicates: resend part of the first chunk.
	write(t, c, Packed("p", 90, 110, "chunk-5", false))
	if got := readAck(t, c, &acks); got != "chunk-5" {
		t.Fatalf("ack %q", got)
	}
	waitCount(t, s, 100+50+4+2+10)
	st := s.Stats()
	if st.Duplicates != 10 || st.Unkeyed != 1 || s.Distinct("p") != 110 || s.Distinct("z") != 50 || s.Distinct("f") != 4 || s.Distinct("m") != 2 {
		t.Fatalf("stats %s sources %v", st, s.Sources())
	}
	if m := s.Missing("p", 120); len(m) != 10 || m[0] != 110 || s.MissingCount("p", 120) != 10 {
		t.Fatalf("missing(p,120) = %v", m)
	}
	if m := s.Missing("z", 50); m != nil {
		t.Fatalf("missing(z,50) = %v", m)
	}
	if w := s.Window(time.Now().Add(-time.Minute), time.Now().Add(time.Second)); w.Events != st.Events {
		t.Fatalf("window events %d, want %d", w.Events, st.Events)
	}
	if errs := s.Errors(); len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
}

func testSplit(t *testing.T, s *receiver.Server) {
	c := dial(t, s.Addr())
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	var stream []byte
	for i := range int64(3) {
		stream = append(stream, Packed("s", i*10, i*10+10, "c"+strconv.Itoa(int(i)), i == 1)...)
	}
	for i := range stream { // one byte per write
		write(t, c, stream[i:i+1])
	}
	var acks []byte
	for i := range 3 {
		if got := readAck(t, c, &acks); got != "c"+strconv.Itoa(i) {
			t.Fatalf("ack %d: %q", i, got)
		}
	}
	waitCount(t, s, 30)
}

func testStopStart(t *testing.T, s *receiver.Server) {
	addr := s.Addr()
	c := dial(t, addr)
	var acks []byte
	write(t, c, Packed("r", 0, 10, "a", false))
	readAck(t, c, &acks)
	s.Stop()
	if s.Running() {
		t.Fatal("running after Stop")
	}
	// The connection is closed by the server.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after Stop succeeded")
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Fatal("dial succeeded while stopped")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Fatalf("address changed: %s -> %s", addr, s.Addr())
	}
	c = dial(t, addr)
	acks = acks[:0]
	write(t, c, Packed("r", 10, 20, "b", false))
	if got := readAck(t, c, &acks); got != "b" {
		t.Fatalf("ack %q", got)
	}
	waitCount(t, s, 20)
	if s.Accepted() != 2 {
		t.Fatalf("accepted %d, want 2", s.Accepted())
	}
}

type fixture struct {
	Name     string   `json:"name"`
	Events   int64    `json:"events"`
	Requests int64    `json:"requests"`
	Acks     []string `json:"acks"`
}

func testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

func testFixtures(t *testing.T, newServer func(t *testing.T, addr string) *receiver.Server, o Options) {
	js, err := os.ReadFile(filepath.Join(testdata(), "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []fixture
	if err := json.Unmarshal(js, &fixtures); err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		t.Run(f.Name, func(t *testing.T) {
			if why, ok := o.SkipFixtures[f.Name]; ok {
				t.Skip(why)
			}
			client, err := os.ReadFile(filepath.Join(testdata(), f.Name+".client.bin"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(testdata(), f.Name+".server.bin"))
			if err != nil {
				t.Fatal(err)
			}
			s := newServer(t, "127.0.0.1:0")
			c := dial(t, s.Addr())
			write(t, c, client)
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read replies: %v", err)
			}
			if string(got) != string(want) {
				t.Fatalf("server bytes differ from the recorded server's:\n got %x\nwant %x", got, want)
			}
			ok := s.WaitFunc(ctxTimeout(t, 5*time.Second), func(st receiver.Stats) bool {
				return st.Requests >= f.Requests && st.Unkeyed+st.Events >= f.Events
			})
			st := s.Stats()
			if ok != nil || st.Requests != f.Requests || st.Unkeyed+st.Events != f.Events {
				t.Fatalf("stats %s, want %d requests %d events; errors %v", st, f.Requests, f.Events, s.Errors())
			}
			if errs := s.Errors(); len(errs) != 0 {
				t.Fatalf("errors: %v", errs)
			}
		})
	}
}

// ServeBench benchmarks a started server s at addr: 1000-event
// PackedForward chunks (200-byte records) sent over loopback, each waiting
// for its ack. It reports events/s; allocations include the client's.
func ServeBench(b *testing.B, addr string, s *receiver.Server) {
	const events = 1000
	req := Packed("bench", 0, events, "chunk-id-000000000000000", false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ack := make([]byte, 256)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			m, err := c.Read(ack[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
			if _, _, err := wire.ParseAck(ack[:n]); err == nil {
				break
			}
		}
	}
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
	if s.Count() != events {
		b.Fatalf("count %d", s.Count())
	}
}

package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// valueLen returns the length of the complete msgpack value at the front
// of b (internal/wire's scanner, independent of the framer under test), or
// ok=false if b does not start with one.
func valueLen(b []byte) (int, bool) {
	rest, ok := wire.Skip(b)
	return len(b) - len(rest), ok
}

// storedEvent is one event as a queue received it.
type storedEvent struct {
	Tag    string
	Time   int64
	Record []byte // raw msgpack map
}

// fakeQueue records appended chunks. With gate set, Append waits until a
// value is received on it (or ctx ends), after signalling entered.
type fakeQueue struct {
	mu      sync.Mutex
	events  []storedEvent
	appends int
	gate    chan struct{}
	entered chan struct{}
	err     error
	okFirst int // with err set: this many appends still succeed first
	syncs   int
	syncErr error // returned by SyncTo
}

func (q *fakeQueue) Append(ctx context.Context, tag []byte, count int, entries []byte) error {
	if q.gate != nil {
		select {
		case q.entered <- struct{}{}:
		default:
		}
		select {
		case <-q.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		if q.okFirst == 0 {
			return q.err
		}
		q.okFirst--
	}
	q.appends++
	n := 0
	err := wire.ForEachEntry(entries, func(ns int64, rec []byte) error {
		q.events = append(q.events, storedEvent{Tag: string(tag), Time: ns, Record: bytes.Clone(rec)})
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if n != count {
		return fmt.Errorf("fake queue: count %d but %d entries", count, n)
	}
	return nil
}

func (q *fakeQueue) Sync() error { return nil }

func (q *fakeQueue) Mark() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return uint64(q.appends)
}

func (q *fakeQueue) SyncTo(uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.syncs++
	return q.syncErr
}

func (q *fakeQueue) setErr(err error, okFirst int) {
	q.mu.Lock()
	q.err, q.okFirst = err, okFirst
	q.mu.Unlock()
}

func (q *fakeQueue) snapshot() []storedEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]storedEvent(nil), q.events...)
}

// waitEvents waits until the queue holds at least n events.
func (q *fakeQueue) waitEvents(t testing.TB, n int) []storedEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := q.snapshot()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d events, have %d", n, len(ev))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newRouter routes every tag to q.
func newRouter(t testing.TB, q pipeline.Queue) *pipeline.Router {
	t.Helper()
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// server is a running Input on 127.0.0.1:0.
type server struct {
	in   *Input
	q    *fakeQueue
	set  *metrics.Set
	addr string
	stop func()
}

// startServer runs an Input with cfg (Listen defaults to 127.0.0.1:0) and
// stops it at the end of the test.
func startServer(t testing.TB, cfg config.ForwardInput, q *fakeQueue) *server {
	t.Helper()
	if q == nil {
		q = &fakeQueue{}
	}
	if cfg.Listen == "" && cfg.Unix == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	set := metrics.NewSet()
	in, err := New("fw", cfg, newRouter(t, q), nil, set)
	if err != nil {
		t.Fatal(err)
	}
	return runServer(t, in, q, set)
}

func runServer(t testing.TB, in *Input, q *fakeQueue, set *metrics.Set) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	s := &server{in: in, q: q, set: set}
	if a := in.Addr(); a != nil {
		s.addr = a.String()
	}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return")
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

func (s *server) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// counter reads a metric of the server's set by its full name.
func (s *server) counter(name string) uint64 {
	return s.set.GetOrCreateCounter(name).Get()
}

// readN reads exactly n bytes with a timeout.
func readN(t testing.TB, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// readAll reads until EOF (the server closed) with a timeout.
func readAll(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read to EOF: %v", err)
	}
	return b
}

// isReset reports a connection reset: the server closed with unread data,
// which on Linux becomes an RST (as Fluentd's refusals are).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// expectNothing asserts that nothing arrives on c within d.
func expectNothing(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 {
		t.Fatalf("unexpected byte %#x from server", b[0])
	}
	if err != nil && !isTimeoutErr(err) {
		t.Fatalf("expected silence, got %v", err)
	}
	c.SetReadDeadline(time.Time{})
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Request builders (hand-written msgpack, independent of wire's encoders).

func rec(kv ...string) []byte {
	b := msgp.AppendMapHeader(nil, uint32(len(kv)/2))
	for _, s := range kv {
		b = msgp.AppendString(b, s)
	}
	return b
}

func eventTime(sec, nsec uint32) []byte {
	return []byte{0xd7, 0x00, byte(sec >> 24), byte(sec >> 16), byte(sec >> 8), byte(sec),
		byte(nsec >> 24), byte(nsec >> 16), byte(nsec >> 8), byte(nsec)}
}

func options(chunk string) []byte {
	if chunk == "" {
		return []byte{0x80}
	}
	b := msgp.AppendMapHeader(nil, 1)
	b = msgp.AppendString(b, "chunk")
	return msgp.AppendString(b, chunk)
}

// message is [tag, EventTime, record, option].
func message(tag string, sec uint32, record []byte, chunk string) []byte {
	b := append([]byte{0x94}, msgp.AppendString(nil, tag)...)
	b = append(b, eventTime(sec, 0)...)
	b = append(b, record...)
	return append(b, options(chunk)...)
}

func entry(sec, nsec uint32, record []byte) []byte {
	b := append([]byte{0x92}, eventTime(sec, nsec)...)
	return append(b, record...)
}

// ack is the reply {"ack": chunk}, built by hand: 81 a3 "ack" + str.
func ack(chunk string) []byte {
	return msgp.AppendString([]byte{0x81, 0xa3, 'a', 'c', 'k'}, chunk)
}

// pipeConn serves one end of a net.Pipe with in's connection handler and
// returns the other end; done is closed when the handler returned.
func pipeConn(t testing.TB, in *Input) (client net.Conn, done chan struct{}) {
	t.Helper()
	cli, srv := net.Pipe()
	c := newConn(in, context.Background(), srv)
	done = make(chan struct{})
	go func() {
		defer close(done)
		c.serve()
	}()
	t.Cleanup(func() {
		cli.Close()
		<-done
	})
	return cli, done
}

// newInput builds an Input (not running) over a fake queue.
func newInput(t testing.TB, cfg config.ForwardInput, q *fakeQueue) (*Input, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	in, err := New("fw", cfg, newRouter(t, q), nil, set)
	if err != nil {
		t.Fatal(err)
	}
	return in, set
}

// Record comparison: records decoded to generic values with numbers as
// strings, so msgpack and JSON fixtures compare equal.

func decodeRecord(t testing.TB, b []byte) map[string]any {
	t.Helper()
	v, rest, err := msgp.ReadIntfBytes(b)
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode record %x: %v (rest %d)", b, err, len(rest))
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		t.Fatalf("record is a %T", v)
	}
	return m
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalize(e)
		}
		return s
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return normalize(float64(x))
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return string(x)
		}
		if _, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return string(x)
		}
		f, _ := x.Float64()
		return normalize(f)
	}
	return v
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// fakeSource is an in-memory Source: a fixed list of chunks, acks and
// discards counted.
type fakeSource struct {
	mu        sync.Mutex
	chunks    []buffer.Chunk
	next      int
	acked     map[buffer.ID]int
	discarded map[buffer.ID]string // reason
	added     chan struct{}        // signalled when chunks are added or rewound
	changed   chan struct{}        // signalled on every ack
	rewinds   int
}

func newFakeSource() *fakeSource {
	return &fakeSource{acked: make(map[buffer.ID]int), discarded: make(map[buffer.ID]string), added: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

// addSeq adds n chunks of per events each; event records are
// {"seq": "<k>", "pad": "..."} with k counting from the source's total.
func (f *fakeSource) addSeq(n, per int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		k := len(f.chunks)
		var e []byte
		for j := range per {
			e = wire.AppendEntry(e, time.Now().UnixNano(), seqRecord(k*per+j, 0))
		}
		f.chunks = append(f.chunks, buffer.Chunk{ID: buffer.ID{Segment: 1, Offset: int64(k) * 1000}, Tag: []byte("test.tag"), Count: per, Entries: e})
	}
	signal(f.added)
}

func seqRecord(seq, pad int) []byte {
	r := msgp.AppendMapHeader(nil, 2)
	r = msgp.AppendString(r, "seq")
	r = msgp.AppendString(r, strconv.Itoa(seq))
	r = msgp.AppendString(r, "pad")
	return msgp.AppendString(r, string(bytes.Repeat([]byte("x"), pad)))
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (f *fakeSource) Next(ctx context.Context) (buffer.Chunk, error) {
	for {
		f.mu.Lock()
		for f.next < len(f.chunks) {
			c := f.chunks[f.next]
			f.next++
			if _, gone := f.discarded[c.ID]; f.acked[c.ID] == 0 && !gone {
				f.mu.Unlock()
				return c, nil
			}
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return buffer.Chunk{}, ctx.Err()
		case <-f.added:
		}
	}
}

func (f *fakeSource) Ack(id buffer.ID) {
	f.mu.Lock()
	f.acked[id]++
	f.mu.Unlock()
	signal(f.changed)
}

func (f *fakeSource) Settle(id buffer.ID, s buffer.Settlement) {
	if s.DeadLettered == 0 && s.Dropped == 0 {
		f.Ack(id)
		return
	}
	f.Discard(id, s.Reason)
}

func (f *fakeSource) Discard(id buffer.ID, reason string) {
	f.mu.Lock()
	f.discarded[id] = reason
	f.mu.Unlock()
	signal(f.changed)
}

// discards returns the discarded chunks' reasons.
func (f *fakeSource) discards() map[buffer.ID]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.discarded)
}

func (f *fakeSource) Rewind() {
	f.mu.Lock()
	f.next = 0
	f.rewinds++
	f.mu.Unlock()
	signal(f.added)
}

// waitAcked waits until every chunk was acked, failing the test after d.
func (f *fakeSource) waitAcked(t testing.TB, d time.Duration) {
	t.Helper()
	f.waitSettled(t, d, false)
}

// waitSettled waits until every chunk was acked or, with discards,
// discarded.
func (f *fakeSource) waitSettled(t testing.TB, d time.Duration, discards bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		f.mu.Lock()
		n, total, dup := len(f.acked), len(f.chunks), 0
		if discards {
			n += len(f.discarded)
		}
		for _, c := range f.acked {
			dup += c - 1
		}
		f.mu.Unlock()
		if dup > 0 {
			t.Fatalf("source: %d chunks acked more than once", dup)
		}
		if n == total {
			return
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("source: %d of %d chunks settled after %s", n, total, d)
		}
	}
}

func (f *fakeSource) ackedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.acked)
}

// srvOpts scripts a test Forward server.
type srvOpts struct {
	ack        string        // "" acks each request; "never"; "reverse" acks batches of reverseN in reverse order
	reverseN   int           // batch size for "reverse"
	ackDelay   time.Duration // delay before each ack
	neverFirst int           // the first neverFirst connections never ack
	sharedKey  string        // enables the handshake
	hostname   string        // server self_hostname; default "srv"
	users      map[string]string
	noKeepaliv bool // HELO keepalive false; close after each request's ack
	tls        *tls.Config
	helo       bool // send a HELO even without a shared key
}

// request is what the test server saw of one request.
type request struct {
	conn  int
	mode  wire.Mode
	tag   string
	chunk string
	size  int
	seqs  []int
	acked bool
}

// testServer is a Forward server for tests, built on the wire codec.
type testServer struct {
	t    testing.TB
	opts srvOpts
	ln   net.Listener
	addr string

	mu       sync.Mutex
	reqs     []request
	conns    int
	authFail int
	open     map[net.Conn]bool
	changed  chan struct{}
	wg       sync.WaitGroup
}

func startServer(t testing.TB, network, addr string, o srvOpts) *testServer {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if o.hostname == "" {
		o.hostname = "srv"
	}
	s := &testServer{t: t, opts: o, ln: ln, addr: ln.Addr().String(), open: make(map[net.Conn]bool), changed: make(chan struct{}, 1)}
	if network == "unix" {
		s.addr = "unix://" + addr
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server: the listener and every connection, abruptly.
func (s *testServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		n := s.conns
		s.open[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.open, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serve(c, n)
		}()
	}
}

func (s *testServer) serve(c net.Conn, connN int) {
	rw := io.ReadWriter(c)
	if s.opts.tls != nil {
		tc := tls.Server(c, s.opts.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		rw = tc
	}
	var buf []byte
	rb := make([]byte, 64<<10)
	read := func() bool {
		n, err := rw.Read(rb)
		buf = append(buf, rb[:n]...)
		return err == nil || n > 0
	}
	if s.opts.sharedKey != "" || s.opts.helo {
		nonce, auth := make([]byte, 16), make([]byte, 16)
		rand.Read(nonce)
		rand.Read(auth)
		if _, err := rw.Write(wire.AppendHelo(nil, wire.Helo{Nonce: nonce, Auth: auth, Keepalive: !s.opts.noKeepaliv})); err != nil {
			return
		}
		var p wire.Ping
		for {
			var n int
			var err error
			p, n, err = wire.ReadPing(buf)
			if err == nil {
				buf = buf[n:]
				break
			}
			if !errors.Is(err, wire.ErrShort) || !read() {
				return
			}
		}
		reason := ""
		if wire.SharedKeyDigest(p.Salt, p.Hostname, nonce, []byte(s.opts.sharedKey)) != string(p.SharedKeyDigest) {
			reason = "shared_key mismatch"
		} else if s.opts.users != nil {
			pw, ok := s.opts.users[string(p.Username)]
			if !ok || wire.PasswordDigest(auth, p.Username, []byte(pw)) != string(p.PasswordDigest) {
				reason = "username/password mismatch"
			}
		}
		if reason != "" {
			s.mu.Lock()
			s.authFail++
			s.mu.Unlock()
			rw.Write(wire.AppendPong(nil, wire.Pong{Reason: []byte(reason)}))
			return
		}
		rw.Write(wire.AppendPong(nil, wire.Pong{OK: true, Hostname: []byte(s.opts.hostname),
			SharedKeyDigest: []byte(wire.SharedKeyDigest(p.Salt, []byte(s.opts.hostname), nonce, []byte(s.opts.sharedKey)))}))
	}
	never := s.opts.ack == "never" || connN <= s.opts.neverFirst
	var pending []string
	var scratch []byte
	for {
		req, n, err := wire.ReadRequest(buf, 0)
		if errors.Is(err, wire.ErrShort) {
			if !read() {
				return
			}
			continue
		}
		if err != nil {
			s.t.Errorf("test server: %v", err)
			return
		}
		r := request{conn: connN, mode: req.Mode, tag: string(req.Tag), chunk: string(req.Chunk), size: req.Size}
		scratch, _, err = req.Events(scratch, 0, func(_ int64, rec []byte) error {
			v, ok := wire.LookupString(rec, []byte("seq"))
			if !ok {
				k, ok := conformance.SeqOf(rec) // the suite's integer seq
				if !ok {
					return errors.New("record without seq")
				}
				r.seqs = append(r.seqs, k)
				return nil
			}
			k, err := strconv.Atoi(string(v))
			r.seqs = append(r.seqs, k)
			return err
		})
		if err != nil {
			s.t.Errorf("test server: events: %v", err)
			return
		}
		buf = buf[n:]
		idx := s.record(r)
		if req.Chunk == nil || never {
			if s.opts.noKeepaliv {
				return
			}
			continue
		}
		if s.opts.ackDelay > 0 {
			time.Sleep(s.opts.ackDelay)
		}
		pending = append(pending, string(req.Chunk))
		if s.opts.ack == "reverse" && len(pending) < s.opts.reverseN {
			continue
		}
		// Stored before acked, as a real server does.
		s.markAcked(idx, pending)
		for i := len(pending) - 1; i >= 0; i-- {
			if _, err := rw.Write(wire.AppendAck(nil, []byte(pending[i]))); err != nil {
				return
			}
		}
		pending = pending[:0]
		if s.opts.noKeepaliv {
			return
		}
	}
}

func (s *testServer) record(r request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	signal(s.changed)
	return len(s.reqs) - 1
}

func (s *testServer) markAcked(last int, chunks []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := last; i >= 0 && len(chunks) > 0; i-- {
		for j, c := range chunks {
			if s.reqs[i].chunk == c && !s.reqs[i].acked {
				s.reqs[i].acked = true
				chunks = append(chunks[:j:j], chunks[j+1:]...)
				break
			}
		}
	}
}

func (s *testServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// waitRequests waits until the server has seen n requests.
func (s *testServer) waitRequests(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		got := len(s.reqs)
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("server %s saw %d requests, want %d", s.addr, got, n)
		}
	}
}

// seqCount counts, over the servers' acked requests, how often each seq
// arrived.
func seqCount(srvs ...*testServer) map[int]int {
	m := make(map[int]int)
	for _, s := range srvs {
		for _, r := range s.requests() {
			if !r.acked {
				continue
			}
			for _, k := range r.seqs {
				m[k]++
			}
		}
	}
	return m
}

// checkAllSeqs fails unless every seq in [0, n) was acked by some server,
// and returns the number of duplicate deliveries.
func checkAllSeqs(t testing.TB, n int, srvs ...*testServer) int {
	t.Helper()
	m := seqCount(srvs...)
	dups := 0
	for k := range n {
		switch c := m[k]; {
		case c == 0:
			t.Fatalf("seq %d never acked", k)
		case c > 1:
			dups += c - 1
		}
	}
	if len(m) != n {
		t.Fatalf("servers acked %d distinct seqs, want %d", len(m), n)
	}
	return dups
}

// baseConfig is a fast configuration for tests.
func baseConfig(addrs ...string) config.ForwardOutput {
	c := config.DefaultForwardOutput()
	c.AckTimeout = 2 * time.Second
	c.ConnectTimeout = time.Second
	c.HeartbeatInterval = 50 * time.Millisecond
	c.RetryInitial = 10 * time.Millisecond
	c.RetryMax = 100 * time.Millisecond
	for _, a := range addrs {
		c.Servers = append(c.Servers, withServer(a))
	}
	return c
}

// withServer is a server entry with the default weight, as config gives it.
func withServer(addr string) config.ForwardServer {
	s := config.DefaultForwardServer()
	s.Address = addr
	return s
}

// running is an Output running in the background.
type running struct {
	o    *Output
	set  *metrics.Set
	logs *syncBuffer
	stop func() error
}

func start(t testing.TB, cfg config.ForwardOutput, src delivery.Source, setup ...func(*Output)) *running {
	t.Helper()
	r := &running{set: metrics.NewSet(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o, err := New("out1", cfg, config.Delivery{}, "", src, log, r.set)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range setup {
		f(o)
	}
	r.o = o
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("Run did not return within 10s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func (r *running) counter(name, server string) uint64 {
	return r.set.GetOrCreateCounter(fmt.Sprintf(`%s{output="out1",server=%q}`, name, server)).Get()
}

func (r *running) gauge(server string) float64 {
	return r.set.GetOrCreateGauge(fmt.Sprintf(`sluice_output_server_up{output="out1",server=%q}`, server), nil).Get()
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// eventually polls cond every 10ms for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freeAddr returns a loopback address nobody listens on (yet).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// bufferChunk is chunk i holding one entry with record rec.
func bufferChunk(i int, rec []byte) buffer.Chunk {
	return buffer.Chunk{ID: buffer.ID{Segment: 2, Offset: int64(i)}, Tag: []byte("big"), Count: 1,
		Entries: wire.AppendEntry(nil, time.Now().UnixNano(), rec)}
}

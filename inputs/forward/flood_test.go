package forward

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// Tests of issue 12.1: idle and never-used connections must not starve
// real clients of connection slots.

// waitCounter waits until the counter named name reaches want.
func (s *server) waitCounter(t testing.TB, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := s.counter(name)
		if n == want {
			return
		}
		if n > want || time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", name, n, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitAtLeast waits until the counter named name reaches at least want.
func (s *server) waitAtLeast(t testing.TB, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.counter(name) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want at least %d", name, s.counter(name), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitGauge waits until the connections gauge is want.
func (s *server) waitGauge(t testing.TB, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.gauge() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%v connections open, want %v", s.gauge(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *server) gauge() float64 {
	return s.set.GetOrCreateGauge(`sluice_input_connections{input="fw"}`, nil).Get()
}

const (
	mAccepted       = `sluice_input_connections_total{input="fw"}`
	mEvictUnused    = `sluice_input_connections_evicted_total{input="fw",reason="unused"}`
	mEvictIdle      = `sluice_input_connections_evicted_total{input="fw",reason="idle"}`
	mEvictHandshake = `sluice_input_connections_evicted_total{input="fw",reason="handshake_timeout"}`
	mRefusedTCP     = `sluice_input_limit_violations_total{input="fw",limit="connections"}`
	mRefusedUnix    = `sluice_input_limit_violations_total{input="fw",limit="unix_connections"}`
	mRefusedSource  = `sluice_input_limit_violations_total{input="fw",limit="connections_per_source"}`
	mHandshakeFail  = `sluice_input_handshake_failures_total{input="fw"}`
)

// flood opens n connections to network/addr that send nothing. They are
// closed at the end of the test.
func flood(t testing.TB, network, addr string, n int) []net.Conn {
	t.Helper()
	cs := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(cs), err)
		}
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return cs
}

// expectRefused connects to network/addr and checks the server closes
// the connection without answering a request. A refusal is a reset, which
// may already fail the connect.
func (s *server) expectRefused(t testing.TB, network, addr string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		if isReset(err) {
			return
		}
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(message("refused", 1700000000, rec("log", "x"), "r")) //nolint:errcheck // may be reset already
	if got := readAll(t, c); len(got) != 0 {
		t.Fatalf("refused connection got %x", got)
	}
}

// sendAcked sends n events with chunks over c and checks every ack.
func sendAcked(t testing.TB, c net.Conn, tag string, n int) {
	t.Helper()
	for i := range n {
		chunk := fmt.Sprintf("%s-%d", tag, i)
		if _, err := c.Write(message(tag, 1700000000, rec("log", chunk), chunk)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if got := readN(t, c, len(ack(chunk))); !bytes.Equal(got, ack(chunk)) {
			t.Fatalf("ack %d: %x", i, got)
		}
	}
}

// wasReset reports whether the server reset c (read returns ECONNRESET).
func wasReset(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if isReset(err) {
		return nil
	}
	return fmt.Errorf("read on an evicted connection: %v, want a reset", err)
}

// countTagged counts stored events of tag.
func countTagged(ev []storedEvent, tag string) int {
	n := 0
	for _, e := range ev {
		if e.Tag == tag {
			n++
		}
	}
	return n
}

// TestFloodIdleTCP: more connections than max_connections connect and
// send nothing; a real client that comes after them is served (one of the
// silent ones, the oldest, is closed for it), and its events are all
// stored and acked. Silent connections are reset, not closed quietly.
func TestFloodIdleTCP(t *testing.T) {
	const max, extra = 64, 6
	s := startServer(t, config.ForwardInput{MaxConnections: max}, nil)
	cs := flood(t, "tcp", s.addr, max+extra)
	s.waitCounter(t, mAccepted, max+extra)
	s.waitCounter(t, mEvictUnused, extra)

	t0 := time.Now()
	c := s.dial(t)
	sendAcked(t, c, "real", 50)
	took := time.Since(t0)
	s.waitCounter(t, mEvictUnused, extra+1)
	if got := countTagged(s.q.snapshot(), "real"); got != 50 {
		t.Fatalf("%d events of the real client stored, want 50", got)
	}
	if n := s.counter(mRefusedTCP); n != 0 {
		t.Fatalf("%d connections refused", n)
	}
	// The oldest silent connections were the ones closed, with a reset.
	for i := range extra + 1 {
		if err := wasReset(cs[i]); err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
	}
	expectNothing(t, cs[extra+1], 50*time.Millisecond)
	if g := s.gauge(); g > max {
		t.Fatalf("%v connections open, max %d", g, max)
	}
	t.Logf("after a flood of %d silent connections (max_connections %d): 50 acked events in %v", max+extra, max, took.Round(time.Millisecond))
}

// TestFloodReconnecting: the flood reconnects every connection the agent
// closes (after 2 ms), as an attacker would; real clients are still served
// and their connections, once used, are never the ones closed. (A new
// connection is the last in line among the never-used ones, so it has as
// many evictions as there are slots to send its first request: here 64
// evictions, at least 128 ms.)
func TestFloodReconnecting(t *testing.T) {
	const max = 64
	s := startServer(t, config.ForwardInput{MaxConnections: max}, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// One more flooder than there are slots: every reconnect evicts
	// another flooder, which reconnects in turn.
	for range max + 1 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", s.addr)
				if err != nil {
					continue
				}
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				c.Read(make([]byte, 1)) // until reset
				c.Close()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	s.waitAtLeast(t, mEvictUnused, 2*max)
	var clients []net.Conn
	for i := range 8 {
		c := s.dial(t)
		sendAcked(t, c, fmt.Sprint("client", i), 1)
		clients = append(clients, c)
	}
	evictedBefore := s.counter(mEvictUnused)
	s.waitAtLeast(t, mEvictUnused, evictedBefore+4*max)
	for i, c := range clients {
		sendAcked(t, c, fmt.Sprint("client", i), 20)
	}
	for i := range clients {
		if got := countTagged(s.q.snapshot(), fmt.Sprint("client", i)); got != 21 {
			t.Fatalf("client %d: %d events stored, want 21", i, got)
		}
	}
	if n := s.counter(mEvictIdle) + s.counter(mRefusedTCP); n != 0 {
		t.Fatalf("%d used connections evicted or refused", n)
	}
	t.Logf("%d silent connections evicted while 8 clients sent 168 acked events", s.counter(mEvictUnused))
}

// TestUnixOwnPool: TCP connections that hold every TCP slot (busy ones,
// which are never evicted) cannot take the unix socket's slots; the unix
// socket has a limit of its own.
func TestUnixOwnPool(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fluent.sock")
	s := startServer(t, config.ForwardInput{Listen: "127.0.0.1:0", Unix: sock, MaxConnections: 4, MaxUnixConnections: 2}, nil)
	for i := range 4 {
		sendAcked(t, s.dial(t), fmt.Sprint("tcp", i), 1)
	}
	// The TCP pool is full and nothing in it may be closed: refused.
	s.expectRefused(t, "tcp", s.addr)
	s.waitCounter(t, mRefusedTCP, 1)

	var unix []net.Conn
	for i := range 2 {
		u, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
		sendAcked(t, u, fmt.Sprint("unix", i), 10)
		unix = append(unix, u)
	}
	s.expectRefused(t, "unix", sock)
	s.waitCounter(t, mRefusedUnix, 1)
	if got := countTagged(s.q.snapshot(), "refused"); got != 0 {
		t.Fatalf("%d events of refused connections stored", got)
	}
	if n := s.counter(mRefusedTCP); n != 1 {
		t.Fatalf("TCP refusals %d", n)
	}

	// Silent unix connections are evicted from the unix pool only.
	for _, u := range unix {
		u.Close()
	}
	s.waitGauge(t, 4)
	flood(t, "unix", sock, 3)
	s.waitCounter(t, mEvictUnused, 1)
	u2, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer u2.Close()
	sendAcked(t, u2, "unix-late", 5)
	s.waitCounter(t, mEvictUnused, 2)
}

// TestMaxConnectionsPerSource: one source address cannot hold more than
// max_connections_per_source connections; at its limit its own silent
// connections are closed for its new ones (never another source's), and
// with none to close the new one is refused. Connections from the node
// itself are exempt (sourceOf, tested below).
func TestMaxConnectionsPerSource(t *testing.T) {
	cfg := config.ForwardInput{Listen: "127.0.0.1:0", MaxConnectionsPerSource: 3}
	q := &fakeQueue{}
	in, set := newInput(t, cfg, q)
	// Loopback is exempt: count by the raw remote address for the test.
	in.sourceOf = func(nc net.Conn) netip.Addr {
		return nc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	}
	s := runServer(t, in, q, set)
	dialFrom := func(ip string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Source B: one silent connection, oldest of all.
	b := dialFrom("127.0.0.2")
	s.waitCounter(t, mAccepted, 1)
	// Source A: three that send, then one more: refused.
	for i := range 3 {
		sendAcked(t, dialFrom("127.0.0.1"), fmt.Sprint("a", i), 1)
	}
	if c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial("tcp", s.addr); err == nil {
		if got := readAll(t, c); len(got) != 0 {
			t.Fatalf("got %x", got)
		}
		c.Close()
	} else if !isReset(err) {
		t.Fatal(err)
	}
	s.waitCounter(t, mRefusedSource, 1)
	// Source B is not affected by A's limit.
	sendAcked(t, dialFrom("127.0.0.2"), "b", 3)

	// Source C: three silent connections, then a real one: C's oldest
	// silent connection makes room, not B's older one.
	cs := []net.Conn{dialFrom("127.0.0.3"), dialFrom("127.0.0.3"), dialFrom("127.0.0.3")}
	s.waitCounter(t, mAccepted, 8)
	sendAcked(t, dialFrom("127.0.0.3"), "c", 3)
	s.waitCounter(t, mEvictUnused, 1)
	if err := wasReset(cs[0]); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, b, 50*time.Millisecond)
	if n := s.counter(mRefusedSource); n != 1 {
		t.Fatalf("per-source refusals %d", n)
	}
}

// addrConn is a net.Conn with given addresses, for sourceOf.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func TestSourceOf(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, tc := range []struct {
		local, remote net.Addr
		want          string // "" exempt
	}{
		{tcp("127.0.0.1:24224"), tcp("127.0.0.1:5000"), ""},
		{tcp("127.0.0.1:24224"), tcp("127.9.9.9:5000"), ""},
		{tcp("[::1]:24224"), tcp("[::1]:5000"), ""},
		// dockerd dialling the node's own address 10.0.0.5
		{tcp("10.0.0.5:24224"), tcp("10.0.0.5:40000"), ""},
		{tcp("[::ffff:10.0.0.5]:24224"), tcp("10.0.0.5:40000"), ""},
		// a container on a bridge, another node
		{tcp("172.17.0.1:24224"), tcp("172.17.0.2:40000"), "172.17.0.2"},
		{tcp("10.0.0.5:24224"), tcp("[::ffff:10.0.0.9]:40000"), "10.0.0.9"},
		{&net.UnixAddr{Name: "/s", Net: "unix"}, &net.UnixAddr{Net: "unix"}, ""},
	} {
		got := sourceOf(addrConn{local: tc.local, remote: tc.remote})
		if (tc.want == "" && got.IsValid()) || (tc.want != "" && got.String() != tc.want) {
			t.Errorf("%v -> %v: source %v, want %q", tc.remote, tc.local, got, tc.want)
		}
	}
}

// TestHandshakeDeadline: with shared_key, a client that does not complete
// the handshake within handshake_timeout is closed (counted); and when
// the pool is full of such clients a real one is still served at once.
func TestHandshakeDeadline(t *testing.T) {
	sec := &config.Security{SelfHostname: "srv", SharedKey: "KEY"}
	t.Run("deadline", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{Security: sec, HandshakeTimeout: 600 * time.Millisecond}, nil)
		c := s.dial(t)
		readValue(t, c) // HELO
		t0 := time.Now()
		got := readAll(t, c)
		if d := time.Since(t0); len(got) != 0 || d > 3*time.Second {
			t.Fatalf("got %x after %v", got, d)
		}
		s.waitCounter(t, mEvictHandshake, 1)
		s.waitCounter(t, mHandshakeFail, 1)
		// A slow but complete handshake within the deadline is fine, and
		// the connection may then idle past it.
		c2 := s.dial(t)
		time.Sleep(100 * time.Millisecond)
		if _, pong := clientHandshake(t, c2, "cli", "KEY", "", ""); !pong.OK {
			t.Fatalf("PONG %+v", pong)
		}
		time.Sleep(800 * time.Millisecond)
		sendAcked(t, c2, "app", 2)
		if n := s.counter(mEvictHandshake); n != 1 {
			t.Fatalf("handshake timeouts %d", n)
		}
	})
	t.Run("pool full of unauthenticated connections", func(t *testing.T) {
		const max = 16
		s := startServer(t, config.ForwardInput{Security: sec, MaxConnections: max}, nil)
		cs := flood(t, "tcp", s.addr, max)
		for _, c := range cs {
			readValue(t, c) // HELO: registered
		}
		c := s.dial(t)
		if _, pong := clientHandshake(t, c, "cli", "KEY", "", ""); !pong.OK {
			t.Fatalf("PONG %+v", pong)
		}
		sendAcked(t, c, "app", 20)
		s.waitCounter(t, mEvictUnused, 1)
		if err := wasReset(cs[0]); err != nil {
			t.Fatal(err)
		}
		// Authenticated, the client is not evicted by later floods.
		flood(t, "tcp", s.addr, 2*max)
		s.waitCounter(t, mEvictUnused, 1+2*max)
		sendAcked(t, c, "app2", 5)
		if n := s.counter(mHandshakeFail); n != 0 {
			t.Fatalf("handshake failures %d (evictions are not failures)", n)
		}
	})
	t.Run("tls", func(t *testing.T) {
		pki := newTestPKI(t)
		s := startServer(t, config.ForwardInput{HandshakeTimeout: 300 * time.Millisecond,
			TLS: &config.TLS{Enabled: true, CertFile: pki.certFile, KeyFile: pki.keyFile}}, nil)
		c := s.dial(t) // no ClientHello
		t0 := time.Now()
		readAll(t, c)
		if d := time.Since(t0); d > 3*time.Second {
			t.Fatalf("closed after %v", d)
		}
		s.waitCounter(t, mEvictHandshake, 1)
		tc, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		time.Sleep(500 * time.Millisecond) // idle past the deadline after the handshake
		sendAcked(t, tc, "app", 2)
	})
}

// TestIdleEviction: a connection that was used is closed only when the
// pool is full and it has sent nothing for idle_timeout, the longest idle
// first, never while there is room; silent connections go before it.
func TestIdleEviction(t *testing.T) {
	const idle = 400 * time.Millisecond
	s := startServer(t, config.ForwardInput{MaxConnections: 2, IdleTimeout: idle}, nil)
	c1, c2 := s.dial(t), s.dial(t)
	sendAcked(t, c1, "c1", 1)
	sendAcked(t, c2, "c2", 1)
	// Idle much longer than idle_timeout with room to spare: kept. Then
	// the pool is full, both used and idle: the longest idle goes.
	time.Sleep(3 * idle)
	sendAcked(t, c2, "c2", 1)
	time.Sleep(idle + 50*time.Millisecond)
	c3 := s.dial(t)
	sendAcked(t, c3, "c3", 1)
	s.waitCounter(t, mEvictIdle, 1)
	if err := wasReset(c1); err != nil {
		t.Fatal(err)
	}
	// c2 and c3 are used and recent: a new connection is refused.
	sendAcked(t, c2, "c2", 1)
	s.expectRefused(t, "tcp", s.addr)
	s.waitCounter(t, mRefusedTCP, 1)
	sendAcked(t, c2, "c2", 1)
	sendAcked(t, c3, "c3", 1)
	// A silent connection goes before an idle used one.
	time.Sleep(idle + 50*time.Millisecond)
	s.waitGauge(t, 2)
	c3.Close()
	s.waitGauge(t, 1)
	silent := s.dial(t)
	s.waitCounter(t, mAccepted, 4)
	c5 := s.dial(t)
	sendAcked(t, c5, "c5", 1)
	s.waitCounter(t, mEvictUnused, 1)
	if err := wasReset(silent); err != nil {
		t.Fatal(err)
	}
	sendAcked(t, c2, "c2", 1)
	if n := s.counter(mEvictIdle); n != 1 {
		t.Fatalf("idle evictions %d", n)
	}
}

// TestEvictedConnectionQuiet: an evicted connection that held half a
// request discards it without an ack, stores nothing and is not counted as
// a protocol error.
func TestEvictedConnectionQuiet(t *testing.T) {
	s := startServer(t, config.ForwardInput{MaxConnections: 1}, nil)
	c := s.dial(t)
	req := message("app", 1700000000, rec("log", "half"), "c1")
	c.Write(req[:len(req)/2])
	time.Sleep(50 * time.Millisecond)
	c2 := s.dial(t)
	sendAcked(t, c2, "real", 1)
	s.waitCounter(t, mEvictUnused, 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !isReset(err) && !errors.Is(err, syscall.EPIPE) {
		t.Fatal(err)
	}
	if n := s.counter(`sluice_input_protocol_errors_total{input="fw"}`); n != 0 {
		t.Fatalf("protocol errors %d", n)
	}
	if got := countTagged(s.q.snapshot(), "app"); got != 0 {
		t.Fatalf("%d events of the evicted connection", got)
	}
}

package forward

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/wire"
)

// dnsServer is a tiny UDP DNS server answering the SRV and A records the
// test sets; fail makes it answer SERVFAIL.
type dnsServer struct {
	pc      net.PacketConn
	mu      sync.Mutex
	srv     map[string][]dnsmessage.SRVResource
	a       map[string][][4]byte
	fail    bool
	queries atomic.Int64
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{pc: pc, srv: map[string][]dnsmessage.SRVResource{}, a: map[string][][4]byte{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

func (d *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.pc.LocalAddr().String())
	}}
}

func (d *dnsServer) setSRV(name string, recs ...dnsmessage.SRVResource) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv[name] = recs
}

func (d *dnsServer) setA(name string, ips ...[4]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a[name] = ips
}

func (d *dnsServer) setFail(f bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = f
}

func (d *dnsServer) answer(req []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	d.queries.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	name := q.Name.String()
	srvs, okS := d.srv[name]
	as, okA := d.a[name]
	switch {
	case d.fail:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !okS && !okA:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	if rh.RCode == dnsmessage.RCodeSuccess {
		switch q.Type {
		case dnsmessage.TypeSRV:
			for _, s := range srvs {
				b.SRVResource(rr, s)
			}
		case dnsmessage.TypeA:
			for _, a := range as {
				b.AResource(rr, dnsmessage.AResource{A: a})
			}
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

func srvRec(target string, port string, prio, weight uint16) dnsmessage.SRVResource {
	p, _ := strconv.Atoi(port)
	return dnsmessage.SRVResource{Priority: prio, Weight: weight, Port: uint16(p), Target: dnsmessage.MustNewName(target)}
}

// keyedSource feeds chunks of records {"src": "d", "seq": n}, which the
// receivers key by (src, seq).
func (f *fakeSource) addKeyed(n, per int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		k := len(f.chunks)
		var e []byte
		for j := range per {
			r := msgp.AppendMapHeader(nil, 2)
			r = msgp.AppendString(r, "src")
			r = msgp.AppendString(r, "d")
			r = msgp.AppendString(r, "seq")
			r = msgp.AppendInt(r, k*per+j)
			e = wire.AppendEntry(e, time.Now().UnixNano(), r)
		}
		f.chunks = append(f.chunks, buffer.Chunk{ID: buffer.ID{Segment: 1, Offset: int64(k) * 1000}, Tag: []byte("test.tag"), Count: per, Entries: e})
	}
	signal(f.added)
}

func (f *fakeSource) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.chunks)
}

// serverAddrs lists the output's servers as Status shows them.
func serverAddrs(o *Output) []string {
	var a []string
	for _, s := range o.Status().(Status).Servers {
		a = append(a, s.Address)
	}
	slices.Sort(a)
	return a
}

func listenReceiver(t *testing.T, addr string) *receiver.Server {
	t.Helper()
	r, err := receiver.Listen(addr, receiver.Wire{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// checkDelivered: every one of n events arrived at one of rs; it returns
// the duplicates.
func checkDelivered(t *testing.T, n int, rs ...*receiver.Server) int {
	t.Helper()
	seen := make([]int, n)
	for _, r := range rs {
		for _, seq := range r.Missing("d", n) {
			seen[seq]--
		}
	}
	// A seq missing at every receiver is missing overall.
	missing := 0
	for _, c := range seen {
		if c == -len(rs) {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events missing", missing, n)
	}
	total := 0
	for _, r := range rs {
		total += int(r.Count())
	}
	return total - (n - missing)
}

func TestDiscoverySRVJoinLeave(t *testing.T) {
	dns := startDNS(t)
	ra := listenReceiver(t, "127.0.0.1:0")
	rb := listenReceiver(t, "127.0.0.1:0")
	rc := listenReceiver(t, "127.0.0.1:0")
	port := func(r *receiver.Server) string { _, p, _ := net.SplitHostPort(r.Addr()); return p }
	for _, h := range []string{"a.test.", "b.test.", "c.test."} {
		dns.setA(h, [4]byte{127, 0, 0, 1})
	}
	const name = "_fluentd._tcp.agg.test."
	dns.setSRV(name, srvRec("a.test.", port(ra), 10, 10), srvRec("b.test.", port(rb), 10, 10))

	cfg := baseConfig()
	cfg.Discovery = &config.ForwardDiscovery{SRV: name, Interval: 50 * time.Millisecond}
	src := newFakeSource()
	r := start(t, cfg, src, func(o *Output) { o.disc.resolver = dns.resolver() })

	// A steady stream, so that chunks are in flight when the set changes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer halt()
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				src.addKeyed(1, 10)
			}
		}
	})

	eventually(t, 5*time.Second, "a and b receive", func() bool { return ra.Count() > 100 && rb.Count() > 100 })
	if rc.Count() != 0 {
		t.Fatalf("c received %d events before it was discovered", rc.Count())
	}
	// a leaves, c joins.
	dns.setSRV(name, srvRec("b.test.", port(rb), 10, 10), srvRec("c.test.", port(rc), 10, 10))
	eventually(t, 5*time.Second, "a drained and removed", func() bool {
		want := []string{rb.Addr(), rc.Addr()}
		slices.Sort(want)
		return slices.Equal(serverAddrs(r.o), want)
	})
	aCount, aConns := ra.Count(), ra.Accepted()
	eventually(t, 5*time.Second, "c receives", func() bool { return rc.Count() > 100 })
	halt()
	src.waitAcked(t, 10*time.Second)

	n := src.total() * 10
	dups := checkDelivered(t, n, ra, rb, rc)
	if dups > cfg.MaxInFlight {
		t.Errorf("%d duplicates, more than one removed server's in-flight chunks", dups)
	}
	if ra.Count() != aCount || ra.Accepted() != aConns {
		t.Errorf("a received %d events (%d connections) after it was drained", ra.Count()-aCount, ra.Accepted()-aConns)
	}
	if r.counter("sluice_output_chunks_acked_total", ra.Addr()) == 0 {
		t.Error("a acked nothing")
	}
	if e := r.set.GetOrCreateCounter(`sluice_forward_discovery_errors_total{output="out1"}`).Get(); e != 0 {
		t.Errorf("%d discovery errors", e)
	}
}

// TestDiscoveryDNSFailureKeepsSet: A records (dns: host:port) on two
// loopback addresses; a failing DNS keeps the set (counted), and an
// address that leaves is drained.
func TestDiscoveryDNSFailureKeepsSet(t *testing.T) {
	dns := startDNS(t)
	r1 := listenReceiver(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(r1.Addr())
	r2, err := receiver.Listen("127.0.0.2:"+port, receiver.Wire{}, nil)
	if err != nil {
		t.Skipf("127.0.0.2 not usable: %v", err)
	}
	t.Cleanup(func() { r2.Close() })
	dns.setA("svc.test.", [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 2})

	cfg := baseConfig()
	cfg.Discovery = &config.ForwardDiscovery{DNS: "svc.test.:" + port, Interval: 50 * time.Millisecond}
	src := newFakeSource()
	r := start(t, cfg, src, func(o *Output) { o.disc.resolver = dns.resolver() })
	errs := r.set.GetOrCreateCounter(`sluice_forward_discovery_errors_total{output="out1"}`)

	src.addKeyed(100, 10)
	src.waitAcked(t, 10*time.Second)
	if r1.Count() == 0 || r2.Count() == 0 {
		t.Fatalf("both servers should get events: %d, %d", r1.Count(), r2.Count())
	}
	dns.setFail(true)
	eventually(t, 5*time.Second, "discovery errors counted", func() bool { return errs.Get() >= 3 })
	if got := serverAddrs(r.o); len(got) != 2 {
		t.Fatalf("servers after DNS failures: %v, want the last known two", got)
	}
	src.addKeyed(100, 10)
	src.waitAcked(t, 10*time.Second)

	dns.setA("svc.test.", [4]byte{127, 0, 0, 1})
	dns.setFail(false)
	eventually(t, 5*time.Second, "127.0.0.2 removed", func() bool {
		return slices.Equal(serverAddrs(r.o), []string{r1.Addr()})
	})
	c2 := r2.Count()
	src.addKeyed(100, 10)
	src.waitAcked(t, 10*time.Second)
	if r2.Count() != c2 {
		t.Errorf("127.0.0.2 received %d events after it was removed", r2.Count()-c2)
	}
	if dups := checkDelivered(t, src.total()*10, r1, r2); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	if !slices.ContainsFunc(r.o.Status().(Status).Servers, func(s ServerStatus) bool { return s.Discovered }) {
		t.Error("status does not mark discovered servers")
	}
}

// TestDiscoverySRVMapping: the lowest priority is active with its SRV
// weights, others standby; an all-zero tier gets equal weights.
func TestDiscoverySRVMapping(t *testing.T) {
	dns := startDNS(t)
	dns.setA("a.test.", [4]byte{127, 0, 0, 1})
	dns.setA("b.test.", [4]byte{127, 0, 0, 2}, [4]byte{127, 0, 0, 3})
	dns.setSRV("_f._tcp.x.test.", srvRec("a.test.", "1000", 5, 30), srvRec("b.test.", "2000", 5, 10),
		srvRec("a.test.", "3000", 9, 0))
	o, err := New("out1", func() config.ForwardOutput {
		c := baseConfig()
		c.Discovery = &config.ForwardDiscovery{SRV: "_f._tcp.x.test.", MaxServers: 3}
		return c
	}(), config.Delivery{}, "", newFakeSource(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.disc.resolver = dns.resolver()
	got, err := o.disc.resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []target{
		{addr: "127.0.0.1:1000", host: "a.test", weight: 30},
		{addr: "127.0.0.2:2000", host: "b.test", weight: 10},
		{addr: "127.0.0.3:2000", host: "b.test", weight: 10},
	} // the standby 127.0.0.1:3000 is cut by max_servers 3
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	o.disc.max = 8
	got, _ = o.disc.resolve(context.Background())
	if len(got) != 4 || got[3] != (target{addr: "127.0.0.1:3000", host: "a.test", weight: 1, standby: true}) {
		t.Fatalf("got %+v", got)
	}
	dns.setFail(true)
	if _, err := o.disc.resolve(context.Background()); err == nil {
		t.Fatal("no error from a failing DNS")
	}
	if _, err := New("x", func() config.ForwardOutput {
		c := baseConfig()
		c.Discovery = &config.ForwardDiscovery{DNS: "svc.test"}
		return c
	}(), config.Delivery{}, "", newFakeSource(), nil, nil); err == nil {
		t.Fatal("dns without a port accepted")
	}
}

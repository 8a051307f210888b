package forward

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
)

// Discovery (the discovery section) finds servers in DNS and re-resolves
// them every interval:
//
//   - srv: an SRV record set. Each target is resolved to its A/AAAA
//     addresses (an IP target is used as is), one server per address and
//     the record's port. The records of the lowest priority are active
//     servers weighted by their SRV weight (all 0 in that tier: equal
//     weights); records of any higher priority value are standby servers
//     (chunks go to them only while every active server is down). A TLS
//     server name, unless configured, is the SRV target.
//   - dns: host:port. Each A/AAAA address of host is an active server of
//     the default weight (60) on port.
//
// At most max_servers discovered servers are kept (active first, then
// higher weight, then lower address); the engine's workers and memory are
// sized for the static servers plus max_servers. An address that is also
// a static server is that static server.
//
// A server that appears joins the balancing at once (its worker connects).
// A server that vanishes is drained: it gets no new chunk, the chunks it
// holds are acked or, on failure or ack timeout, retried by the engine on
// another server (never lost; at least once, as any broken connection);
// once it holds none its worker stops and it leaves the set (and /status).
// It rejoins if it reappears meanwhile.
//
// A failed resolution (a DNS error, a timeout, an empty answer) keeps the
// last known set; it is logged (warn on the first failure, debug while it
// keeps failing) and counted in sluice_forward_discovery_errors_total. Until
// a first resolution succeeds, it is retried after 1s, 2s, 4s... up to the
// interval. Discovered servers cannot use per-server user authentication
// (username/password); the security section's shared key applies.
type discovery struct {
	o        *Output
	srv      string // SRV name, or
	host     string // A/AAAA name, with
	port     string
	interval time.Duration
	max      int
	timeout  time.Duration // bounds one resolution
	resolver *net.Resolver // tests point its Dial at their DNS server
	errors   *metrics.Counter
	out      chan []target // to the dispatch loop
	cut      int           // records dropped by max at the last resolution
}

// target is one discovered server.
type target struct {
	addr    string // ip:port: the server's identity
	host    string // the name it was found under (TLS server name)
	weight  int
	standby bool
}

func validateDiscovery(d *config.ForwardDiscovery) error {
	if d == nil {
		return nil
	}
	switch {
	case (d.SRV == "") == (d.DNS == ""):
		return errors.New("discovery: exactly one of srv and dns is required")
	case d.Interval < 0:
		return fmt.Errorf("discovery.interval: %s is negative", d.Interval)
	case d.MaxServers < 0:
		return fmt.Errorf("discovery.max_servers: %d is negative", d.MaxServers)
	}
	if d.DNS != "" {
		host, port, err := net.SplitHostPort(d.DNS)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("discovery.dns: %q is not host:port", d.DNS)
		}
	}
	return nil
}

func newDiscovery(o *Output, c *config.ForwardDiscovery) *discovery {
	d := &discovery{
		o:        o,
		srv:      c.SRV,
		interval: or(c.Interval, config.DefaultDiscoveryInterval),
		max:      or(c.MaxServers, config.DefaultDiscoveryMaxServers),
		resolver: &net.Resolver{},
		errors:   o.set.GetOrCreateCounter(fmt.Sprintf(`sluice_forward_discovery_errors_total{output=%q}`, o.id)),
		out:      make(chan []target),
	}
	if c.DNS != "" {
		d.host, d.port, _ = net.SplitHostPort(c.DNS) // validated
	}
	d.timeout = min(d.interval, 10*time.Second)
	return d
}

// discMax is the number of servers discovery may add.
func (o *Output) discMax() int {
	if o.disc == nil {
		return 0
	}
	return o.disc.max
}

// discChan is where the loop receives discovered sets (nil, never ready,
// without discovery).
func (o *Output) discChan() <-chan []target {
	if o.disc == nil {
		return nil
	}
	return o.disc.out
}

// run resolves now and then every interval until ctx is done, handing
// each successful result to the dispatch loop.
func (d *discovery) run(ctx context.Context) {
	known, failing := false, false
	backoff := time.Second
	for {
		rctx, cancel := context.WithTimeout(ctx, d.timeout)
		set, err := d.resolve(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := d.interval
		if err != nil {
			d.errors.Inc()
			if failing {
				d.o.log.Debug("forward discovery still failing; keeping the last known servers", "name", d.name(), "err", err)
			} else {
				d.o.log.Warn("forward discovery failed; keeping the last known servers", "name", d.name(), "err", err)
			}
			failing = true
			if !known {
				wait = min(backoff, d.interval)
				backoff *= 2
			}
		} else {
			if failing {
				d.o.log.Info("forward discovery resolves again", "name", d.name(), "servers", len(set))
			}
			failing, known = false, true
			select {
			case d.out <- set:
			case <-ctx.Done():
				return
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (d *discovery) name() string {
	if d.srv != "" {
		return d.srv
	}
	return net.JoinHostPort(d.host, d.port)
}

// resolve returns the current set, sorted and cut at max.
func (d *discovery) resolve(ctx context.Context) ([]target, error) {
	var set []target
	if d.srv != "" {
		_, recs, err := d.resolver.LookupSRV(ctx, "", "", d.srv)
		if err != nil {
			return nil, fmt.Errorf("SRV %s: %w", d.srv, err)
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("SRV %s: no records", d.srv)
		}
		top := recs[0].Priority
		tierWeight := map[uint16]int{}
		for _, r := range recs {
			top = min(top, r.Priority)
			tierWeight[r.Priority] += int(r.Weight)
		}
		for _, r := range recs {
			host := strings.TrimSuffix(r.Target, ".")
			ips, err := d.lookupIP(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("SRV %s: target %s: %w", d.srv, host, err)
			}
			w := int(r.Weight)
			if tierWeight[r.Priority] == 0 {
				w = 1
			}
			for _, ip := range ips {
				set = append(set, target{addr: net.JoinHostPort(ip, strconv.Itoa(int(r.Port))), host: host, weight: w, standby: r.Priority != top})
			}
		}
	} else {
		ips, err := d.lookupIP(ctx, d.host)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.host, err)
		}
		w := config.DefaultForwardServer().Weight
		for _, ip := range ips {
			set = append(set, target{addr: net.JoinHostPort(ip, d.port), host: d.host, weight: w})
		}
	}
	// Best first: active, heavier, then by address; one entry per address.
	slices.SortFunc(set, func(a, b target) int {
		if a.standby != b.standby {
			if a.standby {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(b.weight, a.weight), strings.Compare(a.addr, b.addr))
	})
	seen := make(map[string]bool, len(set))
	set = slices.DeleteFunc(set, func(t target) bool {
		dup := seen[t.addr]
		seen[t.addr] = true
		return dup
	})
	if cut := max(0, len(set)-d.max); cut != d.cut {
		d.cut = cut
		if cut > 0 {
			d.o.log.Warn("forward discovery found more servers than max_servers; ignoring the rest", "name", d.name(), "found", len(set), "max_servers", d.max)
		}
	}
	if len(set) > d.max {
		set = set[:d.max]
	}
	return set, nil
}

// lookupIP returns host's addresses (host itself when it is an IP).
func (d *discovery) lookupIP(ctx context.Context, host string) ([]string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []string{ip.String()}, nil
	}
	addrs, err := d.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, errors.New("no addresses")
	}
	ips := make([]string, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP.String()
	}
	return ips, nil
}

// apply makes the discovered servers match set: new ones start, changed
// ones take their new weight and role, gone ones drain. Dispatch loop only.
func (o *Output) apply(set []target) {
	want := make(map[string]target, len(set))
	for _, t := range set {
		want[t.addr] = t
	}
	have := make(map[string]*server, len(o.servers))
	for _, s := range o.servers {
		have[s.name] = s
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.servers {
		if s.static {
			continue
		}
		t, ok := want[s.name]
		switch {
		case !ok && !s.draining:
			s.draining = true
			o.log.Info("forward server left discovery; draining", "server", s.name, "in_flight", s.inflight)
		case ok:
			if s.draining {
				o.log.Info("forward server back in discovery", "server", s.name)
			}
			s.draining, s.weight, s.standby = false, t.weight, t.standby
		}
	}
	for _, t := range set {
		if _, ok := have[t.addr]; ok {
			continue // static, or updated above
		}
		sc := config.DefaultForwardServer()
		sc.Address, sc.Weight, sc.Standby = t.addr, t.weight, t.standby
		s, err := newServer(o, sc, o.tlsConf, o.set)
		if err != nil {
			o.log.Warn("forward discovery: ignoring a server", "server", t.addr, "err", err)
			continue
		}
		if s.tls != nil && o.tlsConf.ServerName == "" {
			s.tls.ServerName = t.host
		}
		o.log.Info("forward server discovered", "server", t.addr, "weight", t.weight, "standby", t.standby)
		o.servers = append(o.servers, s)
		o.spawn(s)
	}
	// Drained already: nothing in flight.
	for _, s := range slices.Clone(o.servers) {
		if s.draining && s.inflight == 0 {
			o.retireLocked(s)
		}
	}
}

// retire stops a drained server and removes it. Dispatch loop only.
func (o *Output) retire(s *server) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retireLocked(s)
}

func (o *Output) retireLocked(s *server) {
	i := slices.Index(o.servers, s)
	if i < 0 {
		return
	}
	o.servers = slices.Delete(o.servers, i, i+1)
	s.cancel()
	s.m.up.Set(0)
	o.log.Info("forward server drained and removed", "server", s.name)
}

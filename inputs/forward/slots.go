package forward

import (
	"net"
	"net/netip"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// slotPool is the connection slots of one listener kind: TCP (and TLS)
// share max_connections, the unix socket has max_unix_connections of its
// own. Guarded by Input.mu.
type slotPool struct {
	name      string // "tcp" or "unix", for logs
	option    string // the option that sizes it
	max       int
	perSource int              // 0: no per-source limit (unix)
	refused   *metrics.Counter // sluice_input_limit_violations_total{limit=option's}
	conns     map[*conn]struct{}
	bySource  map[netip.Addr]map[*conn]struct{} // counted sources only
}

func newSlotPool(name, option string, max, perSource int, refused *metrics.Counter) *slotPool {
	return &slotPool{
		name: name, option: option, max: max, perSource: perSource, refused: refused,
		conns:    make(map[*conn]struct{}),
		bySource: make(map[netip.Addr]map[*conn]struct{}),
	}
}

func (p *slotPool) add(c *conn) {
	c.pool = p
	p.conns[c] = struct{}{}
	if c.source.IsValid() {
		m := p.bySource[c.source]
		if m == nil {
			m = make(map[*conn]struct{})
			p.bySource[c.source] = m
		}
		m[c] = struct{}{}
	}
}

// remove frees c's slot; it is a no-op if c holds none (any more).
func (p *slotPool) remove(c *conn) {
	if c.pool != p {
		return
	}
	c.pool = nil
	delete(p.conns, c)
	if m := p.bySource[c.source]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(p.bySource, c.source)
		}
	}
}

// Eviction reasons, the values of sluice_input_connections_evicted_total's
// reason label.
const (
	evictUnused    = "unused"            // never completed a request or the handshake
	evictIdle      = "idle"              // sent nothing for idle_timeout
	evictHandshake = "handshake_timeout" // did not complete TLS or Forward handshake in time
)

// victim picks the connection to close to make room, among conns: first
// those that never completed a request or the Forward handshake, the one
// that sent its last byte (or connected) longest ago first; then those
// waiting for data that sent nothing for at least idle; else none (nil).
// A connection busy with a request (decoding, flushing, acking) is never
// picked, nor one already being closed.
func victim(conns map[*conn]struct{}, now time.Time, idle time.Duration) (*conn, string) {
	var unused, idlest *conn
	var unusedAt, idleAt int64
	cut := now.Add(-idle).UnixNano()
	for c := range conns {
		if c.evicted.Load() || c.closing.Load() {
			continue
		}
		last := c.lastRead.Load()
		if !c.used.Load() {
			if unused == nil || last < unusedAt {
				unused, unusedAt = c, last
			}
			continue
		}
		if c.reading.Load() && last <= cut && (idlest == nil || last < idleAt) {
			idlest, idleAt = c, last
		}
	}
	switch {
	case unused != nil:
		return unused, evictUnused
	case idlest != nil:
		return idlest, evictIdle
	}
	return nil, ""
}

// sourceOf returns the address a TCP connection counts against for
// max_connections_per_source, or the zero Addr if it is exempt: unix
// sockets, and connections from the node itself (a loopback address, or
// the very address they connected to, which is what a local process such
// as dockerd gets when it dials one of the node's addresses).
func sourceOf(nc net.Conn) netip.Addr {
	ra, ok := nc.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	src := ra.AddrPort().Addr().Unmap()
	if !src.IsValid() || src.IsLoopback() {
		return netip.Addr{}
	}
	if la, ok := nc.LocalAddr().(*net.TCPAddr); ok && la.AddrPort().Addr().Unmap() == src {
		return netip.Addr{}
	}
	return src
}

// rawConn returns the socket under a TLS connection.
func rawConn(nc net.Conn) net.Conn {
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		return u.NetConn()
	}
	return nc
}

// abort closes nc at once. A TCP socket is reset (SO_LINGER 0) rather than
// closed with a FIN: a client that gets a FIN only learns of the close
// when a later write fails, so the first write after it (for Docker's
// driver without acks, one log line) "succeeds" into a dead connection and
// is lost; after a reset, that first write already fails and
// fluent-logger-golang reconnects and sends it again. A unix socket has no
// such window: writing to a closed peer fails at once (EPIPE).
func abort(nc net.Conn) {
	raw := rawConn(nc)
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetLinger(0) //nolint:errcheck // best effort: a plain close follows anyway
	}
	raw.Close()
}

package forward

import (
	"cmp"
	"net"
	"slices"
)

// maxStatusSources caps Status.Sources: the sources with the most
// connections.
const maxStatusSources = 20

// Status is the forward input's part of the agent's /status. The JSON
// field names are part of the documented /status shape
// (docs/operations.md). It carries no secret (no shared key, no user).
type Status struct {
	// Listening is true from the moment Run has bound every listener
	// until its shutdown begins: the input accepts connections.
	Listening   bool             `json:"listening"`
	Listeners   []ListenerStatus `json:"listeners"`
	Connections int              `json:"connections"` // open, every listener
	// Sources are the remote addresses with the most open connections
	// (at most 20, most first; "unix" for the socket), of SourcesTotal.
	Sources      []SourceStatus `json:"sources"`
	SourcesTotal int            `json:"sources_total"`

	ConnectionsAccepted uint64 `json:"connections_accepted"` // since start
	Requests            uint64 `json:"requests"`
	Events              uint64 `json:"events"` // stored
	Bytes               uint64 `json:"bytes"`
	Acks                uint64 `json:"acks"`

	MemoryBudgetBytes   int64 `json:"memory_budget_bytes"`
	MemoryReservedBytes int64 `json:"memory_reserved_bytes"`
	MemoryWaiting       int64 `json:"memory_waiting"` // connections waiting for budget
}

// ListenerStatus is one listener: its open connections and their cap.
type ListenerStatus struct {
	Network        string `json:"network"` // "tcp" (or TLS over it) or "unix"
	Address        string `json:"address"`
	TLS            bool   `json:"tls,omitempty"`
	Connections    int    `json:"connections"`
	MaxConnections int    `json:"max_connections"`
}

// SourceStatus is the number of open connections from one address.
type SourceStatus struct {
	Source      string `json:"source"`
	Connections int    `json:"connections"`
}

// Ready reports whether the input accepts connections: Run bound its
// listeners and has not begun to stop.
func (in *Input) Ready() bool { return in.listening.Load() }

// Status returns the input's status (a Status). Safe from any goroutine:
// the listeners' connection sets and the connections are read under
// in.mu, which guards them; counters and the budget's gauges are atomic.
func (in *Input) Status() any {
	s := Status{
		Listening:           in.listening.Load(),
		ConnectionsAccepted: in.m.accepted.Get(),
		Requests:            in.m.requests.Get(),
		Events:              in.m.events.Get(),
		Bytes:               in.m.bytes.Get(),
		Acks:                in.m.acks.Get(),
		MemoryBudgetBytes:   in.mem.total,
		MemoryReservedBytes: in.mem.reserved.Load(),
		MemoryWaiting:       in.mem.waiting.Load(),
	}
	s.Sources = []SourceStatus{}
	bySource := map[string]int{}
	in.mu.Lock()
	if in.cfg.Listen != "" {
		addr := in.cfg.Listen
		if in.Ready() && in.addr != nil {
			addr = in.addr.String() // the bound port when configured as :0
		}
		s.Listeners = append(s.Listeners, ListenerStatus{Network: "tcp", Address: addr, TLS: in.tlsConf != nil,
			Connections: len(in.tcpPool.conns), MaxConnections: in.tcpPool.max})
	}
	if in.cfg.Unix != "" {
		s.Listeners = append(s.Listeners, ListenerStatus{Network: "unix", Address: in.cfg.Unix,
			Connections: len(in.unixPool.conns), MaxConnections: in.unixPool.max})
	}
	s.Connections = len(in.conns)
	for c := range in.conns {
		bySource[sourceName(c.nc)]++
	}
	in.mu.Unlock()
	for src, n := range bySource {
		s.Sources = append(s.Sources, SourceStatus{Source: src, Connections: n})
	}
	slices.SortFunc(s.Sources, func(a, b SourceStatus) int {
		return cmp.Or(cmp.Compare(b.Connections, a.Connections), cmp.Compare(a.Source, b.Source))
	})
	s.SourcesTotal = len(s.Sources)
	if len(s.Sources) > maxStatusSources {
		s.Sources = s.Sources[:maxStatusSources]
	}
	return s
}

// sourceName is the remote IP address of a TCP connection, or "unix".
func sourceName(nc net.Conn) string {
	if ra, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ra.AddrPort().Addr().Unmap().String()
	}
	return "unix"
}

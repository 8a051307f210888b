package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ForwardOutput sends chunks to Fluentd/Fluent Bit/Sluice servers.
type ForwardOutput struct {
	// Servers are the destinations: events are spread over the active
	// servers by weight, and go to the standby ones only while every
	// active server is down. At least one, unless discovery is set.
	Servers []ForwardServer `yaml:"servers"`
	// Compress is "none" (default) or "gzip".
	Compress string `yaml:"compress"`
	// CompressLevel is the gzip level 1..9. Default 1 (fastest).
	CompressLevel int `yaml:"compress_level"`
	// RequireAck waits for each chunk's ack before deleting it. Default true.
	RequireAck *bool `yaml:"require_ack"`
	// AckTimeout bounds the wait for one ack. Default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// MaxInFlight is the number of unacked chunks per connection. Default 8.
	MaxInFlight int `yaml:"max_in_flight"`
	// ConnectTimeout bounds one dial plus handshake. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// HeartbeatInterval probes down servers (and idle ones). Default 1s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// RetryInitial is the first wait of the exponential back-off (with
	// jitter) between retries of a chunk. Default 1s.
	RetryInitial time.Duration `yaml:"retry_initial"`
	// RetryMax caps the back-off's wait. Default 60s.
	RetryMax time.Duration `yaml:"retry_max"`
	// MaxRetries gives up on a chunk after this many retries (MaxRetries+1
	// failed sends; the chunk is dropped, counted and logged); 0 (default)
	// retries forever (the data waits on disk).
	MaxRetries int `yaml:"max_retries"`

	TLS      *TLS      `yaml:"tls"`
	Security *Security `yaml:"security"`
	// Discovery adds servers found in DNS (SRV or A/AAAA records),
	// re-resolved every interval, to the static servers (which may then
	// be empty).
	Discovery *ForwardDiscovery `yaml:"discovery"`
}

// ForwardDiscovery finds a forward output's servers in DNS. Exactly one of
// SRV and DNS is set. Discovered servers are joined to the servers list
// (static servers stay for good: a standby fallback, say); an address that
// is both static and discovered is the static server.
type ForwardDiscovery struct {
	// SRV is an SRV record name (_fluentd._tcp.aggregators.ns.svc.cluster.local):
	// each target's A/AAAA addresses with the record's port. The lowest
	// priority's records are active servers, weighted by their SRV
	// weight (all 0: equal); the others are standby.
	SRV string `yaml:"srv"`
	// DNS is host:port: each A/AAAA address of host with port, as active
	// servers of the default weight (a Kubernetes headless service).
	DNS string `yaml:"dns"`
	// Interval is how often the name is resolved again. Default 30s.
	Interval time.Duration `yaml:"interval"`
	// MaxServers caps the discovered servers (the engine's workers and
	// memory are sized for it): beyond it, the lowest priority, highest
	// weight, then lowest addresses are kept. Default 8.
	MaxServers int `yaml:"max_servers"`
}

// Defaults of ForwardDiscovery's zero fields.
const (
	DefaultDiscoveryInterval   = 30 * time.Second
	DefaultDiscoveryMaxServers = 8
)

// ForwardServer is one destination of a forward output.
type ForwardServer struct {
	// Address is host:port, or unix:///path. Required.
	Address string `yaml:"address"`
	// Weight is the server's share of the events among the active
	// servers. Default 60, as in Fluentd.
	Weight int `yaml:"weight"`
	// Standby servers take events only while every active server is down.
	Standby bool `yaml:"standby"`
	// Username for the handshake's user authentication (the server's
	// security.users; needs the output's security section).
	Username string `yaml:"username"`
	// Password of Username.
	Password Secret `yaml:"password"`
}

// DefaultForwardOutput returns a ForwardOutput with every default applied
// and no servers.
func DefaultForwardOutput() ForwardOutput {
	return ForwardOutput{
		Compress:          "none",
		CompressLevel:     1,
		RequireAck:        ptr(true),
		AckTimeout:        30 * time.Second,
		MaxInFlight:       8,
		ConnectTimeout:    5 * time.Second,
		HeartbeatInterval: time.Second,
		RetryInitial:      time.Second,
		RetryMax:          60 * time.Second,
	}
}

// DefaultForwardServer returns a ForwardServer with the default weight.
func DefaultForwardServer() ForwardServer {
	return ForwardServer{Weight: 60}
}

func (f *ForwardOutput) setDefaults() { *f = DefaultForwardOutput() }

// setDefaults applies the defaults of a servers list item.
func (s *ForwardServer) setDefaults() { *s = DefaultForwardServer() }

func (f *ForwardOutput) check(v *checker, p string) {
	if len(f.Servers) == 0 && f.Discovery == nil {
		v.errorf(p+".servers", "at least one server is required (or a discovery section)")
	}
	active, weighted := 0, 0
	addrs := map[string]string{}
	for i, s := range f.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", p, i)
		ap := sp + ".address"
		if !validServerAddress(s.Address) {
			v.errorf(ap, "invalid address %s (want host:port or unix:///path)", v.q(ap, s.Address))
		} else if prev, dup := addrs[s.Address]; dup {
			v.errorf(ap, "duplicate address %s, already used by %s", v.q(ap, s.Address), v.where(prev))
		} else {
			addrs[s.Address] = sp + ".address"
		}
		if s.Weight < 0 {
			v.errorf(sp+".weight", "must not be negative, got %d", s.Weight)
		}
		if !s.Standby {
			active++
			if s.Weight > 0 {
				weighted++
			}
		}
		switch {
		case s.Username != "" && s.Password == "":
			v.errorf(sp+".password", "required when username is set")
		case s.Username == "" && s.Password != "":
			v.errorf(sp+".username", "required when password is set")
		case s.Username != "" && f.Security == nil:
			v.errorf(sp+".username", "user authentication needs a security section with shared_key")
		}
	}
	switch {
	case len(f.Servers) > 0 && active == 0 && f.Discovery == nil:
		v.errorf(p+".servers", "every server is a standby; at least one must be active")
	case active > 0 && weighted == 0 && f.Discovery == nil:
		v.errorf(p+".servers", "every active server has weight 0; at least one needs a positive weight")
	}
	v.oneOf(p+".compress", f.Compress, "none", "gzip")
	if f.CompressLevel < 1 || f.CompressLevel > 9 {
		v.errorf(p+".compress_level", "must be between 1 and 9, got %d", f.CompressLevel)
	}
	v.positive(p+".ack_timeout", f.AckTimeout)
	v.positiveInt(p+".max_in_flight", f.MaxInFlight)
	v.positive(p+".connect_timeout", f.ConnectTimeout)
	v.positive(p+".heartbeat_interval", f.HeartbeatInterval)
	v.positive(p+".retry_initial", f.RetryInitial)
	v.positive(p+".retry_max", f.RetryMax)
	if f.RetryInitial > 0 && f.RetryMax > 0 && f.RetryMax < f.RetryInitial {
		v.errorf(p+".retry_max", "%s is less than retry_initial (%s)", f.RetryMax, f.RetryInitial)
	}
	if f.MaxRetries < 0 {
		v.errorf(p+".max_retries", "must not be negative, got %d", f.MaxRetries)
	}
	v.tls(p+".tls", f.TLS, false)
	v.security(p+".security", f.Security, false)
	if d := f.Discovery; d != nil {
		dp := p + ".discovery"
		switch {
		case d.SRV == "" && d.DNS == "":
			v.errorf(dp, "srv or dns is required")
		case d.SRV != "" && d.DNS != "":
			v.errorf(dp+".dns", "srv and dns are mutually exclusive")
		case d.SRV != "":
			if strings.ContainsAny(d.SRV, ":/ ") || strings.Trim(d.SRV, ".") == "" {
				v.errorf(dp+".srv", "invalid record name %s (want a DNS name such as _fluentd._tcp.example.com)", v.q(dp+".srv", d.SRV))
			}
		default:
			host, port, err := net.SplitHostPort(d.DNS)
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				v.errorf(dp+".dns", "invalid %s (want host:port, the port a number)", v.q(dp+".dns", d.DNS))
			}
		}
		if d.Interval < 0 {
			v.errorf(dp+".interval", "must not be negative, got %s", d.Interval)
		}
		if d.MaxServers < 0 {
			v.errorf(dp+".max_servers", "must not be negative, got %d", d.MaxServers)
		}
	}
}

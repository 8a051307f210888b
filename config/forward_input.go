package config

import (
	"fmt"
	"net"
	"time"
)

// ForwardInput is a Fluentd Forward protocol server.
type ForwardInput struct {
	// Listen is a TCP address. Default 127.0.0.1:24224 when neither listen
	// nor unix is configured; with unix configured and listen absent (or
	// empty), there is no TCP listener.
	Listen string `yaml:"listen"`
	// Unix is a unix socket path (FireLens uses /var/run/fluent.sock).
	Unix string `yaml:"unix"`
	// UnixMode is the socket's file mode. Default 0660: only root and
	// UnixGroup may connect (Docker's daemon runs as root).
	UnixMode *uint32 `yaml:"unix_mode"`
	// UnixGroup, if set, is the socket's group (a name or a numeric gid),
	// for clients that do not run as root.
	UnixGroup string `yaml:"unix_group"`
	// InsecureListen allows a listen address reachable from other hosts
	// (not loopback) without tls or security.shared_key. Without it such
	// a config is refused; with it, validate and the agent warn.
	InsecureListen bool `yaml:"insecure_listen"`
	// Tag, if set, overrides the tag sent by the client. Same placeholders as
	// DockerInput.Tag plus {tag} (the client's tag).
	Tag string `yaml:"tag"`
	// ParseJSON parses a log payload that is a JSON object into record fields.
	ParseJSON bool `yaml:"parse_json"`
	// Parser parses the log field of each record into record fields (see
	// Parser); parse_json: true is parser {type: json}.
	Parser *Parser `yaml:"parser"`
	// Multiline joins the lines of one message (a stack trace) per
	// connection and stream (tag, container_id and source), after partial
	// lines are joined and before the parser. In a request that asks for
	// an ack, lines are joined only within that request.
	Multiline *Multiline `yaml:"multiline"`
	// MaxMessageBytes caps one request on the wire. Default 16 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxDecompressedBytes caps one decompressed request. Default 64 MiB
	// (within MaxBufferedBytes: a request whose output exceeds what the
	// memory budget can give it is refused too).
	MaxDecompressedBytes int `yaml:"max_decompressed_bytes"`
	// MaxBufferedBytes is the input's memory budget, shared by all its
	// connections: what they buffer beyond a fixed 128 KiB each (a read
	// buffer grown toward a large request's size, a decompressed request)
	// is reserved from it before it is allocated. A request that finds the
	// budget taken waits for it, reading from its connection paused (TCP
	// back-pressure), for at most BufferWaitTimeout; if it cannot get it
	// then, or needs more than the whole budget, its connection is closed
	// without an ack (logged, and counted in
	// sluice_input_limit_violations_total{limit="memory"}). Default (0):
	// a quarter of the container's memory limit (cgroup v2 memory.max or
	// v1 memory.limit_in_bytes), at least 4 MiB and at most 1 GiB, or
	// 256 MiB without a limit. At least 1 MiB when set.
	MaxBufferedBytes int `yaml:"max_buffered_bytes"`
	// BufferWaitTimeout bounds how long a request waits for the memory
	// budget (MaxBufferedBytes), and how long a connection that holds
	// budget for an incomplete request may send nothing before it is
	// closed (not acked). Default 10s.
	BufferWaitTimeout time.Duration `yaml:"buffer_wait_timeout"`
	// MaxConnections caps concurrent TCP (and TLS) connections. Default
	// 1024. When all are taken, a new connection is accepted by closing
	// one that is idle (see IdleTimeout); if none is, it is refused.
	MaxConnections int `yaml:"max_connections"`
	// MaxUnixConnections caps concurrent unix socket connections, a slot
	// pool of their own: TCP clients cannot take the slots of the socket
	// Docker's driver and FireLens use on the node. Default 1024.
	MaxUnixConnections int `yaml:"max_unix_connections"`
	// MaxConnectionsPerSource caps the TCP connections of one remote IP
	// address. Default 128. Connections from the node itself (a loopback
	// address, or the address they connect to, as Docker's driver does
	// from the daemon) are exempt: every container's driver connection
	// comes from there, and they are bounded by MaxConnections alone.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source"`
	// IdleTimeout is how long a connection must have sent nothing before
	// it may be closed to make room for a new one when its pool
	// (max_connections, max_unix_connections, or its source's
	// max_connections_per_source) is full. Default 60s. An idle connection
	// is never closed while there is room: Docker's driver keeps one
	// connection per container open and idle between lines, for hours.
	// Connections that never completed a request (or the handshake) are
	// closed first, the least recently active first, whatever their age.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// HandshakeTimeout bounds the TLS handshake and, with security, the
	// Forward handshake (HELO to PING), counted from the connect: a
	// connection that has not completed them by then is closed. Default
	// 10s. Without tls or security nothing is expected of a client before
	// its first event, so there is no such deadline (see IdleTimeout).
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// PartialTimeout flushes an incomplete partial message after this long. Default 5s.
	PartialTimeout time.Duration `yaml:"partial_timeout"`
	// MaxPartialBytes caps a reassembled partial message. Default 1 MiB.
	MaxPartialBytes int `yaml:"max_partial_bytes"`
	// AckAfter is when a requested ack is sent: "fsync" (default) once an
	// fsync covers the request's events, so they survive power loss;
	// "write" once they are written to the buffer files, which survives
	// kill -9 but not power loss, without waiting for the disk.
	AckAfter string `yaml:"ack_after"`

	TLS      *TLS      `yaml:"tls"`
	Security *Security `yaml:"security"`
}

// DefaultListen is the forward input's TCP address when neither listen nor
// unix is configured.
const DefaultListen = "127.0.0.1:24224"

// DefaultForwardInput returns a ForwardInput with every default applied,
// including Listen (which Parse keeps only if neither listen nor unix is
// configured).
func DefaultForwardInput() ForwardInput {
	return ForwardInput{
		Listen:                  DefaultListen,
		UnixMode:                ptr(uint32(0o660)),
		MaxMessageBytes:         16 << 20,
		MaxDecompressedBytes:    64 << 20,
		MaxConnections:          1024,
		MaxUnixConnections:      1024,
		MaxConnectionsPerSource: 128,
		IdleTimeout:             60 * time.Second,
		HandshakeTimeout:        10 * time.Second,
		PartialTimeout:          5 * time.Second,
		MaxPartialBytes:         1 << 20,
		BufferWaitTimeout:       10 * time.Second,
		AckAfter:                "fsync",
	}
}

func (f *ForwardInput) setDefaults() { *f = DefaultForwardInput() }

// decoded drops the default TCP listener when unix is set and listen is
// not: a unix socket alone is a complete configuration.
func (f *ForwardInput) decoded(set func(key string) bool) {
	if f.Unix != "" && !set("listen") {
		f.Listen = ""
	}
}

// exposed reports whether f listens on a non-loopback address with no TLS
// and no shared key.
func (f *ForwardInput) exposed() bool {
	if f.Listen == "" || (f.TLS != nil && f.TLS.Enabled) || (f.Security != nil && f.Security.SharedKey != "") {
		return false
	}
	host, _, err := net.SplitHostPort(f.Listen)
	if err != nil {
		return false // reported by claimListen
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// Warnings lists what is allowed but risky in c: today, forward inputs
// that listen beyond loopback unauthenticated by explicit opt-in.
func (c *Config) Warnings() []string {
	var w []string
	for i, in := range c.Inputs {
		if f := in.Forward; f != nil && f.InsecureListen && f.exposed() {
			w = append(w, fmt.Sprintf("inputs[%d] (%s): forward listen %q accepts unauthenticated, unencrypted clients from other hosts (insecure_listen)", i, in.ID, f.Listen))
		}
	}
	return w
}

// maxUnixPath is the longest unix socket path bind(2) takes on Linux.
const maxUnixPath = 107

func (f *ForwardInput) check(v *checker, p string) {
	v.checkParser(p, f.Parser, f.ParseJSON)
	v.checkMultiline(p, f.Multiline, 0) // no line cap: a record's log is as long as its request allows
	if f.Listen == "" && f.Unix == "" {
		v.errorf(p+".listen", "no listener: set listen, unix or both")
	}
	if f.Listen != "" {
		v.claimListen(p+".listen", f.Listen)
		if f.exposed() && !f.InsecureListen {
			v.errorf(p+".listen", "%q is reachable from other hosts with neither tls nor security.shared_key: any of them could write into every output; set tls or security, listen on 127.0.0.1, or set insecure_listen: true", f.Listen)
		}
	}
	if f.Unix != "" {
		v.claimFile(p+".unix", f.Unix)
		// bind(2) refuses a longer path (sun_path is 108 bytes on Linux,
		// with its NUL): catch here what run would refuse.
		if len(f.Unix) > maxUnixPath {
			v.errorf(p+".unix", "socket path is %d bytes, more than the %d a unix socket address holds (bind would fail)", len(f.Unix), maxUnixPath)
		}
	}
	if f.UnixMode != nil && *f.UnixMode > 0o777 {
		v.errorf(p+".unix_mode", "invalid file mode %#o", *f.UnixMode)
	}
	if f.Tag != "" {
		if err := checkTemplate(f.Tag, true); err != nil {
			v.invalid(p+".tag", f.Tag, "tag template", err)
		}
	}
	v.positiveInt(p+".max_message_bytes", f.MaxMessageBytes)
	v.positiveInt(p+".max_decompressed_bytes", f.MaxDecompressedBytes)
	v.positiveInt(p+".max_connections", f.MaxConnections)
	v.positiveInt(p+".max_unix_connections", f.MaxUnixConnections)
	v.positiveInt(p+".max_connections_per_source", f.MaxConnectionsPerSource)
	v.positive(p+".idle_timeout", f.IdleTimeout)
	v.positive(p+".handshake_timeout", f.HandshakeTimeout)
	v.positive(p+".partial_timeout", f.PartialTimeout)
	v.positiveInt(p+".max_partial_bytes", f.MaxPartialBytes)
	if f.MaxBufferedBytes != 0 && f.MaxBufferedBytes < 1<<20 {
		v.errorf(p+".max_buffered_bytes", "must be at least 1MiB (or 0: sized from the container's memory limit), got %d", f.MaxBufferedBytes)
	}
	v.positive(p+".buffer_wait_timeout", f.BufferWaitTimeout)
	v.oneOf(p+".ack_after", f.AckAfter, "fsync", "write")
	v.tls(p+".tls", f.TLS, true)
	v.security(p+".security", f.Security, true)
}

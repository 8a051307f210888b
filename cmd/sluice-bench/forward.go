package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/wire"
)

// forwardConns is the number of client connections of mode forward, one
// per simulated container.
const forwardConns = 4

// forwardMode is workload (b), -mode forward: the traffic of Docker's
// fluentd log driver. forwardConns connections (containers) send the lines
// in Message mode exactly as the driver does by default: one
// [tag, int seconds, record, {}] array per write(2), no ack, the record a
// map of container_id, container_name ("/name"), source and log, all
// strings. The log payloads are the json-file mode's JSON lines (three log
// types), so the agent's forward input (parse_json, tag
// "{field:log_type}.{tag}") routes them to the same three forward outputs
// (disk buffer, fsync interval 1 s, require_ack) and in-process receivers.
//
// Events are encoded while sending, into one reused buffer per connection
// (about 150 ns per event, small beside the write system call), so nothing
// needs to be generated beforehand. Global line i has log type
// logTypes[i%3] and sequence i/3 in source "fwd-<type>", and goes to
// connection i%forwardConns, so every (source, sequence) is sent once.
type forwardMode struct {
	addr    string // the agent's forward input of the current run
	payload int64
	exp     []expectation
}

func (f *forwardMode) describe(o options) string {
	comp := "off"
	if o.gzip {
		comp = "gzip level 1"
	}
	ack := "no ack"
	if o.ack {
		ack = "each event acked before the next is sent"
	}
	return fmt.Sprintf("mode forward: %d lines x %d B payload from %d fluentd-driver-like connections (Message mode, one write per event, %s) -> forward input -> 3 forward outputs (require_ack, disk buffer fsync interval 1s, compression %s) -> 3 receivers",
		o.lines, o.payload, forwardConns, ack, comp)
}

// prepare computes the expectations and the payload total; there is
// nothing to generate.
func (f *forwardMode) prepare(dir string, o options) error {
	f.exp = forwardExpect(o)
	f.payload = 0
	var buf []byte
	for i := range o.lines {
		buf = appendForwardPayload(buf[:0], i, o.payload)
		f.payload += int64(len(buf))
	}
	return nil
}

// config is not used: configYAML describes the forward input, which
// agentproc.Config cannot.
func (f *forwardMode) config(string, []string, options) agentproc.Config { return agentproc.Config{} }

func (f *forwardMode) configYAML(dataDir string, addrs []string, o options) string {
	f.addr = freeLocalAddr()
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("data_dir: %q", dataDir)
	p("log_level: warn")
	p("shutdown_grace: 30s")
	p("inputs:")
	p("  - id: driver")
	p("    type: forward")
	p("    listen: %q", f.addr)
	p("    parse_json: true")
	if o.ackAfter != "" {
		p("    ack_after: %s", o.ackAfter)
	}
	p("    tag: %q", "{field:log_type}.{tag}")
	p("outputs:")
	for i, lt := range logTypes {
		p("  - id: %s", lt)
		p("    type: forward")
		p("    servers:")
		p("      - address: %q", addrs[i])
		if o.gzip {
			p("    compress: gzip")
		}
		p("    buffer: { fsync: interval, fsync_interval: 1s }")
	}
	p("routes:")
	for _, lt := range logTypes {
		p("  - match: %q", lt+".**")
		p("    outputs: [%s]", lt)
	}
	return b.String()
}

func (f *forwardMode) expect() []expectation { return f.exp }

func (f *forwardMode) payloadBytes() int64 { return f.payload }

// send dials every connection once the agent listens and sends all lines.
func (f *forwardMode) send(o options) error {
	deadline := time.Now().Add(30 * time.Second)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < forwardConns {
		c, err := net.DialTimeout("tcp", f.addr, time.Second)
		if err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("agent's forward input %s not reachable: %w", f.addr, err)
			}
			time.Sleep(2 * time.Millisecond)
			continue
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for k, c := range conns {
		wg.Go(func() { errs[k] = sendConn(c, k, o) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sendConn sends lines k, k+forwardConns, ... on c, one write per event.
func sendConn(c net.Conn, k int, o options) error {
	tag := []byte("docker.bench-" + strconv.Itoa(k))
	name := "/bench-" + strconv.Itoa(k)
	id := strings.Repeat(strconv.Itoa(k%10), 64)
	var buf, payload, chunk, resp []byte
	for i := k; i < o.lines; i += forwardConns {
		payload = appendForwardPayload(payload[:0], i, o.payload)
		if o.ack {
			chunk = strconv.AppendInt(chunk[:0], int64(i), 36)
		}
		buf = appendDockerMessage(buf[:0], tag, time.Now().Unix(), id, name, payload, chunk)
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("connection %d, line %d: %w", k, i, err)
		}
		if o.ack {
			var err error
			if resp, err = readAck(c, resp, chunk); err != nil {
				return fmt.Errorf("connection %d, line %d: %w", k, i, err)
			}
		}
	}
	return nil
}

// readAck reads one {"ack": chunk} reply and checks it echoes chunk.
func readAck(c net.Conn, buf, chunk []byte) ([]byte, error) {
	buf = buf[:0]
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	for {
		got, n, err := wire.ParseAck(buf)
		switch {
		case err == nil:
			if string(got) != string(chunk) || n != len(buf) {
				return buf, fmt.Errorf("ack %q for chunk %q", got, chunk)
			}
			return buf, nil
		case !errors.Is(err, wire.ErrShort):
			return buf, fmt.Errorf("read ack: %w", err)
		}
		var tmp [256]byte
		n, err = c.Read(tmp[:])
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return buf, fmt.Errorf("read ack: %w", err)
		}
	}
}

// appendDockerMessage appends what Docker's fluentd driver writes for one
// line: [tag, seconds, {container_id, container_name, source, log}, {}],
// or with {"chunk": chunk} as the option when chunk is set.
func appendDockerMessage(dst, tag []byte, sec int64, id, name string, log, chunk []byte) []byte {
	dst = msgp.AppendArrayHeader(dst, 4)
	dst = msgp.AppendStringFromBytes(dst, tag)
	dst = msgp.AppendInt64(dst, sec)
	dst = msgp.AppendMapHeader(dst, 4)
	dst = msgp.AppendString(dst, "container_id")
	dst = msgp.AppendString(dst, id)
	dst = msgp.AppendString(dst, "container_name")
	dst = msgp.AppendString(dst, name)
	dst = msgp.AppendString(dst, "source")
	dst = msgp.AppendString(dst, "stdout")
	dst = msgp.AppendString(dst, "log")
	dst = msgp.AppendStringFromBytes(dst, log)
	if chunk == nil {
		return msgp.AppendMapHeader(dst, 0)
	}
	dst = msgp.AppendMapHeader(dst, 1)
	dst = msgp.AppendString(dst, "chunk")
	return msgp.AppendStringFromBytes(dst, chunk)
}

// appendForwardPayload appends line i's JSON payload, padded to size bytes:
// {"log_type":"app","src":"fwd-app","seq":N,"pad":"xxxx"}.
func appendForwardPayload(dst []byte, i, size int) []byte {
	lt := logTypes[i%len(logTypes)]
	start := len(dst)
	dst = append(dst, `{"log_type":"`...)
	dst = append(dst, lt...)
	dst = append(dst, `","src":"fwd-`...)
	dst = append(dst, lt...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, int64(i/len(logTypes)), 10)
	dst = append(dst, `,"pad":"`...)
	for n := size - (len(dst) - start) - 2; n > 0; n-- {
		dst = append(dst, 'x')
	}
	return append(dst, '"', '}')
}

// forwardExpect is, per log type, the source and line count of o.lines.
func forwardExpect(o options) []expectation {
	e := make([]expectation, len(logTypes))
	for t, lt := range logTypes {
		n := o.lines / len(logTypes)
		if t < o.lines%len(logTypes) {
			n++
		}
		e[t] = expectation{src: "fwd-" + lt, lines: int64(n)}
	}
	return e
}

// freeLocalAddr returns a 127.0.0.1 address with a port free right now.
func freeLocalAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:24224"
	}
	defer ln.Close()
	return ln.Addr().String()
}

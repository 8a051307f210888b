package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
)

// fanoutMode is workload -mode fanout, the fan-out done the Fluent Bit
// way (one tail, rewrite_tag by regex): -lines lines in ONE json-file
// container, the raw payload of line k holding type=app, type=access or
// type=audit in turn (k mod 3), generated BEFORE the agent starts. The
// docker input (parse_json off, one tag for every line) hands each line to
// routes whose when: tests the raw log field: contains "type=app ", regex
// 'type=access\b' and regex 'type=audit' (a plain literal, searched
// without the regexp engine), one forward output each (the json-file
// mode's settings), to the three receivers.
//
// Each receiver sits behind an in-process TCP proxy that counts the bytes
// the agent sends. The access receiver goes down for the middle third of
// the run: once the app and audit proxies carried a third of their
// expected bytes its proxy closes its listener and connections (the
// agent's access output retries, its disk queue grows), and at two thirds
// it listens again. The run ends when every receiver holds every line
// (missing lines fail the run). After each outage it prints, on stderr,
// how long the receiver was down and the app+audit throughput before and
// during the outage: the live outputs must not slow down.
type fanoutMode struct {
	root    string
	cont    *loggen.Container
	counts  [3]int64 // lines per type
	payload int64
	lineLen [3]int64 // total payload bytes per type, for progress

	proxies [3]*countingProxy
}

func (f *fanoutMode) describe(o options) string {
	return fmt.Sprintf("mode fanout: %d lines x %d B payload in ONE container, routed by regex/contains on the raw line -> 3 forward outputs (require_ack, disk buffer fsync interval 1s) -> 3 receivers, access down for the middle third",
		o.lines, o.payload)
}

func fanoutSrc(t int) string { return "fanout-" + logTypes[t] }

// appendFanoutPayload appends line seq's payload of type t, padded to
// about size bytes: {"src":"fanout-T","seq":N,"msg":"... type=T ..."}.
func appendFanoutPayload(b []byte, t int, seq int64, size int) []byte {
	start := len(b)
	b = append(b, `{"src":"`...)
	b = append(b, fanoutSrc(t)...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"msg":"level=info type=`...)
	b = append(b, logTypes[t]...)
	b = append(b, ` path=/api/v1/items status=200 pad=`...)
	for len(b)-start < size-2 {
		b = append(b, 'a'+byte((len(b)-start)%26))
	}
	return append(b, `"}`...)
}

func (f *fanoutMode) prepare(dir string, o options) error {
	f.root = filepath.Join(dir, "containers")
	c, err := loggen.New(f.root, loggen.Options{Name: "fanout"})
	if err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	f.cont = c
	fh, err := os.OpenFile(c.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	var pl, line []byte
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var ts []byte
	for k := range o.lines {
		t := k % 3
		pl = appendFanoutPayload(pl[:0], t, f.counts[t], o.payload)
		f.counts[t]++
		f.payload += int64(len(pl))
		f.lineLen[t] += int64(len(pl)) + 1
		line = append(line[:0], `{"log":"`...)
		for _, ch := range pl {
			if ch == '"' {
				line = append(line, '\\')
			}
			line = append(line, ch)
		}
		line = append(line, `\n","stream":"stdout","time":"`...)
		if k%1000 == 0 {
			ts = t0.Add(time.Duration(k)*time.Microsecond).AppendFormat(ts[:0], time.RFC3339Nano)
		}
		line = append(line, ts...)
		line = append(line, "\"}\n"...)
		if _, err := w.Write(line); err != nil {
			fh.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func (f *fanoutMode) config(string, []string, options) agentproc.Config { return agentproc.Config{} }

// configYAML puts a counting proxy in front of each receiver.
func (f *fanoutMode) configYAML(dataDir string, addrs []string, o options) string {
	for i := range f.proxies {
		if f.proxies[i] != nil {
			f.proxies[i].close()
		}
		p, err := newCountingProxy(addrs[i])
		if err != nil {
			panic(fmt.Sprintf("fanout proxy: %v", err)) // loopback listen: cannot fail in practice
		}
		f.proxies[i] = p
	}
	return fanoutYAML(dataDir, f.root, [3]string{f.proxies[0].addr, f.proxies[1].addr, f.proxies[2].addr})
}

// fanoutYAML is the agent config of the fan-out (also used by the e2e
// test, which has the same routes).
func fanoutYAML(dataDir, dockerRoot string, addrs [3]string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("data_dir: %q", dataDir)
	p("log_level: warn")
	p("shutdown_grace: 30s")
	p("inputs:")
	p("  - id: containers")
	p("    type: docker")
	p("    root: %q", dockerRoot)
	p("    tag: \"docker.{name}\"")
	p("    poll_interval: 200ms")
	p("    checkpoint_interval: 500ms")
	p("outputs:")
	for i, lt := range logTypes {
		p("  - id: %s", lt)
		p("    type: forward")
		p("    servers:")
		p("      - address: %q", addrs[i])
		p("    connect_timeout: 1s")
		p("    heartbeat_interval: 200ms")
		p("    retry_initial: 100ms")
		p("    retry_max: 1s")
		p("    buffer: { fsync: interval, fsync_interval: 1s }")
	}
	p("routes:")
	p("  - match: \"docker.**\"")
	p("    when: {field: log, contains: \"type=app \"}")
	p("    outputs: [app]")
	p("  - match: \"docker.**\"")
	p("    when: {field: log, regex: 'type=access\\b'}")
	p("    outputs: [access]")
	p("  - match: \"docker.**\"")
	p("    when: {field: log, regex: 'type=audit'}")
	p("    outputs: [audit]")
	return b.String()
}

// send runs the outage of the access receiver (the lines were written by
// prepare) and returns once it is back.
func (f *fanoutMode) send(o options) error {
	app, access, audit := f.proxies[0], f.proxies[1], f.proxies[2]
	// Bytes the agent sends per line beyond the payload: the record's
	// other keys and values, the entry header and the event time.
	const overhead = 134
	want := f.lineLen[0] + f.lineLen[2] + overhead*(f.counts[0]+f.counts[2])
	live := func() int64 { return app.bytes.Load() + audit.bytes.Load() }
	start := time.Now()
	wait := func(n int64) error {
		deadline := time.Now().Add(o.timeout)
		for live() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("fanout: app+audit stalled at %d of %d bytes", live(), n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}
	if err := wait(want / 3); err != nil {
		return err
	}
	down, atDown := time.Now(), live()
	access.pause()
	if err := wait(2 * want / 3); err != nil {
		access.resume()
		return err
	}
	up, atUp := time.Now(), live()
	if err := access.resume(); err != nil {
		return err
	}
	before := float64(atDown) / (1 << 20) / down.Sub(start).Seconds()
	during := float64(atUp-atDown) / (1 << 20) / up.Sub(down).Seconds()
	fmt.Fprintf(os.Stderr, "fanout: access receiver down %.2fs..%.2fs after start (%.2f s); app+audit forwarded %.1f MiB/s before the outage, %.1f MiB/s during it\n",
		down.Sub(start).Seconds(), up.Sub(start).Seconds(), up.Sub(down).Seconds(), before, during)
	return nil
}

func (f *fanoutMode) expect() []expectation {
	e := make([]expectation, 3)
	for t := range e {
		e[t] = expectation{src: fanoutSrc(t), lines: f.counts[t]}
	}
	return e
}

func (f *fanoutMode) payloadBytes() int64 { return f.payload }

// countingProxy forwards TCP connections to a receiver, counting the bytes
// sent to it; pause closes its listener and connections until resume
// listens again on the same address.
type countingProxy struct {
	addr, target string
	bytes        atomic.Int64

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	closed bool
}

func newCountingProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	return p, nil
}

func (p *countingProxy) serve(ln net.Listener) {
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *countingProxy) forward(c net.Conn) {
	t, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil || p.closed {
		p.mu.Unlock()
		c.Close()
		t.Close()
		return
	}
	p.conns[c], p.conns[t] = true, true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, t)
		p.mu.Unlock()
		c.Close()
		t.Close()
	}()
	go func() {
		io.Copy(c, t) // acks back to the agent
		c.Close()
	}()
	buf := make([]byte, 256<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := t.Write(buf[:n]); werr != nil {
				return
			}
			p.bytes.Add(int64(n))
		}
		if err != nil {
			return
		}
	}
}

// pause stops accepting and drops every connection: the receiver is down.
func (p *countingProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// resume listens again on the proxy's address.
func (p *countingProxy) resume() error {
	var ln net.Listener
	var err error
	for range 100 { // the port may linger a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("fanout: listen again on %s: %w", p.addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		ln.Close()
		return errors.New("fanout: proxy closed")
	}
	p.serve(ln)
	return nil
}

func (p *countingProxy) close() {
	p.pause()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

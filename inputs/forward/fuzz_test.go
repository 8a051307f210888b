package forward

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// streamConn is a net.Conn whose reads come from a byte stream in pieces of
// the given sizes (cycled), and whose writes are discarded.
type streamConn struct {
	data   []byte
	sizes  []int
	i      int
	closed bool
}

func (c *streamConn) Read(b []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(b)
	if len(c.sizes) > 0 {
		n = min(n, c.sizes[c.i%len(c.sizes)])
		c.i++
	}
	n = copy(b[:max(n, 1)], c.data)
	c.data = c.data[n:]
	return n, nil
}
func (c *streamConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *streamConn) Close() error                     { c.closed = true; return nil }
func (c *streamConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (c *streamConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConn feeds arbitrary bytes, split arbitrarily, to the connection
// handler (with and without the handshake, with parse_json, a tag template
// and small caps): it must never panic, hang or store malformed records,
// and the read buffer must stay within its cap.
func FuzzConn(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.client.bin"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0), uint16(0))
		f.Add(b, uint8(1), uint16(7))
	}
	stream, _, _ := allModesStream(f)
	f.Add(stream, uint8(0), uint16(3))
	f.Add(append(message("cid", 1700000000, fragment("stdout", "p", 1, false, `{"a":1}`), ""),
		message("cid", 1700000000, fragment("stdout", "p", 2, true, "x"), "c")...), uint8(2), uint16(1))
	const maxMsg = 64 << 10
	// Inputs are built once (routers compile patterns); each exec gets a
	// fresh connection and an emptied queue.
	type variant struct {
		in *Input
		q  *fakeQueue
	}
	var variants [4]variant
	for i := range variants {
		cfg := config.ForwardInput{
			MaxMessageBytes: maxMsg, MaxDecompressedBytes: 256 << 10, MaxPartialBytes: 4 << 10,
			ParseJSON: i&2 != 0, Tag: "{tag}.{name}.{field:a}.{label:x}",
		}
		if i&1 != 0 {
			cfg.Security = &config.Security{SelfHostname: "srv", SharedKey: "KEY", Users: []config.User{{Username: "u", Password: "p"}}}
		}
		q := &fakeQueue{}
		in, _ := newInput(f, cfg, q)
		variants[i] = variant{in, q}
	}
	f.Fuzz(func(t *testing.T, data []byte, flags uint8, split uint16) {
		v := variants[flags%4]
		v.q.mu.Lock()
		v.q.events = v.q.events[:0]
		v.q.mu.Unlock()
		v.in.rand = bytes.NewReader(make([]byte, 32))
		sc := &streamConn{data: data}
		if split > 0 {
			sc.sizes = []int{int(split%97) + 1, int(split%13) + 1, int(split)}
		}
		c := newConn(v.in, context.Background(), sc)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serve()
		}()
		timer := time.NewTimer(10 * time.Second)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			t.Fatal("connection handler hangs")
		}
		if len(c.buf) > maxMsg+minReadRoom {
			t.Fatalf("read buffer %d bytes over the cap", len(c.buf))
		}
		for _, e := range v.q.snapshot() {
			if n, ok := valueLen(e.Record); !ok || n != len(e.Record) {
				t.Fatalf("stored a malformed record %x", e.Record)
			}
			if _, ok := newMapIter(e.Record); !ok {
				t.Fatalf("stored a record that is not a map: %x", e.Record)
			}
		}
	})
}

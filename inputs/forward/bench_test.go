package forward

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// countQueue accepts chunks and only counts them.
type countQueue struct{ chunks, events atomic.Int64 }

func (q *countQueue) Append(_ context.Context, _ []byte, count int, _ []byte) error {
	q.chunks.Add(1)
	q.events.Add(int64(count))
	return nil
}
func (q *countQueue) Sync() error { return nil }

func (q *countQueue) Mark() uint64 { return 1 }

func (q *countQueue) SyncTo(uint64) error { return nil }

// loopConn serves block over and over until total bytes were read, in reads
// of at most readSize bytes (a socket hands over what arrived).
type loopConn struct {
	streamConn
	block    []byte
	left     int
	readSize int
	off      int
}

func (c *loopConn) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	n := min(len(b), c.readSize, len(c.block)-c.off, c.left)
	copy(b, c.block[c.off:c.off+n])
	c.off += n
	if c.off == len(c.block) {
		c.off = 0
	}
	c.left -= n
	return n, nil
}

// benchConn runs b.N events of block (perBlock events each) through one
// connection handler into a counting queue.
func benchConn(b *testing.B, cfg config.ForwardInput, block []byte, perBlock, readSize int) {
	q := &countQueue{}
	in, err := New("bench", cfg, newRouter(b, q), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	blocks := (b.N + perBlock - 1) / perBlock
	lc := &loopConn{block: block, left: blocks * len(block), readSize: readSize}
	c := newConn(in, context.Background(), lc)
	b.SetBytes(int64(len(block) / perBlock))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	c.serve()
	el := time.Since(start)
	b.StopTimer()
	if n := q.events.Load(); n != int64(blocks*perBlock) {
		b.Fatalf("stored %d events, want %d", n, blocks*perBlock)
	}
	b.ReportMetric(float64(blocks*perBlock)/el.Seconds(), "events/s")
}

// dockerBlock is n Messages as Docker's driver sends them: a record of
// container_id, container_name, source and a 200-byte log, EventTime.
func dockerBlock(n int, chunk bool) []byte {
	var block []byte
	log := strings.Repeat("x", 190)
	for i := range n {
		id := ""
		if chunk {
			id = fmt.Sprintf("AAAAAAAAAAAAAAAAAA%04d==", i%10000)
		}
		block = append(block, message("7f1c0ad52e4b",
			uint32(1700000000+i), dockerRecord("/web", "stdout", fmt.Sprintf("%s %08d", log, i)), id)...)
	}
	return block
}

// BenchmarkMessageMode: Docker's driver stream (Message mode, one event per
// request) through the connection handler: decode, normalize to the docker
// input's shape, route, encode into chunks.
func BenchmarkMessageMode(b *testing.B) {
	block := dockerBlock(1000, false)
	for _, rs := range []int{64 << 10, 4 << 10} {
		b.Run(fmt.Sprintf("read=%dKiB", rs>>10), func(b *testing.B) {
			benchConn(b, config.ForwardInput{}, block, 1000, rs)
		})
	}
	var jsonBlk []byte
	for i := range 1000 {
		jsonBlk = append(jsonBlk, message("7f1c0ad52e4b", uint32(1700000000+i),
			dockerRecord("/web", "stdout", fmt.Sprintf(`{"level":"info","seq":%d,"msg":"%s"}`, i, strings.Repeat("y", 150))), "")...)
	}
	b.Run("parse_json+tag", func(b *testing.B) {
		benchConn(b, config.ForwardInput{ParseJSON: true, Tag: "docker.{name}.{field:level}"}, jsonBlk, 1000, 64<<10)
	})
	// parse_json off: the payload is only looked into for {field:level}.
	b.Run("field_tag", func(b *testing.B) {
		benchConn(b, config.ForwardInput{Tag: "docker.{name}.{field:level}"}, jsonBlk, 1000, 64<<10)
	})
}

// BenchmarkPackedForward: 200-event PackedForward requests (a Fluent Bit or
// Sluice upstream), records passed through.
func BenchmarkPackedForward(b *testing.B) {
	var entries []byte
	for i := range 200 {
		entries = wire.AppendEntry(entries, int64(1700000000+i)*1e9, rec("log", strings.Repeat("z", 200), "stream", "stdout"))
	}
	block := wire.AppendPackedForward(nil, []byte("app"), entries, wire.Options{Size: 200, Chunk: "AAAAAAAAAAAAAAAAAAAAAA=="})
	benchConn(b, config.ForwardInput{}, block, 200, 64<<10)
}

// BenchmarkMessageModeTCP: the same Docker stream through a real loopback
// TCP connection and the whole Input.
func BenchmarkMessageModeTCP(b *testing.B) {
	q := &countQueue{}
	in, err := New("bench", config.ForwardInput{Listen: "127.0.0.1:0"}, newRouter(b, q), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	block := dockerBlock(1000, false)
	c, err := net.Dial("tcp", in.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(block) / 1000))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for ; sent < b.N; sent += 1000 {
		if _, err := c.Write(block); err != nil {
			b.Fatal(err)
		}
	}
	for q.events.Load() < int64(sent) {
		time.Sleep(100 * time.Microsecond)
	}
	el := time.Since(start)
	b.StopTimer()
	c.Close()
	b.ReportMetric(float64(sent)/el.Seconds(), "events/s")
}

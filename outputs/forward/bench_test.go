package forward

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
)

// benchSource returns the same entries forever, under new ids, without
// allocating, and signals when want chunks were acked.
type benchSource struct {
	entries []byte
	count   int
	next    atomic.Int64
	acked   atomic.Int64
	want    atomic.Int64
	done    chan struct{}
}

func (s *benchSource) Next(ctx context.Context) (buffer.Chunk, error) {
	if err := ctx.Err(); err != nil {
		return buffer.Chunk{}, err
	}
	n := s.next.Add(1)
	return buffer.Chunk{ID: buffer.ID{Segment: 1, Offset: n}, Tag: []byte("bench.tag"), Count: s.count, Entries: s.entries}, nil
}

func (s *benchSource) Ack(buffer.ID) {
	if s.acked.Add(1) == s.want.Load() {
		s.done <- struct{}{}
	}
}

func (s *benchSource) Discard(buffer.ID, string) {}

func (s *benchSource) Settle(id buffer.ID, _ buffer.Settlement) { s.Ack(id) }

func (s *benchSource) Rewind() {}

// ackServer acks every request as fast as it can, without allocating in
// steady state: the far end of the benchmarks.
func ackServer(b *testing.B) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, 0, 4<<20)
				var out []byte
				for {
					req, n, err := wire.ReadRequest(buf, 0)
					if errors.Is(err, wire.ErrShort) {
						if len(buf) == cap(buf) {
							buf = append(buf, 0)[:len(buf)]
						}
						k, err := c.Read(buf[len(buf):cap(buf)])
						buf = buf[:len(buf)+k]
						if err != nil {
							return // the client went away (the run is over)
						}
						continue
					}
					if err != nil {
						b.Error(err)
						return
					}
					out = wire.AppendAck(out[:0], req.Chunk)
					buf = buf[:copy(buf, buf[n:])]
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String(), func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// benchSend measures the chunk send path: a chunk of 1000 entries of about
// 200 bytes each to a local acking server, acks awaited. B/op and allocs/op
// are per chunk and include the server's side.
func benchSend(b *testing.B, compress string) {
	var entries []byte
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		entries = wire.AppendEntry(entries, time.Now().UnixNano(), logRecord(rnd, i))
	}
	addr, stop := ackServer(b)
	defer stop()
	src := &benchSource{entries: entries, count: 1000, done: make(chan struct{}, 1)}
	src.want.Store(1 << 62)
	cfg := baseConfig(addr)
	cfg.Compress = compress
	cfg.CompressLevel = 1
	r := start(b, cfg, src)
	defer r.stop()
	b.SetBytes(int64(len(entries)))
	b.Logf("chunk: 1000 entries, %d bytes", len(entries))
	b.ReportAllocs()
	// Warm up (connection, buffers), then measure.
	src.want.Store(src.acked.Load() + 50)
	<-src.done
	b.ResetTimer()
	src.want.Store(src.acked.Load() + int64(b.N))
	<-src.done
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/event")
}

// logRecord is an access-log-like record of about 200 bytes, so that gzip
// sees realistic redundancy.
func logRecord(rnd *rand.Rand, i int) []byte {
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	line := fmt.Sprintf(`10.%d.%d.%d - - [25/Nov/2025:10:%02d:%02d +0000] "%s /api/v1/items/%d?page=%d HTTP/1.1" %d %d "-" "Mozilla/5.0 (X11; Linux x86_64) curl/8.%d" rt=%.3f`,
		rnd.IntN(256), rnd.IntN(256), rnd.IntN(256), rnd.IntN(60), rnd.IntN(60), methods[rnd.IntN(4)],
		rnd.IntN(1e6), rnd.IntN(50), 200+100*rnd.IntN(4), rnd.IntN(1e5), rnd.IntN(10), rnd.Float64())
	r := msgp.AppendMapHeader(nil, 3)
	r = msgp.AppendString(r, "seq")
	r = msgp.AppendString(r, strconv.Itoa(i))
	r = msgp.AppendString(r, "stream")
	r = msgp.AppendString(r, "stdout")
	r = msgp.AppendString(r, "log")
	return msgp.AppendString(r, line)
}

func BenchmarkSendChunk(b *testing.B)      { benchSend(b, "") }
func BenchmarkSendChunkGzip1(b *testing.B) { benchSend(b, "gzip") }

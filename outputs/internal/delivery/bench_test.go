package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
)

// nopEncoder counts events; the batch is full at 5,000.
type nopEncoder struct{ n, bytes int }

func (e *nopEncoder) Add(ev *Event) error {
	if e.n >= 5000 {
		return ErrFull
	}
	e.n++
	e.bytes += len(ev.Entry)
	return nil
}
func (e *nopEncoder) Full() bool { return e.n >= 5000 }
func (e *nopEncoder) Len() int   { return e.n }
func (e *nopEncoder) Bytes() int { return e.bytes }
func (e *nopEncoder) Reset()     { e.n, e.bytes = 0, 0 }

type nopSink struct{}

func (nopSink) NewEncoder() Encoder                           { return &nopEncoder{} }
func (nopSink) Send(context.Context, Encoder, []Result) error { return nil }

// memSource hands out the same chunk forever and counts settles.
type memSource struct {
	c       buffer.Chunk
	settled chan struct{}
}

func (m *memSource) Next(ctx context.Context) (buffer.Chunk, error) {
	if err := ctx.Err(); err != nil {
		return buffer.Chunk{}, err
	}
	m.c.ID.Offset++
	return m.c, nil
}
func (m *memSource) Settle(buffer.ID, buffer.Settlement) { m.settled <- struct{}{} }
func (m *memSource) Rewind()                             {}

// BenchmarkEngine is the engine's own cost per event: split chunks of
// 1,000 events of ~150 bytes into events, batch them, send (no-op) and
// settle, on 2 workers.
func BenchmarkEngine(b *testing.B) {
	var entries []byte
	for i := range 1000 {
		entries = wire.AppendEntry(entries, time.Now().UnixNano(), record(i))
	}
	src := &memSource{c: buffer.Chunk{Tag: []byte("app"), Count: 1000, Entries: entries}, settled: make(chan struct{}, 1024)}
	e, err := New(src, nopSink{}, Options{ID: "bench", Workers: 2, FlushInterval: time.Millisecond, Eager: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	b.SetBytes(int64(len(entries)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		<-src.settled
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/event")
	cancel()
	go func() {
		for range src.settled {
		}
	}()
	<-done
}

package buffer

import (
	"context"
	"sync"
	"testing"
)

func benchEntries() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i * 31)
	}
	return b
}

func benchQueue(b *testing.B, opts Options) (*Queue, func()) {
	opts.Name = "bench"
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 256 << 20 // bounded disk use; older segments get dropped
	}
	q := mustOpen(b, b.TempDir(), opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { q.Run(ctx) })
	return q, func() { cancel(); wg.Wait() }
}

// BenchmarkAppend64K appends 64 KiB chunks with the interval fsync policy
// (Run fsyncs every second in the background).
func BenchmarkAppend64K(b *testing.B) {
	q, stop := benchQueue(b, Options{})
	defer stop()
	entries, tag := benchEntries(), []byte("kube.var.log.containers.app")
	ctx := context.Background()
	b.SetBytes(int64(len(entries)))
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Append(ctx, tag, 500, entries); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend64KParallel is BenchmarkAppend64K with concurrent
// appenders (one per GOMAXPROCS).
func BenchmarkAppend64KParallel(b *testing.B) {
	q, stop := benchQueue(b, Options{})
	defer stop()
	entries, tag := benchEntries(), []byte("kube.var.log.containers.app")
	b.SetBytes(int64(len(entries)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Append(context.Background(), tag, 500, entries); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppend64KAlways fsyncs every chunk (fsync: always), with one
// appender, so there is no group commit to share the fsync.
func BenchmarkAppend64KAlways(b *testing.B) {
	q, stop := benchQueue(b, Options{FsyncAlways: true})
	defer stop()
	entries, tag := benchEntries(), []byte("kube.var.log.containers.app")
	b.SetBytes(int64(len(entries)))
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Append(context.Background(), tag, 500, entries); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNextAck64K measures the consumer: Next (read and verify from
// the page cache, one allocation for the chunk) plus Ack (persisting the
// ack position). Appends happen with the timer stopped.
func BenchmarkNextAck64K(b *testing.B) {
	q, stop := benchQueue(b, Options{})
	defer stop()
	entries, tag := benchEntries(), []byte("kube.var.log.containers.app")
	ctx := context.Background()
	b.SetBytes(int64(len(entries)))
	b.ReportAllocs()
	const batch = 64
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		b.StopTimer()
		for range n {
			if err := q.Append(ctx, tag, 500, entries); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for range n {
			c, err := q.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			q.Ack(c.ID)
		}
	}
}

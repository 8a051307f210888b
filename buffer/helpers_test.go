package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/pipeline"
)

// The router appends through pipeline.Queue.
var _ pipeline.Queue = (*Queue)(nil)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Test chunks: tag "t", count i%5+1, entries of entriesLen bytes starting
// with the chunk's index. With SegmentBytes 200 a segment holds exactly
// three frames of testFrameLen bytes.
const (
	entriesLen   = 40
	testFrameLen = minFrameLen + 1 + entriesLen // 59
)

func testEntries(i int) []byte {
	b := make([]byte, entriesLen)
	binary.BigEndian.PutUint64(b, uint64(i))
	for j := 8; j < len(b); j++ {
		b[j] = byte(i*7 + j)
	}
	return b
}

func testCount(i int) int { return i%5 + 1 }

// chunkIndex returns the index a test chunk was appended with.
func chunkIndex(t testing.TB, c Chunk) int {
	t.Helper()
	if len(c.Entries) < 8 {
		t.Fatalf("chunk %s: short entries %q", c.ID, c.Entries)
	}
	i := int(binary.BigEndian.Uint64(c.Entries))
	if !bytes.Equal(c.Entries, testEntries(i)) || string(c.Tag) != "t" || c.Count != testCount(i) {
		t.Fatalf("chunk %s: content does not match chunk %d: tag %q count %d", c.ID, i, c.Tag, c.Count)
	}
	return i
}

func smallOpts() Options {
	return Options{Name: "t", SegmentBytes: 200, MaxBytes: 1 << 20}
}

func mustOpen(t testing.TB, dir string, opts Options) *Queue {
	t.Helper()
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func appendRange(t testing.TB, q *Queue, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := q.Append(context.Background(), []byte("t"), testCount(i), testEntries(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// next returns the next chunk or fails after a second.
func next(t testing.TB, q *Queue) Chunk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := q.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return c
}

// drain reads every chunk available now (Next with a cancelled context
// still returns a chunk that is already there) and returns their indexes
// and chunks.
func drain(t testing.TB, q *Queue) ([]int, []Chunk) {
	t.Helper()
	var idx []int
	var cs []Chunk
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		c, err := q.Next(ctx)
		if err == context.Canceled {
			return idx, cs
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		idx = append(idx, chunkIndex(t, c))
		cs = append(cs, c)
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func without(s []int, drop ...int) []int {
	var out []int
	for _, v := range s {
		keep := true
		for _, d := range drop {
			keep = keep && v != d
		}
		if keep {
			out = append(out, v)
		}
	}
	return out
}

func segFile(dir string, seq uint64) string { return fmt.Sprintf("%s/%020d.seg", dir, seq) }

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x55
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// crash simulates kill -9: the files are closed without fsync and without
// anything Close would write. What was written stays in the page cache, as
// after a process crash.
func crash(q *Queue) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed, q.final = true, true
	close(q.done)
	close(q.dataCh)
	close(q.ackCh)
	q.dataWait, q.ackWait = false, false
	for q.syncing {
		q.syncCond.Wait()
	}
	for _, f := range q.unsynced {
		f.Close()
	}
	q.unsynced = nil
	q.syncCond.Broadcast()
	q.closeFiles()
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

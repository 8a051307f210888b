package buffer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/wire"
)

// TestScan: Scan of a closed queue reports the pending chunks from the ack
// position, their events and event times, and passes them in order; it
// changes no file; Locked is true only while a Queue holds the dir.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, dir, smallOpts())
	if l, err := Locked(dir); err != nil || !l {
		t.Fatalf("open queue: Locked %v, %v", l, err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 7 {
		var e []byte
		for j := range 2 {
			e = wire.AppendEntry(e, base.Add(time.Duration(10*i+j)*time.Second).UnixNano(), []byte{0x81, 0xa1, 'k', byte(i)})
		}
		if err := q.Append(context.Background(), []byte("t"), 2, e); err != nil {
			t.Fatal(err)
		}
	}
	// Ack the first three.
	for range 3 {
		q.Ack(next(t, q).ID)
	}
	q.Close()
	if l, err := Locked(dir); err != nil || l {
		t.Fatalf("closed queue: Locked %v, %v", l, err)
	}
	before := listing(t, dir)
	var counts []byte
	sum, err := Scan(dir, func(c Chunk) error {
		_, rec, _, _, err := wire.NextEntry(c.Entries)
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, rec[len(rec)-1])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(counts, []byte{3, 4, 5, 6}) {
		t.Errorf("chunks %v, want 3..6", counts)
	}
	if sum.Chunks != 4 || sum.Events != 8 || !sum.AckValid || sum.Corrupt != 0 {
		t.Errorf("summary %+v", sum)
	}
	if !sum.Oldest.Equal(base.Add(30*time.Second)) || !sum.Newest.Equal(base.Add(61*time.Second)) {
		t.Errorf("oldest %s newest %s", sum.Oldest, sum.Newest)
	}
	if after := listing(t, dir); !slices.Equal(before, after) {
		t.Errorf("Scan changed the dir:\n%v\n%v", before, after)
	}
	if _, err := Scan(filepath.Join(dir, "nope"), nil); !os.IsNotExist(err) {
		t.Errorf("missing dir: %v", err)
	}
}

// listing returns every file name, size and modification time in dir.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		fi, _ := e.Info()
		out = append(out, fmt.Sprintf("%s %s %d", e.Name(), fi.ModTime(), fi.Size()))
	}
	return out
}

// TestFollow: Follow sees only chunks appended after it started, in order,
// across segment rotations, while the queue's consumer acks (and so
// deletes) segments.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	q := mustOpen(t, dir, smallOpts())
	appendRange(t, q, 0, 4) // before Follow: not seen
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []int
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, dir, 5*time.Millisecond, func(c Chunk) error {
			mu.Lock()
			got = append(got, chunkIndex(t, c))
			mu.Unlock()
			return nil
		})
	}()
	time.Sleep(50 * time.Millisecond)
	for i := 4; i < 40; i++ {
		appendRange(t, q, i, i+1)
		if i%3 == 0 {
			_, cs := drain(t, q)
			for _, c := range cs {
				q.Ack(c.ID)
			}
		}
		time.Sleep(20 * time.Millisecond) // Follow (5ms polls) keeps up with the deletions
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 36 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, seq(4, 40)) {
		t.Errorf("followed %v, want 4..39", got)
	}
}

// Package powercut models what a power cut leaves on disk, for crash tests
// of code whose fsyncs go through one hook (buffer.SetSyncHook).
//
// The model is the strict POSIX one: a file's content survives only as of
// its last fsync, and a directory entry (a created or removed file) only
// as of the last fsync of its directory. Disk.Sync records, at the moment
// an fsync starts, the file's bytes up to its size then (appends that race
// with the fsync are not covered, as on a real disk), or the directory's
// listing; Crash materializes that state in another directory, where the
// code under test is then reopened.
package powercut

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Disk records the durable state of the files under one root.
type Disk struct {
	root string

	mu      sync.Mutex
	files   map[string][]byte          // path relative to root -> content at its last fsync
	dirs    map[string]map[string]bool // dir relative to root -> names at its last fsync
	crashed bool
	syncs   int
}

// New returns a Disk for the files under root.
func New(root string) *Disk {
	return &Disk{root: root, files: map[string][]byte{}, dirs: map[string]map[string]bool{}}
}

// Sync records what an fsync of f makes durable, then does the real fsync.
// After Crash it only does the real fsync.
func (d *Disk) Sync(f *os.File) error {
	if err := d.record(f); err != nil {
		return err
	}
	return f.Sync()
}

func (d *Disk) record(f *os.File) error {
	rel, err := filepath.Rel(d.root, f.Name())
	if err != nil || rel == ".." || len(rel) > 2 && rel[:3] == "../" {
		return nil // outside the modelled tree
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("powercut: stat: %w", err)
	}
	if fi.IsDir() {
		ents, err := os.ReadDir(f.Name())
		if err != nil {
			return fmt.Errorf("powercut: read dir: %w", err)
		}
		names := map[string]bool{}
		for _, e := range ents {
			names[e.Name()] = true
		}
		d.mu.Lock()
		if !d.crashed {
			d.dirs[rel] = names
			d.syncs++
		}
		d.mu.Unlock()
		return nil
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return fmt.Errorf("powercut: read: %w", err)
	}
	d.mu.Lock()
	if !d.crashed {
		d.files[rel] = data
		d.syncs++
	}
	d.mu.Unlock()
	return nil
}

// Syncs is the number of fsyncs recorded so far.
func (d *Disk) Syncs() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncs
}

// Crash cuts the power now: later fsyncs are no longer recorded, and dst
// receives the tree as it would be found after a reboot. Only directories
// fsynced at least once exist; in each, the files of its last fsynced
// listing, each with its content as of its last fsync (empty if it was
// never fsynced).
func (d *Disk) Crash(dst string) error {
	d.mu.Lock()
	d.crashed = true
	d.mu.Unlock()
	for dir, names := range d.dirs {
		if err := os.MkdirAll(filepath.Join(dst, dir), 0o750); err != nil {
			return err
		}
		for name := range names {
			rel := filepath.Join(dir, name)
			if _, isDir := d.dirs[rel]; isDir {
				continue
			}
			if fi, err := os.Stat(filepath.Join(d.root, rel)); err == nil && fi.IsDir() {
				continue // a directory never fsynced: empty after the cut
			}
			if err := os.WriteFile(filepath.Join(dst, rel), d.files[rel], 0o640); err != nil {
				return err
			}
		}
	}
	return nil
}

// Logs opens the queue in dir as the next boot would, reads every chunk
// and returns how many times each "log" value occurs in its events.
func Logs(dir string, opts buffer.Options) (map[string]int, error) {
	q, err := buffer.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	got := map[string]int{}
	for q.Stats().Pending > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := q.Next(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("powercut: read recovered queue: %w", err)
		}
		if err := wire.ForEachEntry(c.Entries, func(_ int64, rec []byte) error {
			v, _ := wire.LookupString(rec, []byte("log"))
			got[string(v)]++
			return nil
		}); err != nil {
			return nil, fmt.Errorf("powercut: decode recovered chunk: %w", err)
		}
		q.Ack(c.ID)
	}
	return got, nil
}

package tail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// This file holds everything about committed offsets: the offsets file,
// the one place where a successful Flush moves offsets forward
// (commitFlushed), and the checkpoint goroutine that makes them durable.

// stateName is the offsets file in <data_dir>/inputs/<id>/.
const stateName = "offsets.json"

const stateVersion = 1

// stateFile is the on-disk offsets file, JSON:
//
//	{"version":1,"files":[{"container_id":"…","path":"…","fingerprint":"<sha256 hex>",
//	  "fingerprint_len":1024,"offset":12345,"size":20000,"dev":2049,"ino":1234,
//	  "last_seen":1700000000}]}
type stateFile struct {
	Version int         `json:"version"`
	Files   []savedFile `json:"files"`
}

// savedFile is the committed state of one tracked file.
type savedFile struct {
	// ContainerID is the key of the file's source (for Docker, the
	// container id); the name is kept for compatibility.
	ContainerID string `json:"container_id"`
	// Path is the last path the file was seen at (a hint).
	Path string `json:"path"`
	// Fingerprint is the hex SHA-256 of the file's first FingerprintLen
	// bytes: the file's identity.
	Fingerprint    string `json:"fingerprint"`
	FingerprintLen int    `json:"fingerprint_len"`
	// Offset is the handed-off offset: every line before it is in the
	// queues (and was fsynced by Router.Sync before this file was written).
	Offset int64 `json:"offset"`
	// Size is the last known size, for the loss estimate of a file that
	// disappears before it was read.
	Size int64 `json:"size"`
	// Dev and Ino are hints only.
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// LastSeen is when the file was last found on disk (Unix seconds).
	LastSeen int64 `json:"last_seen"`
}

// errCorruptState marks a state file that exists but cannot be used.
var errCorruptState = errors.New("corrupt offsets file")

// committed is one file's new committed offset after a successful Flush.
type committed struct {
	f   *file
	off int64
}

// commitFlushed is where offsets move forward: it is called once per
// successful Flush that handed off lines, on the reader goroutine, with
// every file whose lines were in it and its new committed offset (never
// past a pending partial group or long line). It publishes them for the
// next checkpoint. A position journal would record cs here.
func (t *Tail) commitFlushed(cs []committed) {
	t.mu.Lock()
	for _, c := range cs {
		f := c.f
		f.commit = c.off
		f.saved.Offset = c.off
		f.saved.Size = max(f.size, f.readOff)
	}
	t.gen++
	t.mu.Unlock()
}

// resetCommitted moves f's committed offset back to off (a known file
// found shorter than its offset is read again from the start).
func (t *Tail) resetCommitted(f *file, off int64) {
	t.mu.Lock()
	f.commit = off
	f.saved.Offset = off
	t.gen++
	t.mu.Unlock()
}

// publishIdentity copies f's identity into its saved entry. The caller
// holds t.mu. The offset is published only by commitFlushed.
func (t *Tail) publishIdentity(f *file, now time.Time) {
	old := f.saved
	s := &f.saved
	s.ContainerID, s.Path = f.src.key, f.path
	if f.fp != f.pubFP || s.Fingerprint == "" {
		s.Fingerprint, s.FingerprintLen = f.fp.String(), f.fp.n
		f.pubFP = f.fp
	}
	s.Size = max(f.size, f.readOff)
	s.Dev, s.Ino = f.dev, f.ino
	if !now.IsZero() && now.Unix()-s.LastSeen >= 60 {
		s.LastSeen = now.Unix() // coarse: only for forgetting old entries
	}
	if *s != old {
		t.gen++
	}
}

// checkpointLoop writes the offsets file every CheckpointInterval.
func (t *Tail) checkpointLoop(ctx context.Context) {
	tk := time.NewTicker(t.ckptEvery)
	defer tk.Stop()
	var warn limiter
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if err := t.checkpoint(); err != nil {
				if ok, n := warn.allow(time.Now()); ok {
					t.log.Error("checkpoint failed; will retry", "err", err, "suppressed", n)
				}
			}
		}
	}
}

// checkpoint snapshots the published offsets, makes the queues durable
// (Router.Sync) and only then writes the offsets file. Offsets in the
// snapshot were all published after a successful Flush, so everything
// before them is in the queues before Sync starts.
func (t *Tail) checkpoint() error {
	t.ckMu.Lock()
	defer t.ckMu.Unlock()
	t.mu.Lock()
	if t.gen == t.savedGen {
		t.mu.Unlock()
		return nil
	}
	gen := t.gen
	t.snap = t.snap[:0]
	for _, s := range t.sources {
		for _, f := range s.files {
			t.snap = append(t.snap, f.saved)
		}
	}
	t.mu.Unlock()
	if err := t.r.Sync(); err != nil {
		return fmt.Errorf("sync queues: %w", err)
	}
	if err := writeState(t.statePath, t.snap); err != nil {
		return err
	}
	t.savedGen = gen
	return nil
}

// openState loads the offsets file of a new Tail. A corrupt one is moved
// aside (<name>.bad) and reading starts over from the head of every file:
// duplicates, but nothing lost. existed says an offsets file was there.
func (t *Tail) openState() (existed bool, err error) {
	saved, existed, err := loadState(t.statePath)
	if errors.Is(err, errCorruptState) {
		bad := t.statePath + ".bad"
		if rerr := os.Rename(t.statePath, bad); rerr != nil {
			return true, fmt.Errorf("%w (and moving it aside: %v)", err, rerr)
		}
		t.log.Error("offsets file unusable, moved aside; files will be read from the start", "err", err, "moved_to", bad)
		return true, nil
	}
	if err != nil {
		return existed, err
	}
	t.restore(saved)
	return existed, nil
}

// restore turns saved entries into closed files; the first scan reopens
// those still on disk.
func (t *Tail) restore(saved []savedFile) {
	for _, sv := range saved {
		fp, err := parseFingerprint(sv.Fingerprint, sv.FingerprintLen)
		if err != nil || sv.ContainerID == "" || sv.Offset < 0 {
			t.log.Warn("ignoring invalid offsets entry", "path", sv.Path, "err", err)
			continue
		}
		s := t.sources[sv.ContainerID]
		if s == nil {
			s = t.addSource(sv.ContainerID)
		}
		t.seq++
		s.files = append(s.files, &file{
			src: s, seq: t.seq, path: sv.Path, rank: maxRank, gone: true,
			dev: sv.Dev, ino: sv.Ino, size: sv.Size, fp: fp,
			readOff: sv.Offset, commit: sv.Offset,
			lastSeen: time.Unix(sv.LastSeen, 0), saved: sv, pubFP: fp,
		})
	}
	t.reorder()
}

// loadState reads the offsets file. existed is false if there is none.
func loadState(path string) (files []savedFile, existed bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("read offsets: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, true, fmt.Errorf("%w %s: %v", errCorruptState, path, err)
	}
	if st.Version != stateVersion {
		return nil, true, fmt.Errorf("%w %s: unsupported version %d", errCorruptState, path, st.Version)
	}
	return st.Files, true, nil
}

// writeState replaces the offsets file atomically: write a temp file,
// fsync it, rename it over the old one, fsync the directory.
func writeState(path string, files []savedFile) error {
	data, err := json.Marshal(stateFile{Version: stateVersion, Files: files})
	if err != nil {
		return fmt.Errorf("encode offsets: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create offsets: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write offsets: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename offsets: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("sync offsets dir: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

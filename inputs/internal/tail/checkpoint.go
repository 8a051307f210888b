package tail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/journal"
)

// This file holds everything about committed offsets: the offsets file,
// the position journal, the one place where a successful Flush moves
// offsets forward (commitFlushed), and the checkpoint goroutine that makes
// them durable.
//
// Two records of what was handed off, with different durability:
//
//   - offsets.json, the checkpoint: written every CheckpointInterval only
//     after Router.Sync fsynced every queue, so its offsets survive power
//     loss. It holds the generation (gen) of the publications it covers.
//   - the journal (inputs/internal/journal): after every successful Flush,
//     one record of the files whose offsets moved, written to the OS and
//     never fsynced, tagged with its gen. It is trusted only within the
//     boot that wrote it: after kill -9 the page cache still holds both the
//     queue data and the record, so a restart resumes exactly where the
//     buffer ends (near-zero re-reading); after a reboot it is ignored and
//     the input resumes from the checkpoint.
//
// A checkpoint that covers gen G rotates the journal under t.mu, where it
// takes its snapshot (so every record <= G is in an older file), and prunes
// the older files once offsets.json is written. At start the checkpoint is
// loaded and the journal records above its gen are applied in order, each
// entry replacing the one with the same ID (an id given to a tracked file
// when it is first published, kept in both records).

// stateName is the offsets file in <data_dir>/inputs/<id>/.
const stateName = "offsets.json"

const stateVersion = 1

// stateFile is the on-disk offsets file, JSON:
//
//	{"version":1,"files":[{"container_id":"…","path":"…","fingerprint":"<sha256 hex>",
//	  "fingerprint_len":1024,"offset":12345,"size":20000,"dev":2049,"ino":1234,
//	  "last_seen":1700000000}]}
//
// While a stream holds a group (partial or multiline) and other lines
// after its start were handed off, the entry also has "read" and
// "streams": [{"stream":"stderr","offset":12400}] (see savedFile).
type stateFile struct {
	Version int `json:"version"`
	// Gen is the last publication the snapshot covers; journal records
	// above it are newer. NextID is the next entry ID to give out.
	Gen    uint64      `json:"gen,omitempty"`
	NextID uint64      `json:"next_id,omitempty"`
	Files  []savedFile `json:"files"`
}

// savedFile is the committed state of one tracked file.
type savedFile struct {
	// ContainerID is the key of the file's source (for Docker, the
	// container id); the name is kept for compatibility.
	ContainerID string `json:"container_id"`
	// ID names the entry across the offsets file and the journal.
	ID uint64 `json:"id,omitempty"`
	// Path is the last path the file was seen at (a hint).
	Path string `json:"path"`
	// Fingerprint is the hex SHA-256 of the file's first FingerprintLen
	// bytes: the file's identity.
	Fingerprint    string `json:"fingerprint"`
	FingerprintLen int    `json:"fingerprint_len"`
	// Offset is the handed-off offset: every line before it is in the
	// queues (and was fsynced by Router.Sync before this file was written).
	Offset int64 `json:"offset"`
	// Read and Streams say which lines after Offset were handed off too
	// (Read 0: none): a line of a stream listed in Streams was if it
	// starts before that stream's offset, a line of another stream (or a
	// malformed one) if it starts before Read. Offset stays at the start
	// of a group a stream holds; a restart reads on from it and skips
	// what was handed off. Streams is never changed in place: a new slice
	// replaces it (the checkpoint goroutine reads copies of the entry).
	Read    int64        `json:"read,omitempty"`
	Streams *[]streamOff `json:"streams,omitempty"`
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
	f       *file
	off     int64
	read    int64        // savedFile.Read
	streams *[]streamOff // savedFile.Streams
}

// commitFlushed is where offsets move forward: it is called once per
// successful Flush that handed off lines, on the reader goroutine, with
// every file whose lines were in it and its new committed offset (never
// past a pending partial group, held multiline line or long line), with
// the per-stream bounds of what was handed off past it (commitState). It
// publishes them for the next checkpoint and records them in the journal.
func (t *Tail) commitFlushed(cs []committed) {
	t.mu.Lock()
	t.pos.rec = t.pos.rec[:0]
	for _, c := range cs {
		f := c.f
		f.commit = c.off
		f.saved.Offset = c.off
		f.saved.Read, f.saved.Streams = 0, nil
		if c.read > c.off {
			f.saved.Read, f.saved.Streams = c.read, c.streams
		}
		f.saved.Size = max(f.size, f.readOff)
		t.pos.rec = append(t.pos.rec, t.entryLocked(f))
	}
	t.gen++
	t.journalLocked()
	t.mu.Unlock()
}

// resetCommitted moves f's committed offset back to off (a known file
// found shorter than its offset is read again from the start).
func (t *Tail) resetCommitted(f *file, off int64) {
	f.clearSkip()
	t.mu.Lock()
	f.commit = off
	f.saved.Offset = off
	f.saved.Read, f.saved.Streams = 0, nil
	t.gen++
	t.pos.rec = append(t.pos.rec[:0], t.entryLocked(f))
	t.journalLocked()
	t.mu.Unlock()
}

// positions is the journal state, guarded by Tail.mu.
type positions struct {
	dir    string
	jr     *journal.Journal // nil outside Run: nothing is journaled
	nextID uint64
	keep   uint64      // a rotation whose older files await a successful checkpoint (0: none)
	rec    []savedFile // scratch: the entries of one record
	warn   limiter
}

// entryLocked returns f's saved entry, giving it an ID first if needed.
func (t *Tail) entryLocked(f *file) savedFile {
	if f.saved.ID == 0 {
		t.pos.nextID++
		f.saved.ID = t.pos.nextID
	}
	return f.saved
}

// journalAll journals every tracked file: the offsets the first scan gave
// files under StartAtEnd are otherwise in no record until lines of them
// are flushed.
func (t *Tail) journalAll() {
	t.mu.Lock()
	t.pos.rec = t.pos.rec[:0]
	for _, s := range t.sources {
		for _, f := range s.files {
			t.pos.rec = append(t.pos.rec, t.entryLocked(f))
		}
	}
	t.gen++
	t.journalLocked()
	t.mu.Unlock()
}

// journalLocked appends t.pos.rec as the record of generation t.gen. A
// failure costs only re-reading after a crash: it is logged, rate-limited.
func (t *Tail) journalLocked() {
	if t.pos.jr == nil {
		return
	}
	payload, err := json.Marshal(t.pos.rec)
	if err == nil {
		err = t.pos.jr.Append(t.gen, payload)
	}
	if err != nil {
		if ok, n := t.pos.warn.allow(time.Now()); ok {
			t.log.Warn("position journal write failed; a crash now re-reads from the last checkpoint", "err", err, "suppressed", n)
		}
		// A short write would hide every later record of this file from
		// Replay: go on in a fresh one.
		_ = t.pos.jr.Rotate()
	}
}

// openJournal starts journaling (Run).
func (t *Tail) openJournal() {
	jr, err := journal.Open(t.pos.dir)
	if err != nil {
		t.log.Warn("position journal unavailable; a crash re-reads from the last checkpoint", "err", err)
		return
	}
	t.mu.Lock()
	t.pos.jr = jr
	t.mu.Unlock()
}

func (t *Tail) closeJournal() {
	t.mu.Lock()
	jr := t.pos.jr
	t.pos.jr = nil
	t.mu.Unlock()
	if jr != nil {
		_ = jr.Close()
	}
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
			t.snap = append(t.snap, t.entryLocked(f))
		}
	}
	nextID := t.pos.nextID
	// Every record <= gen is now in a file before keep. While an earlier
	// rotation still waits for its checkpoint to succeed, no new file is
	// started (checkpoints that keep failing must not pile files up); the
	// files kept then also hold records <= gen, which Replay skips.
	if jr := t.pos.jr; jr != nil && t.pos.keep == 0 {
		if err := jr.Rotate(); err == nil {
			t.pos.keep = jr.Seq()
		}
	}
	keep := t.pos.keep
	t.mu.Unlock()
	if err := t.r.Sync(); err != nil {
		return fmt.Errorf("sync queues: %w", err)
	}
	if err := writeState(t.statePath, stateFile{Gen: gen, NextID: nextID, Files: t.snap}); err != nil {
		return err
	}
	t.savedGen = gen
	if keep > 0 {
		if err := journal.Prune(t.pos.dir, keep); err != nil {
			t.log.Warn("prune position journal", "err", err)
		}
		t.mu.Lock()
		t.pos.keep = 0
		t.mu.Unlock()
	}
	return nil
}

// openState loads the offsets file of a new Tail. A corrupt one is moved
// aside (<name>.bad) and reading starts over from the head of every file:
// duplicates, but nothing lost. existed says an offsets file was there.
func (t *Tail) openState() (existed bool, err error) {
	t.pos.dir = filepath.Dir(t.statePath)
	st, existed, err := loadState(t.statePath)
	if errors.Is(err, errCorruptState) {
		bad := t.statePath + ".bad"
		if rerr := os.Rename(t.statePath, bad); rerr != nil {
			return true, fmt.Errorf("%w (and moving it aside: %v)", err, rerr)
		}
		t.log.Error("offsets file unusable, moved aside; files will be read from the start", "err", err, "moved_to", bad)
		// Its journal is numbered after it: replaying it over nothing
		// would mix up entries. Everything is read again anyway.
		if err := journal.Prune(t.pos.dir, math.MaxUint64); err != nil {
			t.log.Warn("remove position journal", "err", err)
		}
		return true, nil
	}
	if err != nil {
		return existed, err
	}
	saved, replayed, err := t.replayJournal(&st)
	if err != nil {
		return existed, err
	}
	t.restore(saved)
	return existed || replayed, nil
}

// replayJournal applies the journal records newer than the checkpoint st
// to its entries, sets the generation and ID counters past everything
// seen, and reports whether any record was applied.
func (t *Tail) replayJournal(st *stateFile) ([]savedFile, bool, error) {
	saved := st.Files
	byID := make(map[uint64]int, len(saved))
	t.pos.nextID = st.NextID
	for i := range saved {
		if saved[i].ID == 0 { // written before IDs existed
			st.NextID++
			saved[i].ID = st.NextID
		}
		byID[saved[i].ID] = i
		t.pos.nextID = max(t.pos.nextID, saved[i].ID)
	}
	gen, n := st.Gen, 0
	other, err := journal.Replay(t.pos.dir, st.Gen, func(r journal.Record) error {
		var recs []savedFile
		if err := json.Unmarshal(r.Payload, &recs); err != nil {
			return nil // a record we cannot read only means re-reading
		}
		for _, e := range recs {
			if i, ok := byID[e.ID]; ok {
				saved[i] = e
			} else {
				byID[e.ID] = len(saved)
				saved = append(saved, e)
			}
			t.pos.nextID = max(t.pos.nextID, e.ID)
		}
		gen, n = max(gen, r.Gen), n+1
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if other > 0 {
		t.log.Info("position journal from an earlier boot ignored; resuming from the checkpoint", "files", other)
	}
	if n > 0 {
		t.log.Info("resumed from the position journal", "records", n, "checkpoint_gen", st.Gen, "journal_gen", gen)
	}
	t.gen, t.savedGen = gen, st.Gen
	return saved, n > 0, nil
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
		if !t.wants(sv.ContainerID) {
			t.log.Debug("dropping offsets entry of a source not read", "source", sv.ContainerID, "path", sv.Path)
			continue
		}
		s := t.sources[sv.ContainerID]
		if s == nil {
			s = t.addSource(sv.ContainerID)
		}
		t.seq++
		f := &file{
			src: s, seq: t.seq, path: sv.Path, rank: maxRank, gone: true,
			dev: sv.Dev, ino: sv.Ino, size: sv.Size, fp: fp,
			readOff: sv.Offset, commit: sv.Offset,
			lastSeen: time.Unix(sv.LastSeen, 0), saved: sv, pubFP: fp,
		}
		if sv.Read > sv.Offset {
			f.skipHi = sv.Read
			if sv.Streams != nil {
				f.skip = *sv.Streams
			}
		}
		s.files = append(s.files, f)
	}
	t.reorder()
}

// loadState reads the offsets file. existed is false if there is none.
func loadState(path string) (st stateFile, existed bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, true, fmt.Errorf("read offsets: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return stateFile{}, true, fmt.Errorf("%w %s: %v", errCorruptState, path, err)
	}
	if st.Version != stateVersion {
		return stateFile{}, true, fmt.Errorf("%w %s: unsupported version %d", errCorruptState, path, st.Version)
	}
	return st, true, nil
}

// writeState replaces the offsets file atomically: write a temp file,
// fsync it, rename it over the old one, fsync the directory.
func writeState(path string, st stateFile) error {
	st.Version = stateVersion
	data, err := json.Marshal(st)
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

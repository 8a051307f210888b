package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// syncFile is every fsync the queue does (segments, the ack file, the
// directory). Crash tests replace it to learn what a power cut would keep.
var syncFile = (*os.File).Sync

// persistAckLocked writes ackPos to the ack file (fsynced by the next
// sync). A failure only means more duplicates after a crash, so it is
// logged, once, not returned.
func (q *Queue) persistAckLocked() {
	if err := q.ack.write(q.ackPos); err != nil {
		if !q.ackErrLogged {
			q.log.Error("buffer: persist ack position", "err", err)
			q.ackErrLogged = true
		}
		return
	}
	q.ackDirty = true
	q.epoch++
}

// Sync fsyncs everything appended and acked so far (group commit: callers
// arriving during an fsync share the next one).
func (q *Queue) Sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	return q.syncLocked()
}

// Mark returns a durability mark covering every Append that returned
// before the call: SyncTo(mark) returns once all of them are on disk.
// Marks only grow.
func (q *Queue) Mark() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dataEpoch
}

// SyncTo returns once every Append up to mark (from Mark) is durable:
// the segments and the directory entries they live in, not the ack
// position. If an fsync already covered it, it returns at once; otherwise
// it joins the running fsync round or starts one (group commit: every
// caller waiting meanwhile shares the next round), without waiting for the
// interval timer. After Close it returns nil for marks Close's final fsync
// covered.
func (q *Queue) SyncTo(mark uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.syncedData >= mark {
		return nil
	}
	if q.closed && q.final {
		if q.err != nil {
			return q.err
		}
		return ErrClosed
	}
	return q.syncToLocked(mark, true)
}

// syncLocked makes every change up to the current epoch durable.
func (q *Queue) syncLocked() error { return q.syncToLocked(q.epoch, false) }

// syncToLocked makes every change up to target durable: target is an
// epoch, or with dataOnly a dataEpoch (then the ack file is left for a
// later round). It releases mu during the fsyncs; while one goroutine
// fsyncs (syncing), others wait for it and then start the next round,
// which covers all of them.
func (q *Queue) syncToLocked(target uint64, dataOnly bool) error {
	for (!dataOnly && q.syncedEpoch < target) || (dataOnly && q.syncedData < target) {
		switch {
		case q.err != nil:
			return q.err
		case q.final:
			return ErrClosed
		case q.syncing || q.closed:
			// Close fsyncs everything before it sets final.
			q.syncCond.Wait()
			continue
		}
		q.syncing = true
		q.syncRounds++
		t, td := q.epoch, q.dataEpoch
		files := q.unsynced
		q.unsynced = q.spare[:0]
		var wf *os.File
		if q.segDirty {
			wf = q.wf
		}
		ack, dir := q.ackDirty && !dataOnly, q.dirDirty
		full := !q.ackDirty || ack // this round covers every change up to t
		q.segDirty, q.dirDirty = false, false
		if ack {
			q.ackDirty = false
		}
		q.mu.Unlock()
		// Only the syncer closes the files in files; Close waits for it.
		err := q.fsync(files, wf, ack, dir)
		q.mu.Lock()
		clear(files)
		q.spare = files[:0]
		q.syncing = false
		if err != nil {
			q.err = fmt.Errorf("buffer: %w", err)
			q.log.Error("buffer: fsync failed; queue stops accepting chunks", "err", err)
		} else {
			q.syncedData = td
			if full {
				q.syncedEpoch = t
			}
		}
		q.syncCond.Broadcast()
	}
	return nil
}

// fsync syncs (and closes) the rotated files, then the active segment, the
// ack file and the directory as asked.
func (q *Queue) fsync(files []*os.File, wf *os.File, ack, dir bool) error {
	var errs []error
	for _, f := range files {
		if err := syncFile(f); err != nil {
			errs = append(errs, fmt.Errorf("fsync %s: %w", filepath.Base(f.Name()), err))
		}
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", filepath.Base(f.Name()), err))
		}
	}
	if wf != nil {
		if err := syncFile(wf); err != nil {
			errs = append(errs, fmt.Errorf("fsync %s: %w", filepath.Base(wf.Name()), err))
		}
	}
	if ack {
		if err := syncFile(q.ack.f); err != nil {
			errs = append(errs, fmt.Errorf("fsync ack file: %w", err))
		}
	}
	if dir {
		if err := syncFile(q.dirf); err != nil {
			errs = append(errs, fmt.Errorf("fsync dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run fsyncs every FsyncInterval when something changed. When ctx is done
// it does a final fsync and returns its error; it returns nil at once if
// the queue is closed. Fsync failures in the loop are logged and returned
// by later Appends and Syncs.
func (q *Queue) Run(ctx context.Context) error {
	t := time.NewTicker(q.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-q.done:
			return nil
		case <-ctx.Done():
			if err := q.Sync(); err != nil && !errors.Is(err, ErrClosed) {
				return err
			}
			return nil
		case <-t.C:
			q.mu.Lock()
			if !q.closed {
				_ = q.syncLocked() // logged by syncLocked; sticky for Append
			}
			q.mu.Unlock()
		}
	}
}

// Close fsyncs everything and closes the files. Appends and reads after
// Close return ErrClosed; waiting Next, Append and WaitEmpty calls return
// it too. Close is idempotent.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	close(q.done)
	close(q.dataCh)
	close(q.ackCh)
	q.dataWait, q.ackWait = false, false
	for q.syncing {
		q.syncCond.Wait()
	}
	var errs []error
	if q.err == nil {
		if err := q.fsync(q.unsynced, q.wf, true, true); err != nil {
			q.err = fmt.Errorf("buffer: %w", err)
			errs = append(errs, q.err)
		} else {
			q.syncedEpoch, q.syncedData = q.epoch, q.dataEpoch
		}
	} else {
		for _, f := range q.unsynced {
			f.Close()
		}
	}
	q.unsynced = nil
	q.final = true
	q.syncCond.Broadcast()
	if err := q.closeFiles(); err != nil {
		errs = append(errs, fmt.Errorf("buffer: close: %w", err))
	}
	return errors.Join(errs...)
}

// closeFiles closes the long-lived handles.
func (q *Queue) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{q.wf, q.rf, q.dirf} {
		if f != nil {
			if err := f.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if q.ack != nil {
		if err := q.ack.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	q.wf, q.rf, q.dirf = nil, nil, nil
	return errors.Join(errs...)
}

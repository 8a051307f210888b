package tail

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxDrain bounds the events handled between two rounds, so that a flood
// of write events cannot keep the reader from reading.
const maxDrain = 1024

// eventBuffer is the capacity of fsnotify's event channel.
const eventBuffer = 4096

// watcher is the inotify side of discovery, owned by the reader goroutine
// (fsnotify's own goroutine only sends on fsn.Events and fsn.Errors).
// Every directory from the root down to the source directories is watched,
// so creates, renames and removals of log files and of source directories,
// and writes to log files, wake the reader at once. Polling stays the
// fallback: when inotify is unavailable or adding a watch fails (the
// user's watch limit ran out), that is logged once and the directories
// concerned are polled.
type watcher struct {
	fsn *fsnotify.Watcher // nil: polling only
	log *slog.Logger
	// dirs holds the directories with a watch. An entry goes when an event
	// says the directory was removed or renamed; all go after an overflow.
	dirs map[string]bool
	// degraded: some directory has no watch since the last full scan
	// began (or there is no watcher at all).
	degraded bool
	warned   bool
	// failAdd, if set, is asked before each new watch (tests: a watch
	// limit); its error is taken as fsnotify's.
	failAdd func(dir string) error
}

// start creates the inotify instance; on failure the input polls.
func (w *watcher) start(log *slog.Logger) {
	w.log = log
	fsn, err := fsnotify.NewBufferedWatcher(eventBuffer)
	if err != nil {
		w.warnOnce("inotify unavailable; polling for new files and writes", err)
		w.degraded = true
		return
	}
	w.fsn = fsn
	w.dirs = make(map[string]bool)
}

func (w *watcher) close() {
	if w.fsn != nil {
		_ = w.fsn.Close()
		w.fsn = nil
	}
}

// add watches dir, unless it already is. It reports whether dir is
// watched.
func (w *watcher) add(dir string) bool {
	if w.fsn == nil {
		return false
	}
	if w.dirs[dir] {
		return true
	}
	var err error
	if w.failAdd != nil {
		err = w.failAdd(dir)
	}
	if err == nil {
		err = w.fsn.Add(dir)
	}
	if err == nil {
		w.dirs[dir] = true
		return true
	}
	if !errors.Is(err, fs.ErrNotExist) {
		w.degraded = true
		w.warnOnce("cannot watch directory (inotify watch limit?); polling it", err, "dir", dir)
	}
	return false
}

// forgetTree forgets the watches of dir and of the directories in it.
func (w *watcher) forgetTree(dir string) {
	for d := range w.dirs {
		if under(d, dir) {
			delete(w.dirs, d)
		}
	}
}

func (w *watcher) warnOnce(msg string, err error, args ...any) {
	if w.warned {
		return
	}
	w.warned = true
	w.log.Warn(msg, append([]any{"err", err}, args...)...)
}

// events and errors return fsnotify's channels, nil (never ready in a
// select) without a watcher.
func (w *watcher) events() chan fsnotify.Event {
	if w.fsn == nil {
		return nil
	}
	return w.fsn.Events
}

func (w *watcher) errors() chan error {
	if w.fsn == nil {
		return nil
	}
	return w.fsn.Errors
}

// drainEvents handles the events already queued, at most maxDrain.
func (t *Tail) drainEvents() {
	evs, errs := t.watch.events(), t.watch.errors()
	if evs == nil {
		return
	}
	for range maxDrain {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.watchClosed()
				return
			}
			t.handleEvent(ev)
		case err, ok := <-errs:
			if !ok {
				t.watchClosed()
				return
			}
			t.handleWatchError(err)
		default:
			return
		}
	}
}

// handleEvent turns one inotify event into work: a write to a log file
// makes its source dirty; a file or directory created, renamed or removed
// asks for a scan of the directory concerned.
func (t *Tail) handleEvent(ev fsnotify.Event) {
	rel, ok := strings.CutPrefix(ev.Name, t.rootSlash)
	if !ok {
		if ev.Name == t.root && ev.Has(fsnotify.Remove|fsnotify.Rename) {
			clear(t.watch.dirs)
			t.fullScan = true
		}
		return
	}
	structural := ev.Has(fsnotify.Create | fsnotify.Remove | fsnotify.Rename)
	switch d := depthOf(rel); {
	case d <= t.depth: // a directory down to the source level
		if ev.Has(fsnotify.Remove|fsnotify.Rename) && d < t.depth {
			t.watch.forgetTree(ev.Name)
		} else if ev.Has(fsnotify.Remove | fsnotify.Rename) {
			delete(t.watch.dirs, ev.Name) // inotify dropped its watch
		}
		if structural {
			t.scanSoon(rel)
		}
	case d == t.depth+1: // an entry of a source directory
		key := rel[:strings.LastIndexByte(rel, filepath.Separator)]
		if structural {
			t.scanSoon(key)
		} else if ev.Has(fsnotify.Write) {
			t.written(key, ev.Name)
		}
	}
}

// written handles a write to path in the directory of source key. The
// file may not be tracked yet (it was empty when it was created): then a
// scan is needed, if it is a log file at all.
func (t *Tail) written(key, path string) {
	s := t.sources[key]
	if s != nil && s.tracks(path) {
		s.dirty, s.wrote = true, true
		return
	}
	t.names = append(t.names[:0], path[strings.LastIndexByte(path, filepath.Separator)+1:])
	if t.logs = t.layout.Logs(t.logs[:0], t.names); len(t.logs) > 0 {
		t.scanSoon(key)
	}
}

// handleWatchError reacts to an inotify error: after an overflow events
// were lost, so everything is scanned again.
func (t *Tail) handleWatchError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		clear(t.watch.dirs) // a removal may be among the lost events
		t.fullScan = true
		return
	}
	if ok, n := t.warnRead.allow(time.Now()); ok {
		t.log.Warn("inotify error", "err", err, "suppressed", n)
	}
}

// watchClosed falls back to polling if fsnotify stopped on its own.
func (t *Tail) watchClosed() {
	t.watch.close()
	t.watch.degraded = true
	t.fullScan = true
}

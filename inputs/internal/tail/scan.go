package tail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// candidate is a log file found by a scan.
type candidate struct {
	path     string
	open     string // path with its symlinks resolved: what is opened
	live     bool
	rank     int
	dev, ino uint64
	size     int64
	mod      time.Time
	f        *file
}

// scan is the full scan: every directory from the root down to the source
// directories is watched and listed, every source found is matched with
// its tracked files, and the files of sources no longer found are handled
// as gone. It runs on the reader goroutine, every PollInterval (less often
// while every directory is watched) and after an inotify overflow.
func (t *Tail) scan(now time.Time) {
	t.fullScan = false
	t.watch.degraded = t.watch.fsn == nil
	t.refuseGen++
	t.resolveRoots()
	t.scanTree("", now)
	t.pruneRefused()
	if t.watch.fsn != nil && !t.watch.dirs[t.root] {
		t.watch.degraded = true // no root yet: only scans will find it
	}
	t.fdGauges()
	if !t.scanned && t.startAtEnd {
		t.journalAll() // a crash before the first checkpoint must not start them at a later end
	}
	t.scanned = true
	t.scanDone.Store(true)
}

// scanPending runs the scans that events and turns asked for.
func (t *Tail) scanPending(now time.Time) {
	t.rescan = false
	for rel := range t.pending {
		delete(t.pending, rel)
		if !t.realDirs(rel) {
			continue // a symlinked directory: never descended into
		}
		if depthOf(rel) == t.depth {
			t.scanSource(rel, now)
		} else {
			t.scanTree(rel, now)
		}
	}
	t.reorder()
}

// scanSoon asks for a scan of rel (a source key or a directory above the
// source level) before the next turn.
func (t *Tail) scanSoon(rel string) {
	t.pending[rel] = struct{}{}
	t.rescan = true
}

// scanTree scans the directory prefix ("" for the root) and everything in
// it down to the source directories. Known sources under prefix that were
// not found have their files handled as gone, except below a directory
// that exists but cannot be listed: those are kept as they are.
func (t *Tail) scanTree(prefix string, now time.Time) {
	clear(t.seen)
	t.walk(prefix, depthOf(prefix), now)
	for key, s := range t.sources {
		if !t.seen[s] && under(key, prefix) {
			t.match(s, nil, now)
			t.dropIfEmpty(s)
		}
	}
	t.reorder()
}

// walk lists rel, at depth levels below the root, recursing down to the
// source directories. Each directory is watched before it is listed, so
// that nothing created after the listing goes unnoticed.
func (t *Tail) walk(rel string, depth int, now time.Time) {
	if depth == t.depth {
		t.scanSource(rel, now)
		return
	}
	dir := t.abs(rel)
	t.watch.add(dir)
	ents, err := t.readDir(dir)
	if err != nil {
		if depth > 0 && errors.Is(err, fs.ErrNotExist) {
			return // removed: the sources in it are gone
		}
		t.keep(rel)
		if ok, n := t.warnRead.allow(now); ok {
			t.log.Warn("cannot list log directory; retrying", "dir", dir, "err", err, "suppressed", n)
		}
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			t.walk(join(rel, e.Name()), depth+1, now)
		} else if e.Type()&fs.ModeSymlink != 0 {
			t.checkDirLink(filepath.Join(dir, e.Name()))
		}
	}
}

// keep marks every source under rel as seen.
func (t *Tail) keep(rel string) {
	for key, s := range t.sources {
		if under(key, rel) {
			t.seen[s] = true
		}
	}
}

// scanSource lists one source directory and matches its log files with
// the source's tracked files. A source is created when its directory
// first holds a log file and dropped once it tracks none.
func (t *Tail) scanSource(key string, now time.Time) {
	if !t.wants(key) {
		return
	}
	dir := t.abs(key)
	watched := t.watch.add(dir)
	var err error
	t.cands, err = t.listLogs(t.cands[:0], dir)
	s := t.sources[key]
	if err != nil && (tooManyFiles(err) || errors.Is(err, fs.ErrPermission)) {
		// Not listed (out of descriptors, permissions): keep the source as
		// it is rather than take its files for gone.
		if s != nil {
			t.seen[s] = true
		}
		if tooManyFiles(err) {
			t.starve(key)
		} else if ok, n := t.warnRead.allow(now); ok {
			t.log.Warn("cannot list log directory; retrying", "dir", dir, "err", err, "suppressed", n)
		}
		return
	}
	if s == nil {
		if len(t.cands) == 0 {
			return
		}
		s = t.addSource(key)
	}
	t.seen[s] = true
	s.watched = watched
	if err := s.meta.Refresh(); err != nil {
		t.log.Warn("source metadata unavailable", "source", key, "err", err)
	}
	t.match(s, t.cands, now)
	t.dropIfEmpty(s)
}

// wants reports whether the Layout reads the source key (SourceFilter).
func (t *Tail) wants(key string) bool {
	return t.filter == nil || t.filter.Wants(key)
}

// listLogs appends the log files in dir, as the layout picks and ranks
// them. An error means dir could not be listed.
//
// The listing and the stats are not one atomic view: a rotation that
// renames a file between them would drop both its names (the old one no
// longer exists, the new one was not listed), and the file would be
// taken for deleted. So when a listed name has vanished, dir is listed
// again (up to listTries times) until a listing holds still.
func (t *Tail) listLogs(dst []candidate, dir string) ([]candidate, error) {
	base := len(dst)
	for try := 1; ; try++ {
		ents, err := t.readDir(dir)
		if err != nil {
			return dst, err
		}
		t.names = t.names[:0]
		for _, e := range ents {
			t.names = append(t.names, e.Name())
		}
		t.logs = t.layout.Logs(t.logs[:0], t.names)
		dst = dst[:base]
		raced := false
		for _, lg := range t.logs {
			path := filepath.Join(dir, lg.Name)
			open, fi, ok, vanished := t.checkLog(path)
			if !ok {
				raced = raced || vanished
				continue
			}
			dev, ino := fileID(fi)
			dst = append(dst, candidate{
				path: path, open: open, live: lg.Rank == 0, rank: lg.Rank, dev: dev, ino: ino,
				size: fi.Size(), mod: fi.ModTime(),
			})
		}
		if !raced || try == listTries {
			return dst, nil
		}
	}
}

// listTries bounds the listings of one directory per scan when names
// vanish under it (see listLogs).
const listTries = 4

// readDir lists dir. Out of descriptors, it parks an idle log file and
// tries once more.
func (t *Tail) readDir(dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && tooManyFiles(err) && t.parkIdle() {
		ents, err = os.ReadDir(dir)
	}
	return ents, err
}

// addSource creates the source of key.
func (t *Tail) addSource(key string) *source {
	dir := t.abs(key)
	s := &source{key: key, dir: dir, meta: t.layout.Source(key, dir), dataRank: maxRank}
	_, s.held = s.meta.(Holder)
	t.mu.Lock()
	t.sources[key] = s
	t.mu.Unlock()
	t.orderStale = true
	return s
}

// dropIfEmpty forgets a source that tracks no file.
func (t *Tail) dropIfEmpty(s *source) {
	if len(s.files) > 0 || t.sources[s.key] != s {
		return
	}
	t.mu.Lock()
	delete(t.sources, s.key)
	t.mu.Unlock()
	t.orderStale = true
}

// reorder rebuilds the round-robin order (by key) after sources came or
// went.
func (t *Tail) reorder() {
	if !t.orderStale {
		return
	}
	t.orderStale = false
	t.order = t.order[:0]
	for _, s := range t.sources {
		t.order = append(t.order, s)
	}
	slices.SortFunc(t.order, func(a, b *source) int { return strings.Compare(a.key, b.key) })
}

func (t *Tail) abs(rel string) string {
	if rel == "" {
		return t.root
	}
	return t.rootSlash + rel
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + string(filepath.Separator) + name
}

// depthOf is the number of path elements of rel.
func depthOf(rel string) int {
	if rel == "" {
		return 0
	}
	return strings.Count(rel, string(filepath.Separator)) + 1
}

// under reports whether key is prefix or inside it.
func under(key, prefix string) bool {
	return prefix == "" || key == prefix ||
		(strings.HasPrefix(key, prefix) && key[len(prefix)] == filepath.Separator)
}

package tail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Reasons a log path is refused: the metrics label reason="…".
const (
	reasonOutside    = "symlink_outside_root"
	reasonNotRegular = "not_regular"
)

var (
	// errNotRegular: what was opened is not a regular file.
	errNotRegular = errors.New("not a regular file")
	// errChanged: what was opened is not the file the scan checked (it was
	// replaced in between); the next scan checks it again.
	errChanged = errors.New("file changed between check and open")
)

// resolveRoots resolves the allowed roots' own symlinks, so that targets
// can be compared with them. A root that does not resolve (not there yet)
// is kept as it is.
func (t *Tail) resolveRoots() {
	t.resolved = t.resolved[:0]
	for _, r := range t.allowed {
		if p, err := filepath.EvalSymlinks(r); err == nil {
			r = p
		}
		if a, err := filepath.Abs(r); err == nil {
			r = a
		}
		t.resolved = append(t.resolved, r)
	}
}

// underRoots reports whether the resolved path p lies under an allowed
// root.
func (t *Tail) underRoots(p string) bool {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	for _, r := range t.resolved {
		if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, string(filepath.Separator))+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// checkLog checks a log file a scan found: a symlink is resolved and must
// lead under an allowed root, and the file must be regular. It returns
// the path to open (the resolved one) and its stat, or ok false (refused
// or gone; vanished when the name no longer exists, as after a rename
// that raced the listing).
func (t *Tail) checkLog(path string) (open string, fi os.FileInfo, ok bool, vanished bool) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", nil, false, errors.Is(err, fs.ErrNotExist)
	}
	open = path
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", nil, false, false // dangling, or a loop: nothing to read
		}
		if !t.underRoots(target) {
			t.refuse(path, reasonOutside, "target", target)
			return "", nil, false, false
		}
		if fi, err = os.Stat(target); err != nil {
			return "", nil, false, false
		}
		open = target
	}
	if !fi.Mode().IsRegular() {
		t.refuse(path, reasonNotRegular, "mode", fi.Mode().Type().String())
		return "", nil, false, false
	}
	return open, fi, true, false
}

// checkDirLink handles a symlink found where a directory of the tree
// would be. Symlinked directories are never descended into (no loops, no
// source seen twice); one whose target leaves the allowed roots is
// refused.
func (t *Tail) checkDirLink(path string) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return
	}
	if !t.underRoots(target) {
		t.refuse(path, reasonOutside, "target", target)
	}
}

// realDirs reports whether no directory from the root down to rel is a
// symlink (for scans asked for by events; the full scan only descends
// into real directories). A missing one counts as real: the scan then
// finds its sources gone.
func (t *Tail) realDirs(rel string) bool {
	for p := rel; p != ""; {
		fi, err := os.Lstat(t.abs(p))
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			t.checkDirLink(t.abs(p))
			return false
		}
		i := strings.LastIndexByte(p, filepath.Separator)
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return true
}

// refuse logs and counts a refused path, once per path and reason while
// full scans keep refusing it.
func (t *Tail) refuse(path, reason string, args ...any) {
	r, ok := t.refused[path]
	t.refused[path] = refusal{reason: reason, gen: t.refuseGen}
	if ok && r.reason == reason {
		return
	}
	switch reason {
	case reasonOutside:
		t.m.refusedOutside.Inc()
	default:
		t.m.refusedNotRegular.Inc()
	}
	t.log.Warn("refusing log path", append([]any{"path", path, "reason", reason}, args...)...)
}

// refusal is a refused path's entry: its reason and the full scan that
// last refused it.
type refusal struct {
	reason string
	gen    uint64
}

// pruneRefused forgets the paths the full scan just made did not refuse
// (gone or fixed): refused again later, they are logged and counted again.
func (t *Tail) pruneRefused() {
	for p, r := range t.refused {
		if r.gen != t.refuseGen {
			delete(t.refused, p)
		}
	}
}

package tail

import (
	"errors"
	"os"
	"slices"
	"time"
)

// forgetAfter is how long the entry of a file gone from disk is kept.
const forgetAfter = time.Hour

// match matches the candidates of s (its log files on disk now) with its
// tracked files, which is where rotations are recognised:
//
//  1. an open file by device and inode (the open fd pins the inode, so it
//     cannot have been reused), unless its content was replaced
//     (copytruncate: smaller than what was read, or a different head);
//  2. a closed rotated file, or a parked (idle-closed) live file, by
//     unchanged path, inode, size and mtime: it stays closed;
//  3. otherwise by fingerprint: the copy of a replaced file (continue from
//     its offset), a closed file (reopen at its offset), a copy of an open
//     file (ignored), or else a new file. A parked file that grew, was
//     renamed or copied is reopened here, like a saved one at start.
//
// A renamed file is then read to its end through its descriptor; a file
// no longer found is read to its end if open, else counted as lost if it
// was not read to its end. Step 3 opens files: if the open files cap
// defers one (fdcap.go), the source's newer candidates are left for a
// later scan (so that no file is read before an older one) and its
// unmatched closed and replaced files are kept as they are.
func (t *Tail) match(s *source, cands []candidate, now time.Time) {
	for _, f := range s.files {
		f.matched, f.truncated = false, false
	}
	t.matching = s
	defer func() { t.matching = nil }()
	s.dataRank = maxRank
	for i := range cands {
		if cands[i].size > 0 {
			s.dataRank = min(s.dataRank, cands[i].rank)
		}
	}
	t.matchOpen(s, cands)
	t.matchClosed(s, cands)
	// Oldest first, so that after a copytruncate the copy (.1), not the
	// truncated live file, claims the saved offset.
	slices.SortStableFunc(cands, func(a, b candidate) int { return b.rank - a.rank })
	deferred := false
	for i := range cands {
		if cands[i].f == nil && !t.matchByFingerprint(s, &cands[i]) {
			deferred = true
			t.starve(s.key)
			break
		}
	}
	if !deferred {
		t.dropReplaced(s) // else their copy may be among the candidates not looked at
	}
	t.adopt(s, cands, now)
	t.sweep(s, now, deferred)
}

// matchOpen is step 1: open files by device and inode.
func (t *Tail) matchOpen(s *source, cands []candidate) {
	for i := range cands {
		cd := &cands[i]
		for _, f := range s.files {
			if f.f == nil || f.matched || f.ino == 0 || f.ino != cd.ino || f.dev != cd.dev {
				continue
			}
			if t.replaced(f, cd) {
				f.truncated = true
			} else {
				cd.f, f.matched = f, true
			}
			break
		}
	}
}

// matchClosed is step 2: closed rotated files that did not change.
func (t *Tail) matchClosed(s *source, cands []candidate) {
	for i := range cands {
		cd := &cands[i]
		if cd.f != nil {
			continue
		}
		for _, f := range s.files {
			if f.f == nil && !f.matched && (!cd.live || f.parked) && f.ino != 0 && f.ino == cd.ino && f.dev == cd.dev &&
				f.path == cd.path && f.size == cd.size && !f.mod.IsZero() && f.mod.Equal(cd.mod) {
				cd.f, f.matched = f, true
				break
			}
		}
	}
}

// replaced reports whether the content behind open file f (same inode as
// cd) is no longer f's: shorter than what was read, or a different head.
// It grows f's fingerprint while the file is shorter than fpSize.
func (t *Tail) replaced(f *file, cd *candidate) bool {
	if cd.size < f.readOff {
		return true
	}
	if cd.size == f.size && cd.mod.Equal(f.mod) && f.fp.n == min(int(cd.size), fpSize) {
		return false
	}
	head, err := readHead(f.f, &t.head)
	if err != nil {
		return false
	}
	if !f.fp.matches(head) {
		return true
	}
	if len(head) > f.fp.n {
		t.mu.Lock()
		f.fp = newFingerprint(head)
		t.publishIdentity(f, time.Time{})
		t.mu.Unlock()
	}
	return false
}

// matchByFingerprint (step 3) opens cd, reads its head and attaches it to
// the best-matching file of s, or to a new file. It returns false if the
// open files cap deferred the open.
func (t *Tail) matchByFingerprint(s *source, cd *candidate) bool {
	fd, err := t.openFD(cd.open, cd.dev, cd.ino)
	if errors.Is(err, errNoFD) && t.dropTruncatedFD(s) {
		fd, err = t.openFD(cd.open, cd.dev, cd.ino)
	}
	if err != nil {
		if errors.Is(err, errNoFD) {
			return false
		}
		if errors.Is(err, errNotRegular) {
			t.refuse(cd.path, reasonNotRegular) // replaced since the scan's check
		}
		t.log.Debug("open", "path", cd.path, "err", err)
		return true
	}
	head, err := readHead(fd, &t.head)
	if err != nil || len(head) == 0 {
		// Empty files are tracked once they have data.
		t.closeFD(fd)
		return true
	}
	best, class := bestMatch(s, cd, head)
	switch class {
	case matchCopyOfOpen:
		t.closeFD(fd)
		return true
	case matchCopy:
		t.log.Info("file replaced by copytruncate; continuing in its copy", "path", best.path, "copy", cd.path, "offset", best.readOff)
		if best.f != nil {
			t.closeFD(best.f)
		}
		best.f, best.truncated = fd, false
	case matchClosedFile:
		t.reopen(best, fd, cd)
	default:
		best = t.newFile(s, fd, head, cd)
	}
	if len(head) > best.fp.n && class != matchNone {
		best.fp = newFingerprint(head)
	}
	cd.f, best.matched = best, true
	s.dirty = true
	return true
}

// dropTruncatedFD closes the descriptor of a file of s whose content was
// replaced (nothing more of it can be read through it: what was not read
// is in its copy, if there is one), so that at the cap the copy can be
// opened in its place. It reports whether it closed one.
func (t *Tail) dropTruncatedFD(s *source) bool {
	for _, f := range s.files {
		if f.truncated && !f.matched && f.f != nil {
			t.closeFD(f.f)
			f.f = nil
			f.size = max(f.size, f.readOff)
			return true
		}
	}
	return false
}

// Classes of a fingerprint match, best last.
const (
	matchNone       = iota // a new file
	matchCopyOfOpen        // a copy of a file already being read: ignored
	matchClosedFile        // a known closed file: reopened at its offset
	matchCopy              // the copy of a copytruncated file: read on in it
)

// bestMatch returns the tracked file of s whose fingerprint head matches
// best, and the class of the match.
func bestMatch(s *source, cd *candidate, head []byte) (*file, int) {
	var best *file
	bestClass := matchNone
	for _, f := range s.files {
		if !f.fp.matches(head) {
			continue
		}
		var class int
		switch {
		case f.truncated:
			if f.ino == cd.ino && f.dev == cd.dev && f.ino != 0 {
				continue // the replaced content itself, not a copy
			}
			class = matchCopy
		case f.f == nil && !f.matched:
			class = matchClosedFile
		default:
			class = matchCopyOfOpen
		}
		if class > bestClass || (class == bestClass && (f.fp.n > best.fp.n ||
			(f.fp.n == best.fp.n && f.readOff > best.readOff))) {
			best, bestClass = f, class
		}
	}
	return best, bestClass
}

// reopen resumes a known closed file at its offset, or from the start if
// it is now shorter than that.
func (t *Tail) reopen(f *file, fd *os.File, cd *candidate) {
	f.f = fd
	f.lastData = t.now
	t.unpark(f, true)
	t.fdGauges()
	t.log.Debug("resuming file", "path", cd.path, "offset", f.readOff)
	if cd.size < f.readOff {
		// The fingerprint matches but the file is shorter than the offset:
		// it was truncated while unobserved. Read it again.
		t.log.Warn("known file is shorter than its offset; reading from the start", "path", cd.path, "offset", f.readOff, "size", cd.size)
		f.readOff = 0
		t.resetCommitted(f, 0)
	}
}

// newFile starts tracking fd, from its start (or its end, for files found
// by the first scan with StartAtEnd and no offsets file).
func (t *Tail) newFile(s *source, fd *os.File, head []byte, cd *candidate) *file {
	start := int64(0)
	if t.startAtEnd && !t.scanned {
		start = cd.size
	}
	t.seq++
	f := &file{src: s, seq: t.seq, f: fd, fp: newFingerprint(head), readOff: start, commit: start, lastData: t.now}
	f.saved.Offset = start
	t.fdGauges()
	t.mu.Lock()
	s.files = append(s.files, f)
	t.mu.Unlock()
	t.log.Debug("tracking file", "path", cd.path, "offset", start)
	return f
}

// dropReplaced closes the files whose content was replaced and for which
// no copy was found: what was not read is gone.
func (t *Tail) dropReplaced(s *source) {
	for _, f := range s.files {
		if !f.truncated || f.matched {
			continue
		}
		if lost := f.size - f.readOff; lost > 0 {
			t.m.lost.Add(int(lost))
			t.log.Warn("file truncated before it was read; data lost", "path", f.path, "lost_bytes_estimate", lost)
		}
		t.m.rotations.Inc()
		f.long, f.lostCounted = nil, true
		t.closeFile(f)
		f.truncated, f.live, f.gone, f.rank = false, false, true, maxRank
	}
}

// adopt updates the matched files from their candidates (path, rank,
// liveness, stat) and publishes their identity. A source whose open files
// may have data to read is marked dirty.
func (t *Tail) adopt(s *source, cands []candidate, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range cands {
		cd := &cands[i]
		f := cd.f
		if f == nil {
			continue
		}
		if f.live && !cd.live && f.f != nil {
			t.m.rotations.Inc()
			t.log.Debug("file rotated", "from", f.path, "to", cd.path)
		}
		f.path, f.live, f.rank, f.gone = cd.path, cd.live, cd.rank, false
		f.dev, f.ino, f.size, f.mod = cd.dev, cd.ino, cd.size, cd.mod
		f.lastSeen, f.lostCounted = now, false
		t.publishIdentity(f, now)
		if f.f != nil && (!f.live || f.size != f.readOff) {
			s.dirty = true
		}
	}
}

// sweep handles the files no candidate matched: an open one is read to
// its end through its descriptor; a closed one that was not read to its
// end is counted as lost; entries gone for forgetAfter are dropped. After
// a deferred open (deferred), unmatched closed files are left as they
// are: they may be the candidates not looked at.
func (t *Tail) sweep(s *source, now time.Time, deferred bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := s.files[:0]
	for _, f := range s.files {
		if !f.matched {
			if f.f != nil {
				if !f.gone {
					if f.live {
						t.m.rotations.Inc()
					}
					f.gone, f.live, f.rank = true, false, maxRank
					s.dirty = true
					t.log.Debug("file removed; reading it to the end", "path", f.path)
				}
			} else if !deferred {
				t.unpark(f, false)
				f.gone = true
				t.countLost(f)
				if now.Sub(f.lastSeen) > forgetAfter && !f.holding() {
					t.gen++
					continue
				}
			}
		}
		kept = append(kept, f)
	}
	clear(s.files[len(kept):])
	s.files = kept
}

// countLost counts, once, what a closed file that disappeared had not
// been read of.
func (t *Tail) countLost(f *file) {
	if f.lostCounted || f.size <= f.readOff {
		return
	}
	f.lostCounted = true
	t.m.lost.Add(int(f.size - f.readOff))
	t.log.Warn("file deleted before it was read; data lost", "path", f.path,
		"offset", f.readOff, "lost_bytes_estimate", f.size-f.readOff)
}

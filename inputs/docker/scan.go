package docker

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// candidate is a log file found by a scan.
type candidate struct {
	path     string
	live     bool
	rank     int
	dev, ino uint64
	size     int64
	mod      time.Time
	f        *file
}

// logRank classifies a file name: <x>-json.log is live (rank 0),
// <x>-json.log.N is rotated (rank N); anything else (.gz included) is not a
// log file.
func logRank(name string) (rank int, ok bool) {
	const suffix = "-json.log"
	if strings.HasSuffix(name, suffix) {
		return 0, len(name) > len(suffix)
	}
	i := strings.LastIndex(name, suffix+".")
	if i <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(name[i+len(suffix)+1:])
	if err != nil || n <= 0 || strconv.Itoa(n) != name[i+len(suffix)+1:] {
		return 0, false
	}
	return n, true
}

// scan lists <root>/*/*-json.log[.N], matches what it finds with tracked
// files and updates their paths, liveness and ranks. It runs on the reader
// goroutine.
func (in *Input) scan(now time.Time) {
	dirs, err := os.ReadDir(in.root)
	if err != nil {
		if ok, n := in.warnRead.allow(now); ok {
			in.log.Warn("cannot list docker root; retrying", "root", in.root, "err", err, "suppressed", n)
		}
		return
	}
	seen := make(map[*container]bool, len(in.containers))
	changed := false
	var cands []candidate
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		id := d.Name()
		cands = in.listLogs(cands[:0], filepath.Join(in.root, id))
		c := in.containers[id]
		if c == nil {
			if len(cands) == 0 {
				continue
			}
			c = newContainer(in.root, id, in.labels)
			in.mu.Lock()
			in.containers[id] = c
			in.mu.Unlock()
			changed = true
		}
		seen[c] = true
		if err := c.refresh(in.labels); err != nil {
			in.log.Warn("container metadata unavailable; name is the short id", "container", id, "err", err)
		}
		in.scanContainer(c, cands, now)
	}
	for id, c := range in.containers {
		if !seen[c] {
			in.scanContainer(c, nil, now)
		}
		if len(c.files) == 0 {
			in.mu.Lock()
			delete(in.containers, id)
			in.mu.Unlock()
			changed = true
		}
	}
	if changed || len(in.order) != len(in.containers) {
		in.order = in.order[:0]
		for _, c := range in.containers {
			in.order = append(in.order, c)
		}
		slices.SortFunc(in.order, func(a, b *container) int { return strings.Compare(a.id, b.id) })
	}
	in.m.files.Set(float64(in.openFiles))
	in.scanned = true
}

// listLogs appends the log files in dir.
func (in *Input) listLogs(dst []candidate, dir string) []candidate {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return dst
	}
	for _, e := range ents {
		rank, ok := logRank(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		dev, ino := fileID(fi)
		dst = append(dst, candidate{
			path: path, live: rank == 0, rank: rank, dev: dev, ino: ino,
			size: fi.Size(), mod: fi.ModTime(),
		})
	}
	return dst
}

// scanContainer matches the candidates of c with its tracked files:
//
//  1. an open file by device and inode (the open fd pins the inode, so it
//     cannot have been reused), unless its content was replaced
//     (copytruncate: smaller than what was read, or a different head);
//  2. a closed rotated file by unchanged path, inode, size and mtime;
//  3. otherwise by fingerprint: the copy of a replaced file (continue from
//     its offset), a closed file (reopen at its offset), a copy of an open
//     file (ignored), or else a new file.
func (in *Input) scanContainer(c *container, cands []candidate, now time.Time) {
	for _, f := range c.files {
		f.matched, f.truncated = false, false
	}
	for i := range cands {
		cd := &cands[i]
		for _, f := range c.files {
			if f.f == nil || f.matched || f.ino == 0 || f.ino != cd.ino || f.dev != cd.dev {
				continue
			}
			if in.replaced(f, cd) {
				f.truncated = true
			} else {
				cd.f, f.matched = f, true
			}
			break
		}
	}
	for i := range cands {
		cd := &cands[i]
		if cd.f != nil || cd.live {
			continue
		}
		for _, f := range c.files {
			if f.f == nil && !f.matched && f.ino != 0 && f.ino == cd.ino && f.dev == cd.dev &&
				f.path == cd.path && f.size == cd.size && !f.mod.IsZero() && f.mod.Equal(cd.mod) {
				cd.f, f.matched = f, true
				break
			}
		}
	}
	// Oldest first, so that after a copytruncate the copy (.1), not the
	// truncated live file, claims the saved offset.
	slices.SortStableFunc(cands, func(a, b candidate) int { return b.rank - a.rank })
	for i := range cands {
		cd := &cands[i]
		if cd.f != nil {
			continue
		}
		in.matchByFingerprint(c, cd)
	}
	for _, f := range c.files {
		if !f.truncated || f.matched {
			continue
		}
		// Replaced with no copy found: what was not read is gone.
		if lost := f.size - f.readOff; lost > 0 {
			in.m.lost.Add(int(lost))
			in.log.Warn("file truncated before it was read; data lost", "path", f.path, "lost_bytes_estimate", lost)
		}
		in.m.rotations.Inc()
		f.inLong, f.lostCounted = false, true
		in.closeFile(f)
		f.truncated, f.live, f.gone, f.rank = false, false, true, maxRank
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for i := range cands {
		cd := &cands[i]
		f := cd.f
		if f == nil {
			continue
		}
		if f.live && !cd.live && f.f != nil {
			in.m.rotations.Inc()
			in.log.Debug("file rotated", "from", f.path, "to", cd.path)
		}
		f.path, f.live, f.rank, f.gone = cd.path, cd.live, cd.rank, false
		f.dev, f.ino, f.size, f.mod = cd.dev, cd.ino, cd.size, cd.mod
		f.lastSeen, f.lostCounted = now, false
		in.publish(f, now)
	}
	kept := c.files[:0]
	for _, f := range c.files {
		if !f.matched {
			if f.f != nil {
				if !f.gone {
					if f.live {
						in.m.rotations.Inc()
					}
					f.gone, f.live, f.rank = true, false, maxRank
					in.log.Debug("file removed; reading it to the end", "path", f.path)
				}
			} else {
				f.gone = true
				if !f.lostCounted && f.size > f.readOff {
					f.lostCounted = true
					in.m.lost.Add(int(f.size - f.readOff))
					in.log.Warn("file deleted before it was read; data lost", "path", f.path,
						"offset", f.readOff, "lost_bytes_estimate", f.size-f.readOff)
				}
				if now.Sub(f.lastSeen) > forgetAfter && !f.pendingPartials() {
					in.gen++
					continue
				}
			}
		}
		kept = append(kept, f)
	}
	clear(c.files[len(kept):])
	c.files = kept
}

// replaced reports whether the content behind open file f (same inode as
// cd) is no longer f's: shorter than what was read, or a different head.
// It grows f's fingerprint while the file is shorter than fpSize.
func (in *Input) replaced(f *file, cd *candidate) bool {
	if cd.size < f.readOff {
		return true
	}
	if cd.size == f.size && cd.mod.Equal(f.mod) && f.fp.n == min(int(cd.size), fpSize) {
		return false
	}
	head, err := readHead(f.f, &in.head)
	if err != nil {
		return false
	}
	if !f.fp.matches(head) {
		return true
	}
	if len(head) > f.fp.n {
		in.mu.Lock()
		f.fp = newFingerprint(head)
		in.publish(f, time.Time{})
		in.mu.Unlock()
	}
	return false
}

// matchByFingerprint opens cd, reads its head and attaches it to the
// best-matching file of c, or to a new file.
func (in *Input) matchByFingerprint(c *container, cd *candidate) {
	fd, err := os.Open(cd.path)
	if err != nil {
		in.log.Debug("open", "path", cd.path, "err", err)
		return
	}
	head, err := readHead(fd, &in.head)
	if err != nil || len(head) == 0 {
		// Empty files are tracked once they have data.
		_ = fd.Close()
		return
	}
	var best *file
	bestClass := 0
	for _, f := range c.files {
		if !f.fp.matches(head) {
			continue
		}
		var class int
		switch {
		case f.truncated:
			if f.ino == cd.ino && f.dev == cd.dev && f.ino != 0 {
				continue // the replaced content itself, not a copy
			}
			class = 3 // the copy of a copytruncated file
		case f.f == nil && !f.matched:
			class = 2 // a known closed file
		default:
			class = 1 // a copy of a file already being read
		}
		if class > bestClass || (class == bestClass && (f.fp.n > best.fp.n ||
			(f.fp.n == best.fp.n && f.readOff > best.readOff))) {
			best, bestClass = f, class
		}
	}
	switch bestClass {
	case 1:
		_ = fd.Close()
		return
	case 3:
		in.log.Info("file replaced by copytruncate; continuing in its copy", "path", best.path, "copy", cd.path, "offset", best.readOff)
		_ = best.f.Close()
		best.f, best.truncated = fd, false
	case 2:
		best.f = fd
		in.openFiles++
		in.log.Debug("resuming file", "path", cd.path, "offset", best.readOff)
		if cd.size < best.readOff {
			// The fingerprint matches but the file is shorter than the
			// offset: it was truncated while unobserved. Read it again.
			in.log.Warn("known file is shorter than its offset; reading from the start", "path", cd.path, "offset", best.readOff, "size", cd.size)
			best.readOff, best.commit = 0, 0
			in.mu.Lock()
			best.saved.Offset = 0
			in.mu.Unlock()
		}
	default:
		start := int64(0)
		if in.skipExisting && !in.scanned {
			start = cd.size
		}
		in.seq++
		best = &file{c: c, seq: in.seq, f: fd, fp: newFingerprint(head), readOff: start, commit: start}
		best.saved.Offset = start
		in.openFiles++
		in.mu.Lock()
		c.files = append(c.files, best)
		in.mu.Unlock()
		in.log.Debug("tracking file", "path", cd.path, "offset", start)
	}
	if len(head) > best.fp.n && bestClass != 0 {
		best.fp = newFingerprint(head)
	}
	cd.f, best.matched = best, true
}

// publish copies f's identity into its saved entry. The caller holds in.mu.
// The offset is published only by flush (after a successful Flush).
func (in *Input) publish(f *file, now time.Time) {
	old := f.saved
	s := &f.saved
	s.ContainerID, s.Path = f.c.id, f.path
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
		in.gen++
	}
}

package tail

import (
	"cmp"
	"os"
	"slices"
)

// maxStatusFiles caps Status.Laggiest.
const maxStatusFiles = 10

// Status is a file input's part of the agent's /status. The JSON field
// names are part of the documented /status shape (docs/operations.md).
type Status struct {
	// FirstScanDone: the first full scan of the root ran; from then on
	// every file present at start is tracked (the input is ready).
	FirstScanDone bool `json:"first_scan_done"`
	Sources       int  `json:"sources"`
	// FilesTracked counts every file entry: open, parked, and finished
	// files kept for fingerprint matching (until gone for an hour).
	FilesTracked   int `json:"files_tracked"`
	FilesOpen      int `json:"files_open"`
	FilesParked    int `json:"files_parked"` // closed while idle at the open files cap
	OpenFilesLimit int `json:"open_files_limit"`
	// LagBytes is the sum over tracked files of size minus committed
	// offset: bytes written to the logs and not yet handed to the queues.
	LagBytes int64 `json:"lag_bytes"`
	// Laggiest are the files with the most lag, at most 10, most first
	// (files without lag are left out).
	Laggiest []FileLag `json:"laggiest_files"`
}

// FileLag is one file's lag.
type FileLag struct {
	Path      string `json:"path"`      // last path it was seen at
	Source    string `json:"source"`    // its source's key (for Docker, the container id)
	Size      int64  `json:"size"`      // bytes
	Committed int64  `json:"committed"` // offset handed to the queues
	LagBytes  int64  `json:"lag_bytes"`
}

// Ready reports whether the first full scan ran.
func (t *Tail) Ready() bool { return t.scanDone.Load() }

// Status returns the input's files and their lag. Safe from any
// goroutine: it copies the files' published entries (file.saved) under
// t.mu, as the checkpoint goroutine does, and reads the descriptor gauges,
// which are atomic. The reader goroutine's own fields are not read.
//
// A file's size is taken now, with a stat of its last known path when
// that is still the same file (device and inode); otherwise (rotated away,
// deleted) it is the size the reader last published. So the lag of a
// file the reader cannot keep up with, or has stopped reading (queues
// refusing appends), grows as the file does, between scans too.
func (t *Tail) Status() Status {
	s := Status{
		FirstScanDone:  t.scanDone.Load(),
		FilesOpen:      int(t.m.open.Get()),
		OpenFilesLimit: int(t.m.openLimit.Get()),
	}
	s.FilesParked = max(int(t.m.files.Get())-s.FilesOpen, 0)
	var files []savedFile
	t.mu.Lock()
	s.Sources = len(t.sources)
	for _, src := range t.sources {
		for _, f := range src.files {
			files = append(files, f.saved)
		}
	}
	t.mu.Unlock()
	s.FilesTracked = len(files)
	var lags []FileLag
	for _, f := range files {
		size := f.Size
		if fi, err := os.Stat(f.Path); err == nil && sameFile(fi, f.Dev, f.Ino) {
			size = fi.Size()
		}
		lag := max(size-f.Offset, 0)
		s.LagBytes += lag
		if lag > 0 {
			lags = append(lags, FileLag{Path: f.Path, Source: f.ContainerID, Size: size, Committed: f.Offset, LagBytes: lag})
		}
	}
	slices.SortFunc(lags, func(a, b FileLag) int {
		return cmp.Or(cmp.Compare(b.LagBytes, a.LagBytes), cmp.Compare(a.Path, b.Path))
	})
	s.Laggiest = lags[:min(len(lags), maxStatusFiles)]
	if s.Laggiest == nil {
		s.Laggiest = []FileLag{}
	}
	return s
}

// sameFile reports whether fi is the file of device dev and inode ino
// (never where the platform has no inodes).
func sameFile(fi os.FileInfo, dev, ino uint64) bool {
	d, i := fileID(fi)
	return i != 0 && d == dev && i == ino
}

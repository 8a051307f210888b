//go:build unix

package tail

import (
	"os"
	"syscall"
)

// fileID returns the device and inode of fi, hints only (see the package
// doc).
func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // int32 on some platforms
	}
	return 0, 0
}

// linked reports whether the file behind fd still has a name somewhere
// (a rename out of the listed names, as opposed to a delete). On error it
// reports false: the file is then treated as deleted.
func linked(fd *os.File) bool {
	fi, err := fd.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 0
}

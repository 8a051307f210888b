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

//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package tail

import (
	"os"
	"syscall"
)

// openRegular opens path, which a scan checked and found to be the
// regular file dev/ino (0/0: unchecked), for reading. The last element is
// not followed if it is a symlink (swapped in since the check), a FIFO
// opens without blocking (O_NONBLOCK), and the descriptor is refused
// unless it is a regular file and, given dev/ino, that same file.
func openRegular(path string, dev, ino uint64) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		_ = syscall.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		_ = syscall.Close(fd)
		return nil, errNotRegular
	}
	if (dev != 0 || ino != 0) && (uint64(st.Dev) != dev || uint64(st.Ino) != ino) { //nolint:unconvert // int32 on some platforms
		_ = syscall.Close(fd)
		return nil, errChanged
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		_ = syscall.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

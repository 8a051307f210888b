//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package tail

import "os"

// openRegular opens path for reading and refuses it unless it is a
// regular file. This platform offers no O_NOFOLLOW and no inode check.
func openRegular(path string, _, _ uint64) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = errNotRegular
		}
		return nil, err
	}
	return f, nil
}

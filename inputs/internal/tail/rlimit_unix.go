//go:build unix

package tail

import (
	"errors"
	"syscall"
)

// softNOFILE returns the soft RLIMIT_NOFILE of the process (Go raises it
// to the hard limit at start-up, so this is usually the hard limit).
func softNOFILE() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return uint64(rl.Cur), nil //nolint:unconvert // int64 on some platforms
}

// tooManyFiles reports whether err is EMFILE or ENFILE: the process or
// the system is out of file descriptors.
func tooManyFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

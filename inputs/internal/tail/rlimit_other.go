//go:build !unix

package tail

// softNOFILE has no RLIMIT_NOFILE to read on this platform: a fixed
// budget stands for it.
func softNOFILE() (uint64, error) { return 8192, nil }

// tooManyFiles cannot tell descriptor exhaustion on this platform.
func tooManyFiles(error) bool { return false }

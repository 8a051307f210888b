//go:build !unix

package tail

import "os"

// fileID has no device and inode to offer on this platform; files are then
// matched by fingerprint alone.
func fileID(os.FileInfo) (dev, ino uint64) { return 0, 0 }

// linked cannot tell a renamed file from a deleted one on this platform:
// a file no longer listed is taken for deleted.
func linked(*os.File) bool { return false }

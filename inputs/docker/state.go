package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateName is the offsets file in <data_dir>/inputs/<id>/.
const stateName = "offsets.json"

const stateVersion = 1

// stateFile is the on-disk offsets file, JSON:
//
//	{"version":1,"files":[{"container_id":"…","path":"…","fingerprint":"<sha256 hex>",
//	  "fingerprint_len":1024,"offset":12345,"size":20000,"dev":2049,"ino":1234,
//	  "last_seen":1700000000}]}
type stateFile struct {
	Version int         `json:"version"`
	Files   []savedFile `json:"files"`
}

// savedFile is the committed state of one tracked file.
type savedFile struct {
	ContainerID string `json:"container_id"`
	// Path is the last path the file was seen at (a hint).
	Path string `json:"path"`
	// Fingerprint is the hex SHA-256 of the file's first FingerprintLen
	// bytes: the file's identity.
	Fingerprint    string `json:"fingerprint"`
	FingerprintLen int    `json:"fingerprint_len"`
	// Offset is the handed-off offset: every line before it is in the
	// queues (and was fsynced by Router.Sync before this file was written).
	Offset int64 `json:"offset"`
	// Size is the last known size, for the loss estimate of a file that
	// disappears before it was read.
	Size int64 `json:"size"`
	// Dev and Ino are hints only.
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// LastSeen is when the file was last found on disk (Unix seconds).
	LastSeen int64 `json:"last_seen"`
}

// errCorruptState marks a state file that exists but cannot be used.
var errCorruptState = errors.New("corrupt offsets file")

// loadState reads the offsets file. existed is false if there is none.
func loadState(path string) (files []savedFile, existed bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("read offsets: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, true, fmt.Errorf("%w %s: %v", errCorruptState, path, err)
	}
	if st.Version != stateVersion {
		return nil, true, fmt.Errorf("%w %s: unsupported version %d", errCorruptState, path, st.Version)
	}
	return st.Files, true, nil
}

// writeState replaces the offsets file atomically: write a temp file,
// fsync it, rename it over the old one, fsync the directory.
func writeState(path string, files []savedFile) error {
	data, err := json.Marshal(stateFile{Version: stateVersion, Files: files})
	if err != nil {
		return fmt.Errorf("encode offsets: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create offsets: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write offsets: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename offsets: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("sync offsets dir: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package tail

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// fpSize is how many leading bytes identify a file.
const fpSize = 1024

// fingerprint identifies a file by its first n bytes (n ≤ fpSize). Only a
// SHA-256 of them is kept, so that state stays small with many files. A
// file shorter than fpSize has a fingerprint of its current length, which
// grows with the file; a fingerprint matches any file that starts with the
// same n bytes.
type fingerprint struct {
	n   int
	sum [sha256.Size]byte
}

func newFingerprint(head []byte) fingerprint {
	head = head[:min(len(head), fpSize)]
	return fingerprint{n: len(head), sum: sha256.Sum256(head)}
}

// matches reports whether a file whose first bytes are head (up to fpSize)
// starts with the fingerprinted bytes.
func (fp fingerprint) matches(head []byte) bool {
	return fp.n > 0 && len(head) >= fp.n && sha256.Sum256(head[:fp.n]) == fp.sum
}

func (fp fingerprint) String() string { return hex.EncodeToString(fp.sum[:]) }

func parseFingerprint(s string, n int) (fingerprint, error) {
	var fp fingerprint
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(fp.sum) || n <= 0 || n > fpSize {
		return fp, fmt.Errorf("invalid fingerprint %q/%d", s, n)
	}
	copy(fp.sum[:], b)
	fp.n = n
	return fp, nil
}

// readHead reads up to fpSize bytes at the start of f into buf.
func readHead(f *os.File, buf *[fpSize]byte) ([]byte, error) {
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:n], nil
}

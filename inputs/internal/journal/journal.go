// Package journal is a file input's fast position log: after every
// successful pipeline Flush the input appends one small record of the
// positions it just handed off, so that after a crash it resumes from what
// reached the buffer instead of from its last (periodic) checkpoint.
//
// # Invariants
//
//   - A record is appended only after the Flush whose positions it holds
//     returned nil: everything before those positions was written to the
//     OS in every queue it routes to. Records are written with one write(2)
//     each and never fsynced.
//   - A record is trusted only within the boot that wrote it. Every journal
//     file starts with the kernel's boot id (/proc/sys/kernel/random/boot_id).
//     If the process died (kill -9, OOM, panic) the page cache survived it,
//     so the queue data a record points past is there too: Replay returns
//     the records. After a reboot (power loss, kernel crash, or a clean
//     reboot) unsynced queue data may be gone: Replay returns nothing and
//     the input resumes from its checkpoint, which is written only after an
//     fsync of the queues. A boot id that cannot be read counts as a reboot.
//   - Records carry the input's publish generation. Rotate starts a new
//     file; a checkpoint that covers generation G rotates first and, once
//     written, removes the files before the rotation (Prune), so a file is
//     removed only when a durable checkpoint covers every record in it.
//     Replay skips records at or below the checkpoint's generation.
//   - A record is framed by its length and a CRC-32C; Replay stops at the
//     first torn or damaged record of a file (the tail of a crash) and goes
//     on with the next file. Damage never fails Open: at worst it means
//     duplicates, never loss.
//
// # Ownership
//
// A Journal is not safe for concurrent use: the input calls Append from
// its reader goroutine and Rotate from its checkpoint under the same lock
// that orders its publications; Prune needs no lock.
//
// # On disk
//
// Files journal.<seq> (%016d) in the input's state directory. Each starts
// with "SLJ\x01", a uint16 boot id length and the boot id; then records:
// uint32 payload length, uint32 CRC-32C of the generation and payload,
// uint64 generation, payload. Integers are little-endian.
package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	filePrefix = "journal."
	recHdrLen  = 16
	// MaxPayload bounds one record; a larger Append is refused (the input
	// then relies on its checkpoint for those positions).
	MaxPayload = 16 << 20
)

var (
	magic      = []byte{'S', 'L', 'J', 1}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// BootIDPath is where the kernel publishes the id of the current boot.
// Tests may point it elsewhere.
var BootIDPath = "/proc/sys/kernel/random/boot_id"

// Journal appends records to the newest journal file of a directory.
type Journal struct {
	dir  string
	boot string
	f    *os.File
	seq  uint64
	buf  []byte
}

// Record is one replayed record. Payload is a view into a buffer Replay
// owns; copy what outlives the callback.
type Record struct {
	Gen     uint64
	Payload []byte
}

// Open prepares the journal in dir (created if missing) for appending; it
// does not read old files (Replay does). A new file is started at once, so
// a torn tail of the previous run is never appended to.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: create dir: %w", err)
	}
	seqs, err := list(dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, boot: bootID()}
	if len(seqs) > 0 {
		j.seq = seqs[len(seqs)-1]
	}
	if err := j.Rotate(); err != nil {
		return nil, err
	}
	return j, nil
}

// Append writes one record of generation gen. After an error the record
// is missing (more re-reading after a crash, never loss) and a short write
// may hide the later records of this file from Replay, so callers log it
// and Rotate.
func (j *Journal) Append(gen uint64, payload []byte) error {
	if j.f == nil {
		return errors.New("journal: closed")
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("journal: record of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	b := binary.LittleEndian.AppendUint32(j.buf[:0], uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, 0) // CRC, below
	b = binary.LittleEndian.AppendUint64(b, gen)
	b = append(b, payload...)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	j.buf = b
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("journal: append: %w", err)
	}
	return nil
}

// Rotate closes the current file and starts the next one; Seq then names
// it, and Prune(dir, Seq()) later removes every file before it.
func (j *Journal) Rotate() error {
	seq := j.seq + 1
	f, err := os.OpenFile(j.path(seq), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: create: %w", err)
	}
	hdr := append(bytes.Clone(magic), 0, 0)
	binary.LittleEndian.PutUint16(hdr[4:], uint16(len(j.boot)))
	hdr = append(hdr, j.boot...)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		os.Remove(j.path(seq))
		return fmt.Errorf("journal: write header: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.seq = f, seq
	return nil
}

// Seq is the sequence of the file being appended to.
func (j *Journal) Seq() uint64 { return j.seq }

// Prune removes the journal files of dir before seq (a Seq taken right
// after the Rotate that a now durable checkpoint covers). It only touches
// older files, so it may run while the current one is appended to.
func Prune(dir string, seq uint64) error {
	seqs, err := list(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range seqs {
		if s < seq {
			if err := os.Remove(filepath.Join(dir, fmt.Sprintf("%s%016d", filePrefix, s))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("journal: remove: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close closes the current file. The files stay for the next Replay.
func (j *Journal) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func (j *Journal) path(seq uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%s%016d", filePrefix, seq))
}

// Replay calls fn, oldest first, for every intact record in dir written
// during the current boot with a generation above after. It reports how
// many files it skipped because another boot wrote them. Call it before
// Open, which starts a new file.
func Replay(dir string, after uint64, fn func(Record) error) (otherBoot int, err error) {
	seqs, err := list(dir)
	if err != nil {
		return 0, err
	}
	boot := bootID()
	for _, s := range seqs {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s%016d", filePrefix, s)))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return otherBoot, fmt.Errorf("journal: read: %w", err)
		}
		recs, ok := parseHeader(data, boot)
		if !ok {
			otherBoot++
			continue
		}
		for len(recs) >= recHdrLen {
			n := int(binary.LittleEndian.Uint32(recs))
			if n > MaxPayload || recHdrLen+n > len(recs) {
				break // torn tail
			}
			body := recs[8 : recHdrLen+n]
			if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(recs[4:]) {
				break
			}
			if gen := binary.LittleEndian.Uint64(body); gen > after {
				if err := fn(Record{Gen: gen, Payload: body[8:]}); err != nil {
					return otherBoot, err
				}
			}
			recs = recs[recHdrLen+n:]
		}
	}
	return otherBoot, nil
}

// parseHeader checks a file's header against the current boot and returns
// its records. A file of another boot, or with no readable header, is not
// trusted.
func parseHeader(data []byte, boot string) ([]byte, bool) {
	if boot == "" || len(data) < 6 || !bytes.Equal(data[:4], magic) {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint16(data[4:]))
	if 6+n > len(data) || string(data[6:6+n]) != boot {
		return nil, false
	}
	return data[6+n:], true
}

// list returns the sequences of the journal files in dir, ascending.
func list(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: list: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), filePrefix)
		if !ok {
			continue
		}
		if s, err := strconv.ParseUint(name, 10, 64); err == nil {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// bootID returns the current boot's id, or "" if it cannot be read (then
// no journal file is ever trusted).
func bootID() string {
	b, err := os.ReadFile(BootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

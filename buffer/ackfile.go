package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The ack file holds the acknowledged position in two fixed slots, written
// alternately in place (pwrite), so that a torn write can only damage the
// slot being written while the other still holds the previous position.
// Slots sit 4096 bytes apart so that they never share a disk sector or a
// page. Slot layout (little-endian):
//
//	0   magic    4 bytes "SLA\x01"
//	4   gen      uint64  incremented on every write; the highest valid slot wins
//	12  segment  uint64
//	20  offset   uint64
//	28  crc      uint32  CRC32-Castagnoli of bytes 0..28
const (
	ackFileName   = "ack"
	ackSlotLen    = 32
	ackSlotStride = 4096
)

var ackMagic = [4]byte{'S', 'L', 'A', 1}

// ackFile is the open ack file. It is guarded by Queue.mu.
type ackFile struct {
	f   *os.File
	gen uint64 // generation of the newest valid slot
	buf [ackSlotLen]byte
}

// ackState is what readAck found.
type ackState struct {
	pos     ID
	ok      bool    // a valid slot was found
	empty   bool    // the file has no data at all (new queue)
	invalid [2]bool // slot i holds bytes that fail verification
}

// read loads both slots and picks the newest valid one.
func (a *ackFile) read() (ackState, error) {
	var st ackState
	fi, err := a.f.Stat()
	if err != nil {
		return st, fmt.Errorf("stat ack file: %w", err)
	}
	st.empty = fi.Size() == 0
	for i := range 2 {
		var b [ackSlotLen]byte
		n, err := a.f.ReadAt(b[:], int64(i)*ackSlotStride)
		if err != nil && !errors.Is(err, io.EOF) {
			return st, fmt.Errorf("read ack file: %w", err)
		}
		if allZero(b[:n]) {
			continue // slot never written (the file is sparse before slot 1)
		}
		gen, pos, valid := decodeAckSlot(b[:n])
		if !valid {
			st.invalid[i] = true
			continue
		}
		if !st.ok || gen > a.gen {
			st.ok, st.pos, a.gen = true, pos, gen
		}
	}
	return st, nil
}

func decodeAckSlot(b []byte) (gen uint64, pos ID, ok bool) {
	if len(b) < ackSlotLen || [4]byte(b[:4]) != ackMagic {
		return 0, ID{}, false
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:32]) {
		return 0, ID{}, false
	}
	gen = binary.LittleEndian.Uint64(b[4:12])
	pos = ID{Segment: binary.LittleEndian.Uint64(b[12:20]), Offset: int64(binary.LittleEndian.Uint64(b[20:28]))}
	if pos.Offset < 0 || pos.Offset > MaxSegmentBytes {
		return 0, ID{}, false
	}
	return gen, pos, true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// write stores pos in the slot that does not hold the newest position. It
// does not fsync.
func (a *ackFile) write(pos ID) error {
	gen := a.gen + 1
	b := a.buf[:]
	copy(b, ackMagic[:])
	binary.LittleEndian.PutUint64(b[4:12], gen)
	binary.LittleEndian.PutUint64(b[12:20], pos.Segment)
	binary.LittleEndian.PutUint64(b[20:28], uint64(pos.Offset))
	binary.LittleEndian.PutUint32(b[28:32], crc32.Checksum(b[:28], castagnoli))
	if _, err := a.f.WriteAt(b, int64(gen&1)*ackSlotStride); err != nil {
		return fmt.Errorf("write ack file: %w", err)
	}
	a.gen = gen
	return nil
}

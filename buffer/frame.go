package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Frame layout (all integers little-endian):
//
//	0   magic    4 bytes "SLQ\x01"
//	4   length   uint32  payload length
//	8   crc      uint32  CRC32-Castagnoli of bytes 4..8 (length) then the payload
//	12  payload:
//	      count    uint32  events in the chunk
//	      taglen   uint16
//	      tag      taglen bytes
//	      entries  the rest: concatenated msgpack [time, record], verbatim
const (
	frameHeaderLen = 12
	chunkHeaderLen = 6
	minFrameLen    = frameHeaderLen + chunkHeaderLen
	maxTagLen      = math.MaxUint16
)

var (
	frameMagic = [4]byte{'S', 'L', 'Q', 1}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Reasons a frame fails verification; they are wrapped in *CorruptionError.
var (
	errBadMagic  = errors.New("bad magic")
	errBadLength = errors.New("bad length")
	errTorn      = errors.New("frame extends past the end of the data")
	errChecksum  = errors.New("checksum mismatch")
)

// ID is the position of a chunk's frame: its segment's sequence number and
// the byte offset of the frame in that segment. IDs are comparable, ordered
// by (Segment, Offset), and stable across restarts.
type ID struct {
	Segment uint64
	Offset  int64
}

// String returns "segment:offset".
func (id ID) String() string { return fmt.Sprintf("%d:%d", id.Segment, id.Offset) }

func (id ID) compare(o ID) int {
	switch {
	case id.Segment < o.Segment:
		return -1
	case id.Segment > o.Segment:
		return 1
	case id.Offset < o.Offset:
		return -1
	case id.Offset > o.Offset:
		return 1
	}
	return 0
}

// CorruptionError describes a frame that failed verification. The queue
// never returns it from its API: it skips the damage, counts it in
// sluice_buffer_corrupt_chunks_total and logs the error.
type CorruptionError struct {
	Segment uint64
	Offset  int64
	Err     error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("buffer: corrupt frame in segment %d at offset %d: %v", e.Segment, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// frameSize is the size on disk of a chunk's frame.
func frameSize(tagLen, entriesLen int) int64 {
	return minFrameLen + int64(tagLen) + int64(entriesLen)
}

// appendFrame appends the frame of one chunk to dst. The caller has checked
// count and len(tag) against their field widths.
func appendFrame(dst, tag []byte, count int, entries []byte) []byte {
	start := len(dst)
	dst = append(dst, frameMagic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(chunkHeaderLen+len(tag)+len(entries)))
	dst = append(dst, 0, 0, 0, 0) // crc, filled below
	dst = binary.LittleEndian.AppendUint32(dst, uint32(count))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(tag)))
	dst = append(dst, tag...)
	dst = append(dst, entries...)
	crc := crc32.Update(0, castagnoli, dst[start+4:start+8])
	crc = crc32.Update(crc, castagnoli, dst[start+frameHeaderLen:])
	binary.LittleEndian.PutUint32(dst[start+8:], crc)
	return dst
}

// frameInfo describes one verified frame.
type frameInfo struct {
	size       int64 // header + payload
	count      int
	entriesLen int
}

// checkHeader validates a frame header and returns the payload length. avail
// is how many bytes follow the header's start in the segment's valid data.
func checkHeader(h []byte, avail int64) (int64, error) {
	if [4]byte(h[:4]) != frameMagic {
		return 0, errBadMagic
	}
	n := int64(binary.LittleEndian.Uint32(h[4:8]))
	if n < chunkHeaderLen {
		return 0, errBadLength
	}
	if frameHeaderLen+n > avail {
		return 0, errTorn
	}
	return n, nil
}

// checkPayload verifies the CRC of a frame whose header h and payload p
// were read separately.
func checkPayload(h, p []byte) (frameInfo, error) {
	crc := crc32.Update(0, castagnoli, h[4:8])
	crc = crc32.Update(crc, castagnoli, p)
	if crc != binary.LittleEndian.Uint32(h[8:12]) {
		return frameInfo{}, errChecksum
	}
	tl := int(binary.LittleEndian.Uint16(p[4:6]))
	if chunkHeaderLen+tl > len(p) {
		return frameInfo{}, errBadLength
	}
	return frameInfo{
		size:       frameHeaderLen + int64(len(p)),
		count:      int(binary.LittleEndian.Uint32(p[0:4])),
		entriesLen: len(p) - chunkHeaderLen - tl,
	}, nil
}

// checkFrame verifies the frame at the start of b (b may continue past it).
func checkFrame(b []byte) (frameInfo, error) {
	if len(b) < frameHeaderLen {
		return frameInfo{}, errTorn
	}
	n, err := checkHeader(b, int64(len(b)))
	if err != nil {
		return frameInfo{}, err
	}
	return checkPayload(b[:frameHeaderLen], b[frameHeaderLen:frameHeaderLen+n])
}

// decodePayload splits a verified payload into its chunk fields. Tag and
// entries alias p.
func decodePayload(p []byte) (count int, tag, entries []byte) {
	tl := int(binary.LittleEndian.Uint16(p[4:6]))
	return int(binary.LittleEndian.Uint32(p[0:4])), p[chunkHeaderLen : chunkHeaderLen+tl : chunkHeaderLen+tl], p[chunkHeaderLen+tl:]
}

// resync returns the offset of the first valid frame in b at or after from,
// or -1. A candidate must carry the magic and pass its CRC, so a damaged
// region is skipped exactly up to the next intact frame.
func resync(b []byte, from int) int {
	for i := from; i < len(b); {
		j := bytes.Index(b[i:], frameMagic[:])
		if j < 0 {
			return -1
		}
		if _, err := checkFrame(b[i+j:]); err == nil {
			return i + j
		}
		i += j + 1
	}
	return -1
}

// span is a damaged byte range [from, to) of a segment that readers skip.
type span struct{ from, to int64 }

// scanResult is what scan found in a segment's data.
type scanResult struct {
	end        int64 // end of the last valid frame (base if none)
	chunks     int64
	events     int64
	entryBytes int64
	skips      []span             // damaged regions followed by a valid frame
	tail       int64              // start of a damaged tail with no valid frame after it; -1 if none
	corrupt    []*CorruptionError // one per skipped region and for the tail
}

// scan verifies every frame of data, which holds a segment's bytes from
// offset base on.
func scan(seq uint64, data []byte, base int64) scanResult {
	r := scanResult{end: base, tail: -1}
	for off := 0; off < len(data); {
		fi, err := checkFrame(data[off:])
		if err == nil {
			r.chunks++
			r.events += int64(fi.count)
			r.entryBytes += int64(fi.entriesLen)
			off += int(fi.size)
			r.end = base + int64(off)
			continue
		}
		r.corrupt = append(r.corrupt, &CorruptionError{Segment: seq, Offset: base + int64(off), Err: err})
		next := resync(data, off+1)
		if next < 0 {
			r.tail = base + int64(off)
			break
		}
		r.skips = append(r.skips, span{base + int64(off), base + int64(next)})
		off = next
	}
	return r
}

// MaxEntries is the largest entries payload one chunk of a tag of tagLen
// bytes may carry: its frame must fit in one segment. The pipeline uses it
// to cut chunks in time and to refuse single events that can never fit.
func (q *Queue) MaxEntries(tagLen int) int {
	return int(q.opts.SegmentBytes - frameSize(tagLen, 0))
}

package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// AppendEventTime appends unixNano as a Forward EventTime: msgpack fixext8
// of ext type 0, that is d7 00, the seconds as a big-endian uint32, then the
// nanoseconds as a big-endian uint32. Seconds outside [0, 2^32) (before 1970
// or after 2106) wrap around; the nanoseconds are always in [0, 1e9).
func AppendEventTime(dst []byte, unixNano int64) []byte {
	sec, nsec := unixNano/1e9, unixNano%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	s, n := uint32(sec), uint32(nsec)
	return append(dst, mFixExt8, 0,
		byte(s>>24), byte(s>>16), byte(s>>8), byte(s),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendEntry appends one Forward entry [EventTime, record] to dst. record
// must already be one msgpack map; it is copied as is, not checked. A
// concatenation of entries is a PackedForward entry stream, the form chunks
// are stored in.
func AppendEntry(dst []byte, unixNano int64, record []byte) []byte {
	// EntryLen must agree.
	dst = append(dst, 0x92)
	dst = AppendEventTime(dst, unixNano)
	return append(dst, record...)
}

// EntryLen is the length AppendEntry gives an entry of a record of
// recordLen bytes: the array header, the 10-byte EventTime and the record.
func EntryLen(recordLen int) int { return 1 + 10 + recordLen }

// ForEachEntry calls fn for each [time, record] entry of a packed entry
// stream built with AppendEntry, in order, with the time in nanoseconds and
// the record as a view into entries. It accepts every entry form Events
// does. Unlike Events, it is strict: an entry that is invalid or truncated
// stops the walk with an error wrapping ErrMalformed, because a stream of our
// own making that does not decode is corrupt. An error returned by fn stops
// the walk and is returned as is.
func ForEachEntry(entries []byte, fn func(unixNano int64, record []byte) error) error {
	off := 0
	for off < len(entries) {
		ns, rec, n, valid, err := readEntry(entries[off:])
		if err != nil {
			return fmt.Errorf("%w: entry at offset %d: %v", ErrMalformed, off, err)
		}
		if !valid {
			return fmt.Errorf("%w: invalid entry at offset %d", ErrMalformed, off)
		}
		if err := fn(ns, rec); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// LookupString returns the value of key in the top-level msgpack map record
// as a view into record, without allocating. ok is false if the key is
// absent, if its first occurrence has a value that is not a str or bin, or if
// record is not a well-formed map. Keys may be str or bin.
func LookupString(record []byte, key []byte) (val []byte, ok bool) {
	n, rest, ok := ReadMapHeader(record)
	if !ok {
		return nil, false
	}
	for range n {
		if len(rest) == 0 {
			return nil, false
		}
		if isStrBin(rest[0]) {
			var k []byte
			if k, rest, ok = ReadStrBin(rest); !ok {
				return nil, false
			}
			if bytes.Equal(k, key) {
				v, _, ok := ReadStrBin(rest)
				return v, ok
			}
		} else if rest, ok = Skip(rest); !ok {
			return nil, false
		}
		if rest, ok = Skip(rest); !ok {
			return nil, false
		}
	}
	return nil, false
}

// readEntry reads one entry from the front of an entry stream. n is the
// entry's length. valid is false for a well-formed value that is not a valid
// entry (not an array of at least two elements, an invalid time, a record
// that is not a map); the caller skips n bytes. err (ErrShort or
// ErrMalformed) means the stream does not hold a complete value: in a stream
// that is complete, it is truncated or corrupt and cannot be resynchronised.
func readEntry(b []byte) (ns int64, record []byte, n int, valid bool, err error) {
	if len(b) == 0 {
		return 0, nil, 0, false, ErrShort
	}
	if !isArray(b[0]) {
		n, err := valueLen(b, 0)
		return 0, nil, n, false, err
	}
	cnt, rest, ok := readArrayHeader(b)
	if !ok {
		return 0, nil, 0, false, ErrShort
	}
	var tv []byte
	for i := range cnt {
		l, err := valueLen(rest, 0)
		if err != nil {
			return 0, nil, 0, false, err
		}
		switch i {
		case 0:
			tv = rest[:l]
		case 1:
			record = rest[:l:l]
		}
		rest = rest[l:]
	}
	n = len(b) - len(rest)
	if cnt < 2 || !isMap(record[0]) {
		return 0, nil, n, false, nil
	}
	ns, ok = readTime(tv, false)
	if !ok {
		return 0, nil, n, false, nil
	}
	return ns, record, n, true, nil
}

// readTime decodes a Forward time: any msgpack integer (seconds), an
// EventTime (ext type 0 with an 8-byte payload, in any ext encoding), or, at
// the top level only, an array whose first element is one of those (Fluent
// Bit's [time, metadata]; the metadata is dropped). Seconds equal to 0 mean
// "now", as in Fluentd's in_forward. v holds exactly one complete value.
func readTime(v []byte, nested bool) (ns int64, ok bool) {
	if len(v) == 0 {
		return 0, false
	}
	var d []byte // 8-byte EventTime payload
	switch c := v[0]; {
	case c == mFixExt8:
		if len(v) >= 10 && v[1] == 0 {
			d = v[2:10]
		}
	case c == mExt8:
		if len(v) >= 11 && v[1] == 8 && v[2] == 0 {
			d = v[3:11]
		}
	case c == mExt16:
		if len(v) >= 12 && binary.BigEndian.Uint16(v[1:]) == 8 && v[3] == 0 {
			d = v[4:12]
		}
	case c == mExt32:
		if len(v) >= 14 && binary.BigEndian.Uint32(v[1:]) == 8 && v[5] == 0 {
			d = v[6:14]
		}
	case isArray(c):
		if nested {
			return 0, false
		}
		n, rest, ok := readArrayHeader(v)
		if !ok || n == 0 {
			return 0, false
		}
		l, err := valueLen(rest, 0)
		if err != nil {
			return 0, false
		}
		return readTime(rest[:l], true)
	default:
		sec, _, ok := readInt(v)
		if !ok || sec > math.MaxInt64/int64(time.Second) || sec < math.MinInt64/int64(time.Second) {
			return 0, false
		}
		if sec == 0 {
			return time.Now().UnixNano(), true
		}
		return sec * 1e9, true
	}
	if d == nil {
		return 0, false
	}
	sec := binary.BigEndian.Uint32(d)
	if sec == 0 {
		return time.Now().UnixNano(), true
	}
	return int64(sec)*1e9 + int64(binary.BigEndian.Uint32(d[4:])), true
}

// NextEntry reads the first entry of a packed entry stream built with
// AppendEntry, strictly as ForEachEntry does: the time in nanoseconds, the
// record as a view into entries (entries[recOff:recOff+len(record)]), and
// the entry's length n. An entry that is invalid or truncated gives an
// error wrapping ErrMalformed.
func NextEntry(entries []byte) (unixNano int64, record []byte, recOff, n int, err error) {
	ns, rec, n, valid, err := readEntry(entries)
	if err != nil {
		return 0, nil, 0, 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !valid {
		return 0, nil, 0, 0, fmt.Errorf("%w: invalid entry", ErrMalformed)
	}
	// The record is the array's second element: after its header and the
	// time, both already validated by readEntry.
	_, rest, _ := readArrayHeader(entries)
	rest, _ = Skip(rest)
	return ns, rec, len(entries) - len(rest), n, nil
}

package forward

import "github.com/sluice-agent/sluice/internal/wire"

// A zero-allocation walk over a record's top-level pairs, on internal/wire's
// readers: it never allocates, not even an error on a type mismatch (msgp's
// readers do), because records come from untrusted clients on the hot path.

// mapIter walks the key/value pairs of a msgpack map without allocating.
type mapIter struct {
	rest []byte
	left int
}

func newMapIter(m []byte) (mapIter, bool) {
	n, rest, ok := wire.ReadMapHeader(m)
	return mapIter{rest: rest, left: n}, ok
}

// next returns the next pair: key is the key's bytes if it is a str or bin
// (keyOK false otherwise), val the raw value. ok is false at the end or on
// malformed input.
func (it *mapIter) next() (key []byte, keyOK bool, val []byte, ok bool) {
	if it.left <= 0 {
		return nil, false, nil, false
	}
	it.left--
	var rest []byte
	if key, rest, keyOK = wire.ReadStrBin(it.rest); !keyOK {
		if rest, ok = wire.Skip(it.rest); !ok {
			it.left = 0
			return nil, false, nil, false
		}
	}
	// Fast paths for the usual values: str/bin and fixints.
	if len(rest) > 0 && (rest[0] <= 0x7f || rest[0] >= 0xe0) {
		it.rest = rest[1:]
		return key, keyOK, rest[:1:1], true
	}
	_, after, ok := wire.ReadStrBin(rest)
	if !ok {
		if after, ok = wire.Skip(rest); !ok {
			it.left = 0
			return nil, false, nil, false
		}
	}
	n := len(rest) - len(after)
	it.rest = after
	return key, keyOK, rest[:n:n], true
}

// lookupRaw returns the raw value of the first top-level key equal to key.
func lookupRaw(m, key []byte) ([]byte, bool) {
	it, ok := newMapIter(m)
	if !ok {
		return nil, false
	}
	for {
		k, kok, v, ok := it.next()
		if !ok {
			return nil, false
		}
		if kok && string(k) == string(key) {
			return v, true
		}
	}
}

// appendStr appends s as a msgpack str, as msgp.AppendStringFromBytes does;
// this one is small enough to be inlined, which counts in
// appendDockerRecord's eight or more calls per event.
func appendStr(dst, s []byte) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= 0xff:
		dst = append(dst, 0xd9, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

package processors

import (
	"bytes"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

// span is a run of bytes in the record being edited (src) or in the
// arena; offsets, not slices, so that the arena may grow.
type span struct {
	off, n int32
	arena  bool
}

// kv is one top-level member: its key and value as encoded.
type kv struct{ k, v span }

// edit is an event's record while processors change it: the members of
// the top-level map as views, new bytes in an arena, encoded back once.
type edit struct {
	src     []byte // the record the views point into (borrowed, never written)
	arena   []byte
	fs      []kv
	decoded bool
	isMap   bool
	dirty   bool
	out     [2][]byte // encode buffers, used in turn
	cur     int
	tmp     []byte // scratch for newKey
}

func (e *edit) reset(rec []byte) {
	e.src, e.arena, e.fs = rec, e.arena[:0], e.fs[:0]
	e.decoded, e.dirty = false, false
}

func (e *edit) bytes(s span) []byte {
	if s.arena {
		return e.arena[s.off : s.off+s.n]
	}
	return e.src[s.off : s.off+s.n]
}

// decode lists the members of src; it reports false if src is not a
// well-formed map (field operations then leave it alone).
func (e *edit) decode() bool {
	if e.decoded {
		return e.isMap
	}
	e.decoded = true
	e.fs = e.fs[:0]
	e.isMap = e.members(e.src, 0, false)
	if !e.isMap {
		e.fs = e.fs[:0]
	}
	return e.isMap
}

// members appends the members of the map m, which starts at offset base
// of src (arena false) or of the arena.
func (e *edit) members(m []byte, base int, arena bool) bool {
	n, rest, ok := wire.ReadMapHeader(m)
	if !ok {
		return false
	}
	at := base + len(m) - len(rest)
	for range n {
		afterK, ok := wire.Skip(rest)
		if !ok {
			return false
		}
		afterV, ok := wire.Skip(afterK)
		if !ok {
			return false
		}
		kl, vl := len(rest)-len(afterK), len(afterK)-len(afterV)
		e.fs = append(e.fs, kv{k: span{int32(at), int32(kl), arena}, v: span{int32(at + kl), int32(vl), arena}})
		at += kl + vl
		rest = afterV
	}
	return true
}

// key returns the text of member i's key (nil for a key that is not a
// str or bin).
func (e *edit) key(i int) []byte {
	k, _, ok := wire.ReadStrBin(e.bytes(e.fs[i].k))
	if !ok {
		return nil
	}
	return k
}

func (e *edit) find(key []byte) int {
	for i := range e.fs {
		if k := e.key(i); k != nil && bytes.Equal(k, key) {
			return i
		}
	}
	return -1
}

// newKey appends key encoded as a str to the arena.
func (e *edit) newKey(prefix, key []byte) span {
	off := len(e.arena)
	e.tmp = append(append(e.tmp[:0], prefix...), key...)
	e.arena = msgp.AppendStringFromBytes(e.arena, e.tmp)
	return span{int32(off), int32(len(e.arena) - off), true}
}

// addRaw appends raw (an encoded value) to the arena.
func (e *edit) addRaw(raw []byte) span {
	off := len(e.arena)
	e.arena = append(e.arena, raw...)
	return span{int32(off), int32(len(raw)), true}
}

// set makes key (already in the arena as k) hold v: it replaces the
// first member with that key, or is appended.
func (e *edit) set(key []byte, k, v span) {
	if i := e.find(key); i >= 0 {
		e.fs[i].v = v
	} else {
		e.fs = append(e.fs, kv{k: k, v: v})
	}
	e.dirty = true
}

// remove drops member i, keeping the order of the others.
func (e *edit) remove(i int) {
	e.fs = append(e.fs[:i], e.fs[i+1:]...)
	e.dirty = true
}

// record returns the record as it stands, encoding the members when they
// changed. The bytes are valid until the next change.
func (e *edit) record() []byte {
	if !e.dirty {
		return e.src
	}
	next := e.cur ^ 1
	b := msgp.AppendMapHeader(e.out[next][:0], uint32(len(e.fs)))
	for _, f := range e.fs {
		b = append(b, e.bytes(f.k)...)
		b = append(b, e.bytes(f.v)...)
	}
	e.out[next], e.cur = b, next
	e.src, e.arena = b, e.arena[:0]
	e.dirty, e.decoded = false, false
	return b
}

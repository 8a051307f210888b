package processors

import (
	"bytes"

	"github.com/sluice-agent/sluice/internal/parse"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

// apply runs a field operation or redact on the event's record.
func (r *Runner) apply(p *proc) {
	e := &r.e
	if !e.decode() {
		return
	}
	switch p.kind {
	case kAdd:
		for _, a := range p.adds {
			v := e.addRaw(a.val)
			if i := e.find(a.key); i >= 0 {
				e.fs[i].v, e.dirty = v, true
				continue
			}
			e.set(a.key, e.newKey(nil, a.key), v)
		}
	case kRename:
		for _, rn := range p.renames {
			i := e.find(rn[0])
			if i < 0 {
				continue
			}
			v := e.fs[i].v
			e.remove(i)
			e.set(rn[1], e.newKey(nil, rn[1]), v)
		}
	case kRemove:
		for _, k := range p.keys {
			for i := e.find(k); i >= 0; i = e.find(k) {
				e.remove(i)
			}
		}
	case kKeep:
		n := 0
		for i := range e.fs {
			if k := e.key(i); k != nil && hasKey(p.keys, k) {
				e.fs[n] = e.fs[i]
				n++
			}
		}
		if n != len(e.fs) {
			e.fs, e.dirty = e.fs[:n], true
		}
	case kLift:
		i := e.find(p.key)
		if i < 0 {
			return
		}
		m := e.fs[i].v
		if _, _, ok := wire.ReadMapHeader(e.bytes(m)); !ok {
			return
		}
		e.remove(i)
		start := len(e.fs)
		e.members(e.bytes(m), int(m.off), m.arena)
		// Lifted members replace top-level keys of the same name.
		for j := start; j < len(e.fs); j++ {
			lk := e.key(j)
			if lk == nil {
				continue
			}
			if len(p.prefix) > 0 {
				e.fs[j].k = e.newKey(p.prefix, lk)
				lk = e.key(j)
			}
			for x := 0; x < start; x++ {
				if k := e.key(x); k != nil && bytes.Equal(k, lk) {
					e.fs[x].v = e.fs[j].v
					e.fs[j].k.n = -1 // merged
					break
				}
			}
		}
		n := start
		for j := start; j < len(e.fs); j++ {
			if e.fs[j].k.n >= 0 {
				e.fs[n] = e.fs[j]
				n++
			}
		}
		e.fs = e.fs[:n]
	case kNest:
		off := len(e.arena)
		e.arena = msgp.AppendMapHeader(e.arena, 0) // patched below
		hdr := len(e.arena) - off
		cnt := 0
		n := 0
		for i := range e.fs {
			if k := e.key(i); k != nil && hasKey(p.keys, k) {
				e.arena = append(e.arena, e.bytes(e.fs[i].k)...)
				e.arena = append(e.arena, e.bytes(e.fs[i].v)...)
				cnt++
				continue
			}
			e.fs[n] = e.fs[i]
			n++
		}
		if cnt == 0 {
			e.arena = e.arena[:off]
			return
		}
		e.fs = e.fs[:n]
		e.arena = patchMapHeader(e.arena, off, hdr, cnt)
		v := span{int32(off), int32(len(e.arena) - off), true}
		e.set(p.key, e.newKey(nil, p.key), v)
	case kParse:
		r.parseField(p)
	case kRedact:
		for _, k := range p.keys {
			i := e.find(k)
			if i < 0 {
				continue
			}
			s, _, ok := wire.ReadStrBin(e.bytes(e.fs[i].v))
			if !ok {
				continue
			}
			var changed bool
			r.scr, changed = p.red.redact(r.scr[:0], s, &r.red)
			if !changed {
				continue
			}
			off := len(e.arena)
			e.arena = msgp.AppendStringFromBytes(e.arena, r.scr)
			e.fs[i].v, e.dirty = span{int32(off), int32(len(e.arena) - off), true}, true
		}
	}
}

func hasKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// patchMapHeader rewrites the map header written at off (hdr bytes, for
// 0 members) for cnt members, moving the members when the header grows.
func patchMapHeader(b []byte, off, hdr, cnt int) []byte {
	var h [5]byte
	nh := msgp.AppendMapHeader(h[:0], uint32(cnt))
	if len(nh) == hdr {
		copy(b[off:], nh)
		return b
	}
	body := len(b) - off - hdr
	b = append(b, make([]byte, len(nh)-hdr)...)
	copy(b[off+len(nh):], b[off+hdr:off+hdr+body])
	copy(b[off:], nh)
	return b
}

// keyParseError marks a field the parse processor's parser rejected.
var keyParseError = []byte(parse.KeyParseError)

// parseField runs p's parser on the string field p.key: the fields it
// yields are added (none over a key the record has); a value it rejects
// is kept as it is and the record gains parse_error: <type>.
func (r *Runner) parseField(p *proc) {
	e := &r.e
	i := e.find(p.key)
	if i < 0 {
		return
	}
	s, _, ok := wire.ReadStrBin(e.bytes(e.fs[i].v))
	if !ok {
		return
	}
	if len(r.parsed) <= p.idx {
		r.parsed = append(r.parsed, make([]parse.Parser, p.idx+1-len(r.parsed))...)
	}
	pr := r.parsed[p.idx]
	if pr == nil {
		var err error
		if pr, err = parse.New(*p.parse); err != nil {
			return // checked by New: cannot happen
		}
		r.parsed[p.idx] = pr
	}
	r.skip.Reset()
	for j := range e.fs {
		if k := e.key(j); k != nil {
			r.skip.Add(k)
		}
	}
	line := bytes.TrimSuffix(s, []byte("\n"))
	if !pr.Parse(bytes.TrimSuffix(line, []byte("\r")), &r.skip) {
		if e.find(keyParseError) < 0 {
			e.set(keyParseError, e.newKey(nil, keyParseError), e.addRaw(msgp.AppendString(r.scr[:0], p.parse.Type)))
		}
		return
	}
	if pr.Len() == 0 {
		return
	}
	base := len(e.arena)
	e.arena = msgp.AppendMapHeader(e.arena, uint32(pr.Len()))
	e.arena = append(e.arena, pr.Pairs()...)
	e.members(e.arena[base:], base, true)
	e.dirty = true
}

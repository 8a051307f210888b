package receiver

import (
	"bytes"

	"github.com/tinylib/msgp/msgp"
)

var (
	keySrc = []byte("src")
	keySeq = []byte("seq")
	keyLog = []byte("log")

	jsonSrc = []byte(`"src":`)
	jsonSeq = []byte(`"seq":`)
)

// RecordKey extracts the (src, seq) key of a msgpack map record without
// allocating: top-level "src" (str) and "seq" (int, uint or float) fields
// win; otherwise the JSON text in the "log" string is searched (LogKey).
// src is a view into record.
func RecordKey(record []byte) (src []byte, seq int64, ok bool) {
	sz, b, err := msgp.ReadMapHeaderBytes(record)
	if err != nil {
		return nil, 0, false
	}
	var log []byte
	haveSrc, haveSeq := false, false
	for range sz {
		var k []byte
		if k, b, err = msgp.ReadMapKeyZC(b); err != nil {
			return nil, 0, false
		}
		switch {
		case bytes.Equal(k, keySrc) && msgp.NextType(b) == msgp.StrType:
			if src, b, err = msgp.ReadStringZC(b); err != nil {
				return nil, 0, false
			}
			haveSrc = true
		case bytes.Equal(k, keySeq):
			switch msgp.NextType(b) {
			case msgp.IntType, msgp.UintType:
				seq, b, err = msgp.ReadInt64Bytes(b)
			case msgp.Float64Type, msgp.Float32Type:
				var f float64
				f, b, err = msgp.ReadFloat64Bytes(b)
				seq = int64(f)
			default:
				b, err = msgp.Skip(b)
				if err != nil {
					return nil, 0, false
				}
				continue
			}
			if err != nil {
				return nil, 0, false
			}
			haveSeq = true
		case bytes.Equal(k, keyLog) && msgp.NextType(b) == msgp.StrType:
			if log, b, err = msgp.ReadStringZC(b); err != nil {
				return nil, 0, false
			}
		default:
			if b, err = msgp.Skip(b); err != nil {
				return nil, 0, false
			}
		}
	}
	if haveSrc && haveSeq {
		return src, seq, true
	}
	if log != nil {
		return LogKey(log)
	}
	return nil, 0, false
}

// LogKey extracts the key from JSON text such as
// `{"log_type":"app","src":"c1","seq":42,"pad":"..."}` without decoding it:
// the first `"src":"..."` string and `"seq":` integer. Escapes inside the
// source id are not supported (loggen never writes them).
func LogKey(js []byte) (src []byte, seq int64, ok bool) {
	i := bytes.Index(js, jsonSrc)
	if i < 0 {
		return nil, 0, false
	}
	rest := skipSpace(js[i+len(jsonSrc):])
	if len(rest) == 0 || rest[0] != '"' {
		return nil, 0, false
	}
	rest = rest[1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, 0, false
	}
	src = rest[:end]
	j := bytes.Index(js, jsonSeq)
	if j < 0 {
		return nil, 0, false
	}
	num := skipSpace(js[j+len(jsonSeq):])
	n := 0
	for n < len(num) && num[n] >= '0' && num[n] <= '9' {
		if n >= 18 {
			return nil, 0, false
		}
		seq = seq*10 + int64(num[n]-'0')
		n++
	}
	if n == 0 {
		return nil, 0, false
	}
	return src, seq, true
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

package record

import (
	"strconv"

	"github.com/tinylib/msgp/msgp"
)

// AppendText appends the msgpack scalar at the start of v as text, as a
// {field:KEY} renders: str and bin as they are, integers in decimal, floats
// in their shortest 'g' form (2500, 1.8446744073709552e+19), booleans as
// true or false. For any other type, or malformed bytes, it returns dst
// unchanged and false.
func AppendText(dst, v []byte) ([]byte, bool) {
	switch msgp.NextType(v) {
	case msgp.StrType:
		if s, _, err := msgp.ReadStringZC(v); err == nil {
			return append(dst, s...), true
		}
	case msgp.BinType:
		if s, _, err := msgp.ReadBytesZC(v); err == nil {
			return append(dst, s...), true
		}
	case msgp.IntType:
		if n, _, err := msgp.ReadInt64Bytes(v); err == nil {
			return strconv.AppendInt(dst, n, 10), true
		}
	case msgp.UintType:
		if n, _, err := msgp.ReadUint64Bytes(v); err == nil {
			return strconv.AppendUint(dst, n, 10), true
		}
	case msgp.Float64Type, msgp.Float32Type:
		if f, _, err := msgp.ReadFloat64Bytes(v); err == nil {
			return strconv.AppendFloat(dst, f, 'g', -1, 64), true
		}
	case msgp.BoolType:
		if b, _, err := msgp.ReadBoolBytes(v); err == nil {
			return strconv.AppendBool(dst, b), true
		}
	}
	return dst, false
}

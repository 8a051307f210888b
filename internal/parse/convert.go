package parse

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Conversions of Config.Types.
const (
	convString = iota
	convInt
	convFloat
	convBool
	convTime
)

// conv converts a field's text to a typed msgpack value.
type conv struct {
	kind int
	tf   timeFmt // convTime
}

// newConvs compiles Config.Types.
func newConvs(types map[string]string, loc *time.Location, now func() time.Time) (map[string]conv, error) {
	if len(types) == 0 {
		return nil, nil
	}
	m := make(map[string]conv, len(types))
	for field, t := range types {
		var c conv
		switch {
		case t == "string":
		case t == "int":
			c.kind = convInt
		case t == "float":
			c.kind = convFloat
		case t == "bool":
			c.kind = convBool
		case strings.HasPrefix(t, "time:"):
			tf, err := newTimeFmt(t[len("time:"):], loc, now)
			if err != nil {
				return nil, fmt.Errorf("types: %s: %w", field, err)
			}
			c.kind, c.tf = convTime, tf
		default:
			return nil, fmt.Errorf("types: %s: unknown type %q (want int, float, bool, string or time:<layout>)", field, t)
		}
		m[field] = c
	}
	return m, nil
}

// append appends v converted, or as a str if it does not convert.
func (c *conv) append(dst, v []byte) []byte {
	switch c.kind {
	case convInt:
		if n, ok := parseInt(v); ok {
			return msgp.AppendInt64(dst, n)
		}
	case convFloat:
		if isFloat(v) {
			if f, err := strconv.ParseFloat(view(v), 64); err == nil {
				return msgp.AppendFloat64(dst, f)
			}
		}
	case convBool:
		switch view(v) {
		case "1", "t", "T", "true", "TRUE", "True":
			return msgp.AppendBool(dst, true)
		case "0", "f", "F", "false", "FALSE", "False":
			return msgp.AppendBool(dst, false)
		}
	case convTime:
		if t, ok := c.tf.parse(v); ok {
			return appendTimestamp(dst, t)
		}
	}
	return msgp.AppendStringFromBytes(dst, v)
}

// parseInt parses [+-]digits as an int64.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, b = b[0] == '-', b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 || u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// isFloat checks the decimal grammar [+-]digits[.digits][e[+-]digits]
// (digits on at least one side of the point), so that ParseFloat fails
// only on range.
func isFloat(b []byte) bool {
	i := 0
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		i++
	}
	n := 0
	for ; i < len(b) && b[i]-'0' <= 9; i++ {
		n++
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i]-'0' <= 9; i++ {
			n++
		}
	}
	if n == 0 {
		return false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			i++
		}
		e := i
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
		}
		if i == e {
			return false
		}
	}
	return i == len(b)
}

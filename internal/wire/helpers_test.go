package wire

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// unhex decodes hex with spaces and newlines, for byte vectors.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex vector: %v", err)
	}
	return b
}

// event is one decoded event, copied out of the callback.
type event struct {
	ns     int64
	record []byte
}

// collect runs Events and copies every event.
func collect(t testing.TB, req *Request, maxDecompressed int) ([]event, int, error) {
	t.Helper()
	var evs []event
	_, invalid, err := req.Events(nil, maxDecompressed, func(ns int64, rec []byte) error {
		evs = append(evs, event{ns, bytes.Clone(rec)})
		return nil
	})
	return evs, invalid, err
}

// rec builds a msgpack map of string pairs, in order.
func rec(kv ...string) []byte {
	b := msgp.AppendMapHeader(nil, uint32(len(kv)/2))
	for _, s := range kv {
		b = msgp.AppendString(b, s)
	}
	return b
}

// arr builds an array from already-encoded elements.
func arr(elems ...[]byte) []byte {
	b := msgp.AppendArrayHeader(nil, uint32(len(elems)))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

func str(s string) []byte { return msgp.AppendString(nil, s) }

// strN encodes s with a chosen str or bin header width: "fixstr", "str8",
// "str16", "str32", "bin8", "bin16", "bin32".
func strN(kind string, s []byte) []byte {
	n := len(s)
	var b []byte
	switch kind {
	case "fixstr":
		b = []byte{0xa0 | byte(n)}
	case "str8":
		b = []byte{mStr8, byte(n)}
	case "str16":
		b = []byte{mStr16, byte(n >> 8), byte(n)}
	case "str32":
		b = []byte{mStr32, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	case "bin8":
		b = []byte{mBin8, byte(n)}
	case "bin16":
		b = []byte{mBin16, byte(n >> 8), byte(n)}
	case "bin32":
		b = []byte{mBin32, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	default:
		panic(kind)
	}
	return append(b, s...)
}

// gz compresses each part as its own gzip member and concatenates them.
func gz(t testing.TB, parts ...[]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, p := range parts {
		w := gzip.NewWriter(&out)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// record200 returns a Docker-like record of about 200 bytes.
func record200() []byte {
	return rec(
		"container_id", "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100",
		"container_name", "/web-frontend-1",
		"source", "stdout",
		"log", "2026-01-02T15:04:05Z INFO request served method=GET path=/api/v1/items status=200",
	)
}

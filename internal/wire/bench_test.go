package wire

import (
	"strconv"
	"testing"
)

// entries200 returns a PackedForward entry stream of 200 events with
// 200-byte records.
func entries200() []byte {
	var b []byte
	for i := range 200 {
		b = AppendEntry(b, 1767366245e9+int64(i)*1e6, record200())
	}
	return b
}

func BenchmarkAppendEntry(b *testing.B) {
	r := record200()
	dst := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.SetBytes(int64(len(AppendEntry(nil, 0, r))))
	for i := 0; b.Loop(); i++ {
		if len(dst) > 1<<20-512 {
			dst = dst[:0]
		}
		dst = AppendEntry(dst, 1767366245e9+int64(i), r)
	}
}

func BenchmarkReadRequestEvents(b *testing.B) {
	entries := entries200()
	g, err := NewGzipper(1)
	if err != nil {
		b.Fatal(err)
	}
	var fwd [][]byte
	_ = ForEachEntry(entries, func(ns int64, r []byte) error {
		fwd = append(fwd, AppendEntry(nil, ns, r))
		return nil
	})
	reqs := map[string][]byte{
		"packed":  AppendPackedForward(nil, []byte("app.web"), entries, Options{Size: 200, Chunk: "AAAAAAAAAAAAAAAAAAAAAA=="}),
		"forward": append(arr(str("app.web"), arr(fwd...)), rec("chunk", "AAAAAAAAAAAAAAAAAAAAAA==")...),
		"gzip":    AppendPackedForward(nil, []byte("app.web"), g.Compress(nil, entries), Options{Size: 200, Chunk: "x", Compressed: true}),
	}
	reqs["forward"][0] = 0x93
	for _, name := range []string{"packed", "forward", "gzip"} {
		req := reqs[name]
		b.Run(name, func(b *testing.B) {
			scratch := make([]byte, 0, 2*len(entries))
			events := 0
			fn := func(int64, []byte) error { events++; return nil }
			b.ReportAllocs()
			b.SetBytes(int64(len(entries))) // event payload, comparable across modes
			for b.Loop() {
				r, _, err := ReadRequest(req, 0)
				if err != nil {
					b.Fatal(err)
				}
				if scratch, _, err = r.Events(scratch, 0, fn); err != nil {
					b.Fatal(err)
				}
			}
			if events != 200*b.N {
				b.Fatalf("%d events for %d requests", events, b.N)
			}
		})
	}
}

func BenchmarkGzipCompress(b *testing.B) {
	entries := entries200()
	for _, level := range []int{1, 6} {
		b.Run("level"+strconv.Itoa(level), func(b *testing.B) {
			g, err := NewGzipper(level)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, len(entries))
			b.ReportAllocs()
			b.SetBytes(int64(len(entries)))
			for b.Loop() {
				dst = g.Compress(dst[:0], entries)
			}
			b.ReportMetric(float64(len(entries))/float64(len(dst)), "ratio")
		})
	}
}

func BenchmarkLookupString(b *testing.B) {
	r := record200()
	key := []byte("log") // the last of four keys
	b.ReportAllocs()
	b.SetBytes(int64(len(r)))
	for b.Loop() {
		if _, ok := LookupString(r, key); !ok {
			b.Fatal("not found")
		}
	}
}

package jsonl

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/wire"
)

// oldAppendLine is AppendLine as it was before the transcoder, on
// msgp.UnmarshalAsJSON: kept to compare speed.
func oldAppendLine(dst, tag []byte, unixNano int64, record []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `{"tag":`...)
	dst = strconv.AppendQuote(dst, string(tag))
	dst = append(dst, `,"time":"`...)
	dst = time.Unix(0, unixNano).UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","record":`...)
	w := appendWriter{b: dst}
	if _, err := msgp.UnmarshalAsJSON(&w, record); err != nil {
		return dst[:start], fmt.Errorf("record: %w", err)
	}
	return append(w.b, "}\n"...), nil
}

type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }

// BenchmarkAppendRecord reports MB/s of JSON written, per record kind:
// Encoder.AppendRecord (time and tag added), AppendLine on the new
// transcoder, and the old msgp.UnmarshalAsJSON-based AppendLine.
func BenchmarkAppendRecord(b *testing.B) {
	e := mustEncoder(b, Options{TagKey: "tag"})
	tag := []byte("kube.var.log.containers.web")
	impls := []struct {
		name string
		fn   func(dst, rec []byte) ([]byte, error)
	}{
		{"Encoder", func(dst, rec []byte) ([]byte, error) { return e.AppendRecord(dst, tag, ts, rec) }},
		{"AppendLine", func(dst, rec []byte) ([]byte, error) { return AppendLine(dst, tag, ts, rec) }},
		{"OldAppendLine", func(dst, rec []byte) ([]byte, error) { return oldAppendLine(dst, tag, ts, rec) }},
	}
	for _, r := range []struct {
		name string
		rec  []byte
	}{{"docker", dockerRecord()}, {"parsed", parsedRecord()}} {
		for _, im := range impls {
			b.Run(r.name+"/"+im.name, func(b *testing.B) {
				out, err := im.fn(nil, r.rec)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(out)))
				b.ReportAllocs()
				for b.Loop() {
					out, err = im.fn(out[:0], r.rec)
				}
				_ = err
			})
		}
	}
}

// BenchmarkAppendEntries: a 1000-event chunk split with NextEntry and
// written with AppendEntry, one object per line.
func BenchmarkAppendEntries(b *testing.B) {
	e := mustEncoder(b, Options{TagKey: "tag"})
	tag := []byte("kube.var.log.containers.web")
	var chunk []byte
	for i := range 1000 {
		chunk = wire.AppendEntry(chunk, ts+int64(i), dockerRecord())
	}
	var out []byte
	run := func() {
		out = out[:0]
		for rest := chunk; ; {
			entry, r, err := NextEntry(rest)
			if err != nil {
				break
			}
			rest = r
			if out, err = e.AppendEntry(out, tag, entry); err != nil {
				b.Fatal(err)
			}
			out = append(out, '\n')
		}
	}
	run()
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}

package docker

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// payload200 is a typical 200-byte application log line.
var payload200 = `2024-01-02T03:04:05.123Z INFO  http: GET /api/v1/orders/12345?expand=items&limit=50 200 OK 12.3ms ` +
	`user=42 trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7 bytes=5123 ua=curl/8.5.0 ...`

// benchLine returns a json-file line (without "\n") whose payload is
// exactly 200 bytes, padded or cut.
func benchLine(b *testing.B, payload string) []byte {
	payload = (payload + strings.Repeat(".", 200))[:200]
	line := jl(payload+"\n", "stdout")
	return []byte(strings.TrimSuffix(line, "\n"))
}

func BenchmarkParse(b *testing.B) {
	line := benchLine(b, payload200)
	var p parser
	var l tail.Line
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := p.Parse(line, &l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEscaped(b *testing.B) {
	// encoding/json escapes <, >, & like Docker, plus quotes and a tab.
	line := benchLine(b, strings.Repeat(`<a href="x">&	</a> `, 12))
	var p parser
	var l tail.Line
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := p.Parse(line, &l); err != nil {
			b.Fatal(err)
		}
	}
}

// discardQueue accepts every chunk and keeps nothing.
type discardQueue struct{}

func (discardQueue) Append(context.Context, []byte, int, []byte) error { return nil }
func (discardQueue) Sync() error                                       { return nil }
func (discardQueue) Mark() uint64                                      { return 1 }
func (discardQueue) SyncTo(uint64) error                               { return nil }

// BenchmarkReadParseAdd measures the whole hot path for 200-byte payload
// lines: pread, split, parse, record, tag, Writer.Add, Flush per turn
// (tail's turn loop, driven by Drain). One op is one line.
//
// Cases: plain (text payload, default tag), parse_json (JSON payload merged
// into the record), field_tag (JSON payload, parse_json off, tag
// "{field:level}.{name}": the payload is only looked into for the tag, as in
// cmd/sluice-bench) and parse_json+field_tag.
func BenchmarkReadParseAdd(b *testing.B) {
	jsonPayload := `{"level":"info","ts":"2024-01-02T03:04:05.123Z","msg":"GET /api/v1/orders/12345 200","user":42,"ms":12.3,"trace":"4bf92f3577b34da6a3ce929d0e0e4736","ok":true,"x":"`
	jsonPayload += strings.Repeat("y", 198-len(jsonPayload)) + `"}`
	for _, bc := range []struct {
		name, payload, tag string
		parseJSON          bool
	}{
		{"plain", payload200, "", false},
		{"parse_json", jsonPayload, "", true},
		{"field_tag", jsonPayload, "{field:level}.{name}", false},
		{"parse_json+field_tag", jsonPayload, "{field:level}.{name}", true},
	} {
		parseJSON, payload := bc.parseJSON, bc.payload
		b.Run(bc.name, func(b *testing.B) {
			h := newHarness(b)
			path := h.container(idA, "/web", map[string]string{"app": "shop"})
			line := string(benchLine(b, payload)) + "\n"
			const n = 20000
			tailtest.AppendFile(b, path, strings.Repeat(line, n))
			cfg := testCfg(h.root)
			cfg.ParseJSON = parseJSON
			cfg.Tag = bc.tag
			set := metrics.NewSet()
			in, err := New("dk", cfg, h.dataDir, tailtest.NewRouter(b, discardQueue{}), nil, set)
			if err != nil {
				b.Fatal(err)
			}
			defer in.t.Close()
			in.t.Scan()
			read := set.GetOrCreateCounter(`sluice_input_lines_total{input="dk"}`)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			b.ResetTimer()
			start := time.Now()
			done := uint64(0)
			for done < uint64(b.N) {
				// Turns of turnBytes (a Flush each) to the end of the
				// file, then back to its start.
				before := read.Get()
				if err := in.t.Drain(ctx); err != nil {
					b.Fatal(err)
				}
				done += read.Get() - before
				in.t.Rewind()
			}
			b.StopTimer()
			b.ReportMetric(float64(done)/time.Since(start).Seconds(), "lines/s")
			_ = os.Remove(path)
		})
	}
}

package docker

import (
	"fmt"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
	"github.com/sluice-agent/sluice/pipeline"
)

// TestAppendFailsMidRead: appends fail again and again in the middle of
// read turns that hold many chunks (lines bigger than a chunk, Docker
// partial groups, physical lines longer than the read buffer), then
// succeed. Every line is delivered exactly once, as written, in order, and
// the committed offset ends at the end of the file.
func TestAppendFailsMidRead(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	var sb strings.Builder
	var want []string
	for i := range 120 {
		switch i % 4 {
		case 0: // bigger than a 4 KiB chunk
			l := fmt.Sprintf("big-%03d-%s", i, strings.Repeat("b", 6000))
			sb.WriteString(jl(l+"\n", "stdout"))
			want = append(want, l)
		case 1: // split by Docker into 16 KiB partials, joined
			a, b, c := strings.Repeat("p", 16384), strings.Repeat("q", 16384), fmt.Sprintf("end-%03d", i)
			sb.WriteString(jl(a, "stdout") + jl(b, "stdout") + jl(c+"\n", "stdout"))
			want = append(want, a+b+c)
		case 2: // a physical line longer than the 256 KiB read buffer
			l := fmt.Sprintf("long-%03d-%s", i, strings.Repeat("l", 300<<10))
			sb.WriteString(jl(l+"\n", "stdout"))
			want = append(want, l)
		default:
			l := fmt.Sprintf("small-%03d", i)
			sb.WriteString(jl(l+"\n", "stdout"))
			want = append(want, l)
		}
	}
	tailtest.AppendFile(t, path, sb.String())
	h.q.SetFailWhen(func(n int) bool { return n < 90 && n%3 == 0 }) // every third attempt fails, then all succeed
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: h.q, ChunkBytes: 4 << 10}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := New("dk", testCfg(h.root), h.dataDir, r, tailtest.Logger(t), h.set)
	if err != nil {
		t.Fatal(err)
	}
	stop := tailtest.Start(t, in)
	tailtest.WaitFor(t, "every line", func() bool { return len(h.q.All()) >= len(want) })
	tailtest.WaitFor(t, "offset at the end", func() bool { off, _ := h.offsetOf(path); return off == int64(sb.Len()) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	tailtest.EqualStrings(t, h.q.Logs(), want)
	attempts := h.q.Attempts()
	if attempts < 90 {
		t.Fatalf("only %d append attempts: the failures were not exercised", attempts)
	}
	t.Logf("%d lines, %d append attempts (%d failed)", len(want), attempts, 29)
}

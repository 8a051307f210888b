package tail

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

func TestPartialJoinPerStream(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	exact := strings.Repeat("E", 16384)
	tailtest.AppendFile(t, path,
		tl("out-1 ", "stdout")+tl("err-1 ", "stderr")+tl("out-2 ", "stdout")+
			tl("err-2\n", "stderr")+tl("out-3\n", "stdout")+
			tl(exact, "stdout")+tl("\n", "stdout")+ // exactly 16 KiB: empty final chunk
			tl("done\n", "stdout"))
	in := h.tail(h.cfg())
	must(t, tailtest.Pump(t, in))
	evs := h.q.All()
	got := make([]string, len(evs))
	for i, e := range evs {
		got[i] = e.Record["stream"].(string) + ":" + e.Log()
	}
	tailtest.EqualStrings(t, got, []string{"stderr:err-1 err-2", "stdout:out-1 out-2 out-3", "stdout:" + exact, "stdout:done"})
	if n := h.counter("sluice_input_partial_joins_total"); n != 3 {
		t.Fatalf("joins %d", n)
	}
	// Nothing pending: the committed offset is the end of the file.
	st, _ := os.Stat(path)
	if f := in.sources[idA].files[0]; f.commit != st.Size() {
		t.Fatalf("commit %d, size %d", f.commit, st.Size())
	}
}

func TestPartialHoldsOffsetAndDanglingFlush(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	head := tl("first\n", "stdout")
	tailtest.AppendFile(t, path, head+tl("dangling-", "stdout")+tl("other\n", "stderr"))
	cfg := h.cfg()
	cfg.PartialFlushTimeout = 500 * time.Millisecond
	in := h.tail(cfg)
	must(t, tailtest.Pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), []string{"first", "other"})
	f := in.sources[idA].files[0]
	if f.commit != int64(len(head)) {
		t.Fatalf("commit %d, want %d (start of the pending partial)", f.commit, len(head))
	}
	// Not yet expired.
	must(t, in.expirePartials(context.Background()))
	if len(h.q.All()) != 2 {
		t.Fatal("partial emitted before its timeout")
	}
	time.Sleep(600 * time.Millisecond)
	must(t, in.expirePartials(context.Background()))
	tailtest.EqualStrings(t, h.q.Logs(), []string{"first", "other", "dangling-"})
	if st, _ := os.Stat(path); f.commit != st.Size() {
		t.Fatalf("commit %d after flush, size %d", f.commit, st.Size())
	}
}

func TestDanglingPartialWhileRunning(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	tailtest.AppendFile(t, path, tl("tail-without-newline", "stdout"))
	stop := tailtest.Start(t, h.tail(h.cfg()))
	evs := h.waitEvents(1)
	if evs[0].Log() != "tail-without-newline" {
		t.Fatalf("got %q", evs[0].Log())
	}
	must(t, stop())
}

// TestTruncateJoinedLine: a 5 MiB line in 16 KiB chunks with a 1 MiB limit
// becomes one 1 MiB record; the join buffer never exceeds the limit.
func TestTruncateJoinedLine(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	cfg := h.cfg()
	cfg.MaxLineBytes = 1 << 20
	in := h.tail(cfg)
	chunk := strings.Repeat("z", 16384)
	var sb strings.Builder
	for range 320 { // 5 MiB
		sb.WriteString(tl(chunk, "stdout"))
	}
	tailtest.AppendFile(t, path, sb.String())
	must(t, tailtest.Pump(t, in))
	f := in.sources[idA].files[0]
	p := f.partialFor([]byte("stdout"))
	if p == nil || len(p.buf) != 1<<20 || cap(p.buf) > 2<<20 || !p.truncated {
		t.Fatalf("pending group: %v", p != nil)
	}
	if len(in.buf) != readBufSize {
		t.Fatal("read buffer resized")
	}
	tailtest.AppendFile(t, path, tl("end\n", "stdout")+tl("next\n", "stdout"))
	must(t, tailtest.Pump(t, in))
	logs := h.q.Logs()
	if len(logs) != 2 || len(logs[0]) != 1<<20 || logs[0] != strings.Repeat("z", 1<<20) || logs[1] != "next" {
		t.Fatalf("got %d events, first %d bytes", len(logs), len(logs[0]))
	}
	if n := h.counter("sluice_input_truncated_lines_total"); n != 1 {
		t.Fatalf("truncated %d", n)
	}
	if cap(p.buf) > keepBufCap {
		t.Fatal("join buffer kept after use")
	}
}

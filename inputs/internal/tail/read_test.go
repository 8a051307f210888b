package tail

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// TestManyContainersRoundRobin: one turn per container per round, at most
// turnBytes each, so a busy container does not starve the others; one fd
// per live file.
func TestManyContainersRoundRobin(t *testing.T) {
	h := newHarness(t)
	big, _ := lines("busy-padded-to-the-size-of-a-docker-line-", 0, 8000) // ~550 KB: several turns
	tailtest.AppendFile(t, h.container(idA, "/busy"), big)
	for i := range 20 {
		data, _ := lines(fmt.Sprintf("c%d-", i), 0, 5)
		tailtest.AppendFile(t, h.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/c%d", i)), data)
	}
	in := h.tail(h.cfg())
	in.w = in.r.NewWriter()
	in.scan(time.Now())
	if in.openFiles != 21 {
		t.Fatalf("%d open files", in.openFiles)
	}
	// One round: every container gets a turn.
	for _, c := range in.order {
		if _, err := in.turn(context.Background(), c.active()); err != nil {
			t.Fatal(err)
		}
	}
	busy := 0
	for _, e := range h.q.All() {
		if e.Tag == "t.busy" {
			busy++
		}
	}
	if got := len(h.q.All()) - busy; got != 20*5 || busy == 0 || busy >= 8000 {
		t.Fatalf("after one round: %d busy events, %d others", busy, got)
	}
	must(t, tailtest.Pump(t, in))
	if len(h.q.All()) != 8000+100 {
		t.Fatalf("%d events", len(h.q.All()))
	}
}

// TestLongPhysicalLine: one 5 MiB physical line (longer than the read
// buffer) is streamed to the format's LongLine, which holds at most about
// MaxLineBytes; the committed offset stays at the line's start until it
// ends; the read buffer keeps its size.
func TestLongPhysicalLine(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	in := h.tail(h.cfg())
	in.buf = make([]byte, 64<<10)
	body := strings.Repeat("0123456789", (5<<20)/10)
	head := tl("before\n", "stdout")
	tailtest.AppendFile(t, path, head+t0+" stderr F "+body[:len(body)/2])
	must(t, tailtest.Pump(t, in))
	f := in.sources[idA].files[0]
	ll, _ := f.long.(*testLong)
	if ll == nil || cap(ll.buf) > 2<<20 || len(in.buf) != 64<<10 {
		t.Fatalf("long line state %v, read buffer %d", ll != nil, len(in.buf))
	}
	if f.commit != int64(len(head)) {
		t.Fatalf("commit %d passed the start of the unfinished line", f.commit)
	}
	tailtest.AppendFile(t, path, body[len(body)/2:]+"\n"+tl("after\n", "stdout"))
	must(t, tailtest.Pump(t, in))
	evs := h.q.All()
	if len(evs) != 3 || evs[1].Log() != body[:1<<20] || evs[1].Record["stream"] != "stderr" || evs[2].Log() != "after" {
		t.Fatalf("%d events", len(evs))
	}
	if n := h.counter("sluice_input_truncated_lines_total"); n != 1 {
		t.Fatalf("truncated %d", n)
	}
	if st, _ := os.Stat(path); f.commit != st.Size() || f.long != nil {
		t.Fatalf("commit %d, size %d", f.commit, st.Size())
	}
}

// TestMalformedEmittedRaw: a line the format rejects is emitted as it is,
// with no stream and the read time, and counted; blank lines are skipped.
func TestMalformedEmittedRaw(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web")
	tailtest.AppendFile(t, path, tl("ok1\n", "stdout")+"garbage\n \t\n\n"+tl("ok2\n", "stdout")+"x y\n")
	in := h.tail(h.cfg())
	must(t, tailtest.Pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), []string{"ok1", "garbage", "ok2", "x y"})
	if e := h.q.All()[1]; e.Record["stream"] != "" || e.Time < time.Now().Add(-time.Minute).UnixNano() {
		t.Fatalf("malformed record %+v", e)
	}
	if n := h.counter("sluice_input_parse_errors_total"); n != 2 {
		t.Fatalf("parse errors %d", n)
	}
	if n := h.counter("sluice_input_lines_total"); n != 6 {
		t.Fatalf("lines %d", n)
	}
}

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestE2E_DropOldest (e): the audit output has a 2 MiB buffer (512 KiB
// segments, drop_oldest) and its receiver is down, so its queue overflows:
// the agent must drop whole old segments, count them in
// sluice_buffer_dropped_*{output="audit"} and log a warning, while app and
// access get every line. When audit's receiver comes back, every line is
// either delivered or counted as dropped: nothing is lost silently.
func TestE2E_DropOldest(t *testing.T) {
	e := newEnv(t, envOptions{
		payload:     200,
		downAtStart: []string{"audit"},
		output: func(o *agentproc.Output) {
			if o.ID == "audit" {
				o.Buffer = agentproc.Buffer{MaxBytes: "2MiB", SegmentBytes: "512KiB", ChunkBytes: "64KiB", Overflow: "drop_oldest"}
			}
		},
	})
	for _, lt := range logTypes {
		if err := e.cont[lt].Write(15000); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	e.generate(context.Background(), 1000, 5*time.Second)
	if !e.waitAll(time.Minute, "app", "access") {
		e.summary()
		e.verify("app", "access")
		t.Fatal("app/access did not get every line while audit overflowed")
	}

	var text string
	deadline := time.Now().Add(30 * time.Second)
	for {
		text = e.metrics()
		if agentproc.MetricSum(text, "sluice_buffer_dropped_chunks_total", `output="audit"`) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	droppedChunks := agentproc.MetricSum(text, "sluice_buffer_dropped_chunks_total", `output="audit"`)
	droppedEvents := agentproc.MetricSum(text, "sluice_buffer_dropped_events_total", `output="audit"`)
	droppedBytes := agentproc.MetricSum(text, "sluice_buffer_dropped_bytes_total", `output="audit"`)
	queueBytes := agentproc.MetricSum(text, "sluice_buffer_bytes", `output="audit"`)
	t.Logf("audit overflow: dropped %v chunks, %v events, %v bytes; queue holds %v bytes (cap 2 MiB)", droppedChunks, droppedEvents, droppedBytes, queueBytes)
	if droppedChunks <= 0 || droppedEvents <= 0 {
		t.Fatalf("no drop counted for audit: %v chunks, %v events", droppedChunks, droppedEvents)
	}
	if queueBytes > 2<<20 {
		t.Errorf("audit queue holds %v bytes, over its 2 MiB cap", queueBytes)
	}
	for _, lt := range []string{"app", "access"} {
		if v := agentproc.MetricSum(text, "sluice_buffer_dropped_chunks_total", `output="`+lt+`"`); v != 0 {
			t.Errorf("%s dropped %v chunks", lt, v)
		}
	}
	warns := agentproc.LogLines(e.logPath, "WARN", "drop")
	if len(warns) == 0 {
		t.Errorf("no WARN log line about dropping")
	} else {
		t.Logf("warn line: %s", warns[0])
		if !strings.Contains(warns[0], "audit") {
			t.Errorf("drop warning does not name the output: %s", warns[0])
		}
	}
	e.verify("app", "access")

	// audit comes back: it gets what was kept; delivered + dropped covers
	// every line.
	if err := e.recv["audit"].Start(); err != nil {
		t.Fatal(err)
	}
	audit, n := e.recv["audit"], e.cont["audit"].Seq()
	deadline = time.Now().Add(time.Minute)
	for {
		text = e.metrics()
		droppedEvents = agentproc.MetricSum(text, "sluice_buffer_dropped_events_total", `output="audit"`)
		pending := agentproc.MetricSum(text, "sluice_buffer_pending_chunks", `output="audit"`)
		if (pending == 0 && audit.Count()+int64(droppedEvents) >= n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := audit.Count()
	t.Logf("audit after recovery: %d of %d lines delivered, %v counted as dropped (%d missing, first %v), %d duplicates",
		got, n, droppedEvents, audit.MissingCount(e.cont["audit"].Src(), int(n)), audit.Missing(e.cont["audit"].Src(), int(n)), audit.Duplicates())
	if got+int64(droppedEvents) < n {
		t.Errorf("audit: %d delivered + %v dropped < %d written: lines lost without being counted", got, droppedEvents, n)
	}
	if got == 0 {
		t.Errorf("audit: nothing delivered after recovery")
	}
	if missing := int64(audit.MissingCount(e.cont["audit"].Src(), int(n))); missing > int64(droppedEvents) {
		t.Errorf("audit: %d lines missing but only %v counted as dropped", missing, droppedEvents)
	}
	e.term(30 * time.Second)
}

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestE2E_SIGTERMOutputsDown: every output's receiver is down, so no queue
// can drain. SIGTERM must still exit 0 as soon as the inputs are stopped and
// the queues synced (well under Docker's 10 s stop timeout), not after the
// whole shutdown grace; the undelivered lines stay queued and are delivered
// after a restart with the receivers up.
func TestE2E_SIGTERMOutputsDown(t *testing.T) {
	const grace = 20 * time.Second
	e := newEnv(t, envOptions{
		payload:       100,
		shutdownGrace: grace,
		downAtStart:   logTypes,
	})
	e.start()
	for _, lt := range logTypes {
		if err := e.cont[lt].Write(500); err != nil {
			t.Fatal(err)
		}
		if err := e.cont[lt].Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Every line read and queued, every server seen down.
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, _ := agentproc.Scrape(e.cfg.MetricsAddr)
		queued := agentproc.MetricSum(m, "sluice_buffer_appended_events_total")
		down := len(agentproc.LogLines(e.logPath, "WARN", "forward server down"))
		if queued >= float64(e.total()) && down >= len(logTypes) {
			break
		}
		if time.Now().After(deadline) || e.proc.Exited() {
			t.Fatalf("lines queued %v of %d, server-down warnings %d", queued, e.total(), down)
		}
		time.Sleep(100 * time.Millisecond)
	}

	took := e.term(grace + 10*time.Second)
	t.Logf("SIGTERM with every output down: exit 0 after %v (grace %v)", took.Round(time.Millisecond), grace)
	if took > 3*time.Second {
		t.Errorf("exit took %v, want < 3s (grace %v must not be waited out)", took, grace)
	}
	if w := agentproc.LogLines(e.logPath, "WARN", "not drained"); len(w) != len(logTypes) {
		t.Errorf("%d 'not drained' warnings, want one per output:\n%s", len(w), strings.Join(w, "\n"))
	}

	// Nothing was lost: with the receivers up, a restart delivers it all.
	for _, lt := range logTypes {
		if err := e.recv[lt].Start(); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	if !e.waitAll(time.Minute, logTypes...) {
		t.Fatal("queued lines not delivered after the restart")
	}
	e.term(grace + 10*time.Second)
	e.verify(logTypes...)
}

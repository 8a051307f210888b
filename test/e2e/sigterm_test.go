package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestE2E_SIGTERM: graceful shutdown. Lines are written at a steady rate;
// the audit receiver goes down shortly before SIGTERM, so audit's queue
// cannot drain. The agent must exit 0 within the grace period (plus a
// margin), persist its offsets at shutdown (the periodic checkpoint is set
// to one minute, so only the final one can have written them), and after a
// restart deliver the rest (including lines written while it was stopped)
// with nothing missing and no duplicates on the outputs that drained.
func TestE2E_SIGTERM(t *testing.T) {
	const (
		rate        = 1000.0
		grace       = 3 * time.Second
		maxInFlight = 4
	)
	e := newEnv(t, envOptions{
		payload:       200,
		shutdownGrace: grace,
		checkpoint:    time.Minute,
		output:        func(o *agentproc.Output) { o.MaxInFlight = maxInFlight; o.Buffer.ChunkBytes = "64KiB" },
	})
	e.start()
	ctx := context.Background()
	e.generate(ctx, rate, 4*time.Second)
	e.recv["audit"].Stop()
	e.generate(ctx, rate, 2*time.Second)
	// Let the healthy outputs catch up, so what is left at SIGTERM is audit's
	// backlog only (drained outputs must not resend anything).
	if !e.waitAll(time.Minute, "app", "access") {
		t.Fatal("app/access did not catch up before SIGTERM")
	}
	auditBefore := e.recv["audit"].Count()

	sent := time.Now()
	took := e.term(grace + 10*time.Second)
	t.Logf("SIGTERM: exit 0 after %v (grace %v, audit receiver down with %d of %d lines delivered)",
		took.Round(time.Millisecond), grace, auditBefore, e.cont["audit"].Seq())
	if took > grace+5*time.Second {
		t.Errorf("exit took %v, more than grace %v + 5s", took, grace)
	}
	state := filepath.Join(e.cfg.DataDir, "inputs", "containers", "offsets.json")
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatalf("offsets not persisted: %v", err)
	}
	if fi.ModTime().Before(sent.Add(-time.Second)) {
		t.Errorf("offsets file last written at %v, before SIGTERM at %v: no final checkpoint", fi.ModTime(), sent)
	}
	if w := agentproc.LogLines(e.logPath, "WARN", "not drained"); len(w) == 0 {
		t.Errorf("no warning about audit's undrained queue")
	} else {
		t.Logf("warn line: %s", w[0])
	}
	if l := agentproc.LogLines(e.logPath, "INFO", "agent stopped"); len(l) != 1 {
		t.Errorf("want one 'agent stopped' log line, got %d", len(l))
	}
	dupsBefore := map[string]int64{}
	for _, lt := range logTypes {
		dupsBefore[lt] = e.recv[lt].Duplicates()
	}

	// While stopped: more lines; then everything comes back.
	for _, lt := range logTypes {
		if err := e.cont[lt].Write(2000); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.recv["audit"].Start(); err != nil {
		t.Fatal(err)
	}
	e.start()
	if !e.waitAll(time.Minute) {
		e.summary()
		e.verify()
		t.Fatal("restart did not deliver the rest")
	}
	e.term(30 * time.Second)
	e.verify()
	for _, lt := range []string{"app", "access"} {
		if d := e.recv[lt].Duplicates() - dupsBefore[lt]; d != 0 {
			t.Errorf("%s: %d duplicates after a graceful restart of a drained output (offsets or acks not persisted exactly)", lt, d)
		}
	}
	// audit: only chunks in flight when its receiver died may come twice.
	bound := int64(maxInFlight * (64<<10/200 + 1))
	d := e.recv["audit"].Duplicates()
	t.Logf("audit: %d duplicates (bound: %d in flight x %d events)", d, maxInFlight, 64<<10/200+1)
	if d > bound {
		t.Errorf("audit: %d duplicates > bound %d", d, bound)
	}
}

package e2e

import (
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestE2E_Million (a): 1,000,000 pre-generated json-file lines (override
// with SLUICE_E2E_LINES) in three containers, one per log type, routed by
// the payload's log_type to three receivers. Every line must arrive. The
// audit output compresses with gzip (decoded by the IBM peer); the others
// send plain PackedForward.
func TestE2E_Million(t *testing.T) {
	lines := envInt("SLUICE_E2E_LINES", 1_000_000)
	e := newEnv(t, envOptions{payload: 200, output: func(o *agentproc.Output) {
		if o.ID == "audit" {
			o.Compress = "gzip"
		}
	}})
	t0 := time.Now()
	for i, lt := range logTypes {
		n := lines / len(logTypes)
		if i < lines%len(logTypes) {
			n++
		}
		if err := e.cont[lt].Write(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("generated %d lines in %v", e.total(), time.Since(t0).Round(time.Millisecond))

	start := time.Now()
	e.start()
	if !e.waitAll(4 * time.Minute) {
		e.summary()
		e.verify()
		t.Fatalf("not every line delivered within 4 minutes")
	}
	el := time.Since(start)
	cpu, _ := e.proc.CPU()
	_, peak, _ := e.proc.RSS()
	text := e.metrics()
	took := e.term(30 * time.Second)
	u := e.proc.Usage()
	t.Logf("%d lines delivered in %v: %.0f lines/s; agent CPU %v (%.2f µs/line) at delivery, %v total; peak RSS %.1f MiB (VmHWM at delivery %.1f MiB); SIGTERM exit in %v",
		e.total(), el.Round(time.Millisecond), float64(e.total())/el.Seconds(), cpu, float64(cpu.Microseconds())/float64(e.total()),
		u.CPU(), float64(u.MaxRSS)/(1<<20), float64(peak)/(1<<20), took.Round(time.Millisecond))
	if v := e.metric(text, `sluice_events_unrouted_total`); v != 0 {
		t.Errorf("unrouted events: %v", v)
	}
	e.verify()
}

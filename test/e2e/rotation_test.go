package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
)

// TestE2E_Rotation (d): the app container rotates by rename, access by
// copytruncate, audit by rename at another period, every few thousand
// lines while the agent runs; then the agent is stopped (SIGTERM), each
// container rotates again (app twice) and writes more, and the agent is
// restarted. Nothing may be missing.
func TestE2E_Rotation(t *testing.T) {
	const rate = 1000.0
	e := newEnv(t, envOptions{
		payload: 200,
		containers: map[string]loggen.Options{
			"app":    {Rotate: loggen.Rename, RotateEvery: 2000, MaxFiles: 5},
			"access": {Rotate: loggen.CopyTruncate, RotateEvery: 2000, MaxFiles: 5},
			"audit":  {Rotate: loggen.Rename, RotateEvery: 3000, MaxFiles: 5},
		},
	})
	e.start()
	ctx := context.Background()
	e.generate(ctx, rate, 10*time.Second)
	if !e.waitAll(time.Minute) {
		e.summary()
		e.verify()
		t.Fatal("phase 1 (rotation while running): not every line delivered")
	}
	rotRunning := map[string]int{}
	for _, lt := range logTypes {
		rotRunning[lt] = e.cont[lt].Rotations()
	}
	took := e.term(30 * time.Second)
	t.Logf("phase 1: %d lines with rotations app %d (rename), access %d (copytruncate), audit %d (rename), all delivered; SIGTERM exit in %v",
		e.total(), rotRunning["app"], rotRunning["access"], rotRunning["audit"], took.Round(time.Millisecond))

	// While stopped: write, rotate, write (app: two renames, so the file
	// being read when the agent stopped is now .2).
	step := func(lt string, f func(c *loggen.Container) error) {
		t.Helper()
		if err := f(e.cont[lt]); err != nil {
			t.Fatal(err)
		}
	}
	write := func(n int) func(c *loggen.Container) error {
		return func(c *loggen.Container) error { return c.Write(n) }
	}
	for _, lt := range logTypes {
		step(lt, write(700))
	}
	step("app", (*loggen.Container).Rotate)
	step("access", (*loggen.Container).CopyTruncate)
	step("audit", (*loggen.Container).Rotate)
	for _, lt := range logTypes {
		step(lt, write(600))
	}
	step("app", (*loggen.Container).Rotate)
	step("app", write(300))
	for _, lt := range logTypes {
		t.Logf("%s: %d rotations while stopped; %d lines written in total", lt, e.cont[lt].Rotations()-rotRunning[lt], e.cont[lt].Seq())
	}

	e.start()
	e.generate(ctx, rate, 4*time.Second)
	if !e.waitAll(time.Minute) {
		e.summary()
		e.verify()
		t.Fatal("phase 2 (rotation while stopped): not every line delivered")
	}
	text := e.metrics()
	e.term(30 * time.Second)
	t.Logf("rotations seen by the agent since restart: %v; lost-bytes metric %v",
		agentproc.MetricSum(text, "sluice_input_rotations_total"), agentproc.MetricSum(text, "sluice_input_files_lost_bytes_total"))
	if v := agentproc.MetricSum(text, "sluice_input_files_lost_bytes_total"); v != 0 {
		t.Errorf("agent reports %v bytes lost", v)
	}
	e.verify()
}

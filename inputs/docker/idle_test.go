package docker

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// cpuTime returns the CPU time (user and system) this process used so far.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleCPUManyFiles: with 3,000 containers, each with a small log
// already read, the idle input (default poll and checkpoint intervals)
// uses under 2% of one core. The window is the fallback scan's period
// (10 × PollInterval while every directory is watched), so it always
// includes one full scan of the 3,000 directories; in between, only
// inotify and the checkpoint ticker run. SLUICE_IDLE_WINDOW overrides it.
func TestIdleCPUManyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 15 s: skipped with -short")
	}
	const containers = 3000
	h := newHarness(t)
	for i := range containers {
		path := h.container(fmt.Sprintf("%064x", i+1), fmt.Sprintf("/c%d", i), map[string]string{"app": "x"})
		data, _ := lines("x", 0, 3)
		tailtest.AppendFile(t, path, data)
	}
	stop := tailtest.Start(t, h.input(config.DockerInput{Root: h.root}))
	h.waitEvents(3 * containers)
	time.Sleep(2 * time.Second) // first checkpoint written, caches warm
	window := 10 * DefaultPollInterval
	if s := os.Getenv("SLUICE_IDLE_WINDOW"); s != "" {
		var err error
		if window, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	c0, w0 := cpuTime(t), time.Now()
	time.Sleep(window)
	used, wall := cpuTime(t)-c0, time.Since(w0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pct := 100 * used.Seconds() / wall.Seconds()
	t.Logf("idle with %d files: %v CPU in %v: %.2f%% of one core", containers, used, wall.Round(time.Millisecond), pct)
	if pct > 2 {
		t.Fatalf("idle CPU %.2f%% of one core, want under 2%%", pct)
	}
}

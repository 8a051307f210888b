package dockertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestJSONFileRotation runs containers with the json-file driver,
// --log-opt max-size=1m --log-opt max-file=3, logging fast enough for
// dockerd to rotate each log several times, and the agent's docker input
// over the real /var/lib/docker/containers: every line is delivered
// through dockerd's own rotations.
//
// With max-file=3 dockerd deletes the oldest file at each rotation, so a
// file exists for two rotation periods after it stops being the live one;
// an agent that fell that far behind would lose lines on Docker's side.
// The generator is rate-limited so that period (about 1.2 s at the rate
// below) is many times the agent's poll interval (200 ms) and its read time.
func TestJSONFileRotation(t *testing.T) {
	requireDocker(t)
	e := newEnv(t, envOptions{docker: true})
	e.start()

	const (
		containers = 3
		rate       = 3000 // lines per second per container
		n          = 8000 // sequences per type: 24,000 lines, 8 s per container
	)
	var specs []spec
	x := expect{}
	for i := range containers {
		s := spec{name: fmt.Sprintf("rot%d", i), driver: "json-file",
			logOpts: []string{"max-size=1m", "max-file=3"},
			args:    []string{"-n", fmt.Sprint(n), "-rate", fmt.Sprint(rate)}}
		specs = append(specs, s)
		x.add(s, n)
	}
	t0 := time.Now()
	cs := mustRun(t, containers, specs...)

	// Watch each live log file: an inode change is one rotation by dockerd.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	rotations := make([]int, len(cs))
	maxFiles := make([]int, len(cs))
	for i, c := range cs {
		logPath, err := dockerCmd(ctx, "inspect", "-f", "{{.LogPath}}", c.id)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if !strings.HasPrefix(logPath, "/var/lib/docker/containers/") {
			cancel()
			t.Fatalf("%s logs to %s, outside the agent's root", c.name, logPath)
		}
		wg.Go(func() { rotations[i], maxFiles[i] = watchRotations(ctx, logPath) })
	}
	if err := waitExit(cs, 3*time.Minute); err != nil {
		cancel()
		t.Fatal(err)
	}
	written := time.Since(t0)
	ok := e.waitDelivered(x, 2*time.Minute)
	took := time.Since(t0)
	cancel()
	wg.Wait()
	if !ok {
		t.Errorf("not everything delivered within 2 min")
	}
	e.checkDelivered(x, nil)
	for i, c := range cs {
		t.Logf("%s: dockerd rotated its log %d times (up to %d files seen at once)", c.name, rotations[i], maxFiles[i])
		if rotations[i] < 3 {
			t.Errorf("%s: only %d rotations; the test needs several", c.name, rotations[i])
		}
	}
	bytes := e.metric(`sluice_input_bytes_total{input="containers"}`)
	lines := e.metric(`sluice_input_lines_total{input="containers"}`)
	lineBytes := bytes / max(lines, 1) // json-file line: payload, escapes, stream, time
	t.Logf("%d containers x %d lines/s of %.0f bytes in json-file (%.2f MiB/s each; a 1 MiB file is live %.2f s and kept %.2f s more): "+
		"%d lines written in %v, all delivered %v after the first start; agent read %.0f lines, saw %v rotations, lost bytes %v",
		containers, rate, lineBytes, float64(rate)*lineBytes/(1<<20), (1<<20)/(float64(rate)*lineBytes), 2*(1<<20)/(float64(rate)*lineBytes),
		x.total(), written.Round(time.Millisecond), took.Round(time.Millisecond), lines,
		e.metric(`sluice_input_rotations_total{input="containers"}`), e.metric(`sluice_input_files_lost_bytes_total{input="containers"}`))
	if lost := e.metric(`sluice_input_files_lost_bytes_total{input="containers"}`); lost > 0 {
		t.Errorf("agent reports %v bytes lost to deleted files", lost)
	}
}

// watchRotations polls logPath until ctx ends and returns how often its
// inode changed and the most <logPath>* files seen at once.
func watchRotations(ctx context.Context, logPath string) (rotations, maxFiles int) {
	var last uint64
	for {
		if st, err := os.Stat(logPath); err == nil {
			ino := st.Sys().(*syscall.Stat_t).Ino
			if last != 0 && ino != last {
				rotations++
			}
			last = ino
		}
		if m, _ := filepath.Glob(logPath + "*"); len(m) > maxFiles {
			maxFiles = len(m)
		}
		select {
		case <-ctx.Done():
			return rotations, maxFiles
		case <-time.After(20 * time.Millisecond):
		}
	}
}

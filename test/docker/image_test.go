package dockertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestImageDefaultConfig (issue 11 part 6): the image built by
// deploy/build-image.sh (the offline path; the multi-stage Dockerfile has
// the same final stage, test/deploy TestDockerfilesAgree), run with no
// argument and no environment, i.e. its own default config, starts and
// serves /readyz (checked with `docker exec <c> /sluice health --ready`:
// the image is FROM scratch, its metrics address is the container's
// loopback), and `docker stop` (SIGTERM, SIGKILL after Docker's default
// 10 s) returns in under 10 s with exit code 0, although none of its
// aggregators resolves here. The same as the non-root user 65532: it owns
// the data and socket directories of the image.
func TestImageDefaultConfig(t *testing.T) {
	requireDocker(t)
	root, err := agentproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tag := "sluice-imagetest:" + runID
	t0 := time.Now()
	build := exec.Command("bash", "deploy/build-image.sh", tag)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build-image.sh: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", tag, time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = dockerCmd(ctx, "rmi", "-f", tag)
		_ = os.RemoveAll(filepath.Join(root, "build", "rootfs"))
	})
	for _, c := range []struct{ name, user, uid string }{
		{"root", "", "0"},
		{"nonroot", "65532:65532", "65532"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := []string{"run", "-d", "--label", labelKey + "=" + runID}
			if c.user != "" {
				args = append(args, "--user", c.user)
			}
			start := time.Now()
			id, err := dockerCmd(ctx, append(args, tag)...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _, _ = dockerCmd(context.Background(), "rm", "-f", id) }()
			var ready time.Duration
			for deadline := time.Now().Add(30 * time.Second); ; {
				if _, err := dockerCmd(ctx, "exec", id, "/sluice", "health", "--ready"); err == nil {
					ready = time.Since(start)
					break
				} else if time.Now().After(deadline) {
					logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
					t.Fatalf("not ready after 30 s: %v\n%s", err, logs)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if st, _ := dockerCmd(ctx, "inspect", "-f", "{{.State.Status}}", id); st != "running" {
				t.Fatalf("state %q after ready", st)
			}
			pid, err := dockerCmd(ctx, "inspect", "-f", "{{.State.Pid}}", id)
			if err != nil {
				t.Fatal(err)
			}
			if status, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
				if uid := procUID(string(status)); uid != c.uid {
					t.Errorf("agent runs as uid %s, want %s", uid, c.uid)
				}
			}
			t0 := time.Now()
			if _, err := dockerCmd(ctx, "stop", id); err != nil {
				t.Fatal(err)
			}
			stop := time.Since(t0)
			state, err := dockerCmd(ctx, "inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", id)
			if err != nil {
				t.Fatal(err)
			}
			logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
			if state != "0 false" || stop >= 10*time.Second {
				t.Fatalf("docker stop took %v, exit code and OOMKilled %q (want < 10s, \"0 false\")\n%s", stop, state, logs)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(logs)), "\n") {
				if !strings.HasPrefix(l, "{") {
					t.Errorf("log line is not JSON: %q", l)
				}
			}
			t.Logf("user %q: ready (/readyz) %v after docker run; docker stop %v, exit 0", c.uid, ready.Round(time.Millisecond), stop.Round(time.Millisecond))
		})
	}
}

// procUID returns the real uid of a /proc/<pid>/status text.
func procUID(status string) string {
	for _, l := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return fmt.Sprintf("? (%d bytes of status)", len(status))
}

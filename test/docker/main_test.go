// Package dockertest proves issue 3 on the real Docker Engine of the
// machine: containers started with `docker run --log-driver=fluentd` (TCP
// and unix socket) and with the json-file driver log through the real agent
// binary (cmd/agent, run as a host process) to Forward receivers on
// 127.0.0.1 that check every sequence number. See README.md.
//
// TestMain builds the agent and the log generator image (loggen, a static
// binary in a FROM-scratch image: no image is pulled) once. Without a
// reachable Docker daemon every test is skipped, or, when
// SLUICE_REQUIRE_DOCKER=1 (CI), the package fails with the reason. Every
// container carries the label sluice.dockertest=<run id> and is removed by
// its test and again, by label, when the package ends.
package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

const (
	// image is the log generator image built by TestMain.
	image = "sluice-loggen:test"
	// labelKey marks every container this package starts.
	labelKey = "sluice.dockertest"
)

var (
	// agentBin is the agent binary built by TestMain.
	agentBin string
	// runID is unique per package run; container names start with "sd"+runID.
	runID string
	// skipReason is set when Docker is unavailable and not required.
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if testing.Short() {
		skipReason = "Docker-engine tests are not run with -short"
		return m.Run()
	}
	if reason := dockerUnavailable(); reason != "" {
		if os.Getenv("SLUICE_REQUIRE_DOCKER") == "1" {
			fmt.Fprintf(os.Stderr, "dockertest: SLUICE_REQUIRE_DOCKER=1 but the Docker daemon is not usable: %s\n", reason)
			return 1
		}
		skipReason = "Docker daemon not usable (set SLUICE_REQUIRE_DOCKER=1 to fail instead): " + reason
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sluice-dockertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockertest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	var id [3]byte
	_, _ = rand.Read(id[:])
	runID = hex.EncodeToString(id[:])

	t0 := time.Now()
	if agentBin, err = agentproc.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "dockertest:", err)
		return 1
	}
	if err := buildImage(filepath.Join(dir, "image")); err != nil {
		fmt.Fprintln(os.Stderr, "dockertest:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "dockertest: run %s: built agent and %s in %v\n", runID, image, time.Since(t0).Round(time.Millisecond))
	code := m.Run()
	removeByLabel(labelKey + "=" + runID)
	return code
}

// dockerUnavailable returns why the daemon cannot be used, or "".
func dockerUnavailable() string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "docker CLI not found in PATH"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("docker version: %v: %s", err, bytes.TrimSpace(out))
	}
	return ""
}

// buildImage compiles test/docker/loggen statically into ctxDir and builds
// the FROM-scratch image around it (no pull needed).
func buildImage(ctxDir string) error {
	root, err := agentproc.ModuleRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "loggen"), "./test/docker/loggen")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build loggen: %w\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY loggen /loggen\nENTRYPOINT [\"/loggen\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", "build", "-q", "-t", image, ctxDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build: %w\n%s", err, out)
	}
	return nil
}

// requireDocker skips the test when the daemon is unavailable.
func requireDocker(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// dockerCmd runs the docker CLI and returns its trimmed stdout; the error
// carries stderr.
func dockerCmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %w: %s", args[0], err, msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

func removeByLabel(label string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids, err := dockerCmd(ctx, "ps", "-aq", "--filter", "label="+label)
	if err != nil || ids == "" {
		return
	}
	_, _ = dockerCmd(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
}

// spec is one container to start from the loggen image.
type spec struct {
	// name is the short name; the container is named "sd<runID>-<name>",
	// which is also loggen's -src, so sources are "<container name>-<type>".
	name string
	// driver is "fluentd" or "json-file".
	driver  string
	logOpts []string // key=value
	// args are loggen flags (-src is added).
	args []string
	// mounts are -v host:container bindings.
	mounts []string
}

// containerName is the Docker name of s.
func (s spec) containerName() string { return "sd" + runID + "-" + s.name }

// started is a container started by run.
type started struct {
	spec
	id   string
	took time.Duration // latency of `docker run -d`
	err  error
}

// run starts every spec with `docker run -d` (at most parallel at once),
// measuring each command's latency. Containers that started are removed
// when the test ends.
func run(t *testing.T, parallel int, specs ...spec) []started {
	t.Helper()
	out := make([]started, len(specs))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := []string{"run", "-d", "--name", s.containerName(), "--label", labelKey + "=" + runID, "--log-driver", s.driver}
			for _, o := range s.logOpts {
				args = append(args, "--log-opt", o)
			}
			for _, m := range s.mounts {
				args = append(args, "-v", m)
			}
			args = append(args, image, "-src", s.containerName())
			args = append(args, s.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			t0 := time.Now()
			id, err := dockerCmd(ctx, args...)
			out[i] = started{spec: s, id: id, took: time.Since(t0), err: err}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		var ids []string
		for _, s := range out {
			// A failed `docker run` may still have created the container.
			ids = append(ids, s.containerName())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = dockerCmd(ctx, append([]string{"rm", "-f"}, ids...)...)
	})
	return out
}

// mustRun is run that fails the test if any container did not start.
func mustRun(t *testing.T, parallel int, specs ...spec) []started {
	t.Helper()
	cs := run(t, parallel, specs...)
	for _, c := range cs {
		if c.err != nil {
			t.Fatalf("container %s did not start: %v", c.name, c.err)
		}
	}
	return cs
}

// waitExit waits until every container exited and returns an error naming
// those that did not exit 0 in time.
func waitExit(cs []started, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, c := range cs {
		if c.err != nil {
			continue
		}
		code, err := dockerCmd(ctx, "wait", c.id)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		} else if code != "0" {
			logs, _ := dockerCmd(context.Background(), "inspect", "-f", "{{.State.Error}}", c.id)
			errs = append(errs, fmt.Errorf("%s exited %s %s", c.name, code, logs))
		}
	}
	return errors.Join(errs...)
}

// latencies summarises the `docker run -d` latencies of cs.
type latencies struct {
	n                int
	median, max, min time.Duration
}

func (l latencies) String() string {
	return fmt.Sprintf("n=%d median %v min %v max %v", l.n, l.median.Round(time.Millisecond),
		l.min.Round(time.Millisecond), l.max.Round(time.Millisecond))
}

func summarize(cs []started) latencies {
	var d []time.Duration
	for _, c := range cs {
		if c.err == nil {
			d = append(d, c.took)
		}
	}
	if len(d) == 0 {
		return latencies{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return latencies{n: len(d), median: d[len(d)/2], min: d[0], max: d[len(d)-1]}
}

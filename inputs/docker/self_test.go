package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// TestSkipsOwnContainer: the agent's own container (here named by the
// override) is never read, so its output lines do not come back as input
// (issue 12.5); the other containers are read as usual.
func TestSkipsOwnContainer(t *testing.T) {
	t.Setenv(EnvSelfContainerID, idA)
	h := newHarness(t)
	pa := h.container(idA, "/sluice", nil)
	pb := h.container(idB, "/web", nil)
	data, _ := lines("self", 0, 50)
	tailtest.AppendFile(t, pa, data)
	data, want := lines("b", 0, 20)
	tailtest.AppendFile(t, pb, data)
	stop := tailtest.Start(t, h.input(testCfg(h.root)))
	h.waitEvents(20)
	time.Sleep(300 * time.Millisecond) // a poll or two: the own container stays unread
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byTag := h.q.LogsBy(func(e tailtest.Event) string { return e.Tag })
	if len(byTag["docker.sluice"]) != 0 {
		t.Fatalf("read %d lines of the agent's own container", len(byTag["docker.sluice"]))
	}
	tailtest.EqualStrings(t, byTag["docker.web"], want)
}

func TestSelfContainerIDFromProc(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for name, line := range map[string]string{
		"mountinfo": "1234 1200 8:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw",
		"cgroup v1": "12:memory:/docker/" + id,
		"systemd":   "0::/system.slice/docker-" + id + ".scope",
	} {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, []byte("0::/\n"+line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := scanContainerID(p); got != id {
			t.Errorf("%s: got %q", name, got)
		}
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("0::/user.slice/session-1.scope\n"), 0o644)
	if got := scanContainerID(p); got != "" {
		t.Errorf("on the host: got %q", got)
	}
	t.Setenv(EnvSelfContainerID, "none")
	if got := selfContainerID(); got != "" {
		t.Errorf("none: got %q", got)
	}
}

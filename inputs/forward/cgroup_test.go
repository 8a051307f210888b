package forward

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-agent/sluice/config"
)

// fakeFS writes files (path -> content) under a temporary root.
func fakeFS(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	v2Mount = "30 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
	v1Mount = "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
		"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
)

func TestContainerMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{"v2 in a container (cgroup namespace)", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"proc/self/mountinfo":      v2Mount,
			"sys/fs/cgroup/memory.max": "268435456\n",
		}, 256 << 20, true},
		{"v2 no limit", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"proc/self/mountinfo":      v2Mount,
			"sys/fs/cgroup/memory.max": "max\n",
		}, 0, false},
		{"v2 host view: the pod's limit above the container's", map[string]string{
			"proc/self/cgroup":                           "0::/kubepods/pod1/ctr\n",
			"proc/self/mountinfo":                        v2Mount,
			"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":     "536870912\n",
			"sys/fs/cgroup/kubepods/memory.max":          "max\n",
		}, 512 << 20, true},
		{"v1 docker (mount root is the container's cgroup)", map[string]string{
			"proc/self/cgroup":                           "4:memory:/docker/abc\n1:cpu:/docker/abc\n",
			"proc/self/mountinfo":                        "34 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "134217728\n",
		}, 128 << 20, true},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                           "4:memory:/process_api/x\n",
			"proc/self/mountinfo":                        v1Mount,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, false},
		{"hybrid: v1 memory, v2 without memory controller", map[string]string{
			"proc/self/cgroup": "4:memory:/a\n0::/\n",
			"proc/self/mountinfo": v1Mount +
				"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/memory/a/memory.limit_in_bytes": "1073741824\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":   "9223372036854771712\n",
		}, 1 << 30, true},
		{"no cgroup files", map[string]string{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := memoryLimit(fakeFS(t, tc.files))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestDefaultMemoryBudget: a quarter of the limit, within bounds; the
// input uses it when max_buffered_bytes is 0, and refuses less than 1 MiB.
func TestDefaultMemoryBudget(t *testing.T) {
	b, limit := DefaultMemoryBudget()
	switch {
	case limit == 0 && b != noLimitBudget:
		t.Errorf("no limit: budget %d, want %d", b, noLimitBudget)
	case limit > 0 && int64(b) != min(max(limit/4, minDefaultBudget), maxDefaultBudget):
		t.Errorf("limit %d: budget %d", limit, b)
	}
	in, _ := newInput(t, config.ForwardInput{}, &fakeQueue{})
	if in.cfg.MaxBufferedBytes != b || in.mem.total != int64(b) {
		t.Errorf("input budget %d (%d), want the default %d", in.cfg.MaxBufferedBytes, in.mem.total, b)
	}
	if _, err := New("fw", config.ForwardInput{MaxBufferedBytes: 1000}, newRouter(t, &fakeQueue{}), nil, nil); err == nil {
		t.Error("max_buffered_bytes 1000 accepted")
	}
}

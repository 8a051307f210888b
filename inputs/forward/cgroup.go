package forward

import (
	"bufio"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Default memory budget (max_buffered_bytes 0): a quarter of the
// container's memory limit, between minMemoryBudget and maxDefaultBudget,
// or noLimitBudget when the agent runs without a memory limit.
const (
	minMemoryBudget  = 1 << 20   // the smallest max_buffered_bytes accepted
	minDefaultBudget = 4 << 20   // the default is never smaller
	maxDefaultBudget = 1 << 30   // nor larger
	noLimitBudget    = 256 << 20 // the default without a limit
)

// DefaultMemoryBudget returns the default max_buffered_bytes and the
// container memory limit it was sized from (0: none found).
func DefaultMemoryBudget() (budget int, limit int64) {
	limit, ok := ContainerMemoryLimit()
	if !ok {
		return noLimitBudget, 0
	}
	return int(min(max(limit/4, minDefaultBudget), maxDefaultBudget)), limit
}

// ContainerMemoryLimit returns the memory limit of the cgroup the process
// runs in: cgroup v2 memory.max, or cgroup v1 memory.limit_in_bytes, the
// smallest along the path from the process's cgroup up to the root of the
// mounted hierarchy (a parent's limit applies to its children). ok is false
// if there is none ("max", or v1's "unlimited" value near 2^63) or it
// cannot be read.
func ContainerMemoryLimit() (limit int64, ok bool) {
	return memoryLimit("/")
}

// noLimit: v1 reports "unlimited" as the largest page-aligned int64;
// anything from 2^62 on is treated as no limit.
const noLimit = 1 << 62

// memoryLimit is ContainerMemoryLimit with /proc and /sys under root.
func memoryLimit(root string) (int64, bool) {
	cgroups, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	var v1Path, v2Path string
	hasV2 := false
	for _, line := range strings.Split(string(cgroups), "\n") {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path, hasV2 = parts[2], true
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl == "memory" {
				v1Path = parts[2]
			}
		}
	}
	mounts, err := os.Open(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return 0, false
	}
	defer mounts.Close()
	best, found := int64(0), false
	consider := func(l int64, ok bool) {
		if ok && (!found || l < best) {
			best, found = l, true
		}
	}
	sc := bufio.NewScanner(mounts)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mount-point options [optional...] - fstype source super-options
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(f) {
			continue
		}
		mroot, mpoint, fstype := unescapeMount(f[3]), unescapeMount(f[4]), f[sep+1]
		switch {
		case fstype == "cgroup2" && hasV2:
			consider(walkLimit(root, mpoint, mroot, v2Path, "memory.max"))
		case fstype == "cgroup" && v1Path != "" && hasOption(f[sep+3], "memory"):
			consider(walkLimit(root, mpoint, mroot, v1Path, "memory.limit_in_bytes"))
		}
	}
	return best, found
}

// walkLimit reads file in the directory of cgroup cg (a path in the
// hierarchy mounted at mpoint, whose root there is mroot) and in each of
// its parents up to the mount point, and returns the smallest limit found.
// A cgroup outside the mounted part (a container that sees only its own
// subtree) is read from the mount point.
func walkLimit(root, mpoint, mroot, cg, file string) (int64, bool) {
	rel := "/"
	if r := path.Clean(mroot); r == "/" {
		rel = path.Clean("/" + cg)
	} else if c := path.Clean("/" + cg); c == r || strings.HasPrefix(c, r+"/") {
		rel = "/" + strings.TrimPrefix(c[len(r):], "/")
	}
	best, found := int64(0), false
	for dir := rel; ; dir = path.Dir(dir) {
		if l, ok := readLimit(filepath.Join(root, mpoint, dir, file)); ok && (!found || l < best) {
			best, found = l, true
		}
		if dir == "/" {
			break
		}
	}
	return best, found
}

// readLimit reads a memory.max or memory.limit_in_bytes file.
func readLimit(name string) (int64, bool) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= noLimit {
		return 0, false
	}
	return n, true
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

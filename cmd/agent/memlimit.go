package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/sluice-agent/sluice/inputs/forward"
)

// goMemLimitTenths is the share, in tenths, of the container's memory
// limit given to the Go runtime as its soft memory limit (GOMEMLIMIT): the
// garbage collector works harder as the heap nears it, instead of letting
// garbage grow to twice the live heap (GOGC=100) and the kernel OOM-kill
// the pod. The rest is headroom for what the runtime does not count (the
// binary, kernel socket buffers charged to the pod).
const goMemLimitTenths = 9

// containerMemoryLimit finds the limit; tests replace it.
var containerMemoryLimit = forward.ContainerMemoryLimit

// setMemoryLimit sets the Go runtime's soft memory limit to 90% of the
// container's memory limit (cgroup v2 memory.max or v1
// memory.limit_in_bytes), unless GOMEMLIMIT is set in the environment
// (then the runtime already applied it) or there is no limit. It logs once
// what it did.
func setMemoryLimit(log *slog.Logger) {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v, "bytes", debug.SetMemoryLimit(-1))
		return
	}
	limit, ok := containerMemoryLimit()
	if !ok {
		log.Info("no container memory limit found; GOMEMLIMIT not set")
		return
	}
	soft := limit / 10 * goMemLimitTenths // 90%
	debug.SetMemoryLimit(soft)
	log.Info("GOMEMLIMIT set from the container's memory limit", "cgroup_limit_bytes", limit, "gomemlimit_bytes", soft)
}

package main

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestSetMemoryLimit: without GOMEMLIMIT in the environment the runtime's
// soft limit becomes 90% of the container's limit, logged once; with it,
// or without a container limit, the runtime's limit is left alone.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	env, had := os.LookupEnv("GOMEMLIMIT")
	os.Unsetenv("GOMEMLIMIT")
	t.Cleanup(func() {
		if had {
			os.Setenv("GOMEMLIMIT", env)
		}
	})
	orig := containerMemoryLimit
	t.Cleanup(func() { containerMemoryLimit = orig })

	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	containerMemoryLimit = func() (int64, bool) { return 256 << 20, true }
	setMemoryLimit(log)
	if got, want := debug.SetMemoryLimit(-1), int64(256<<20)/10*9; got != want {
		t.Errorf("memory limit %d, want %d", got, want)
	}
	if n := strings.Count(out.String(), "GOMEMLIMIT set from the container's memory limit"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, out.String())
	}

	debug.SetMemoryLimit(math.MaxInt64)
	containerMemoryLimit = func() (int64, bool) { return 0, false }
	setMemoryLimit(log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("no container limit: memory limit set to %d", got)
	}

	t.Setenv("GOMEMLIMIT", "100MiB")
	containerMemoryLimit = func() (int64, bool) { return 256 << 20, true }
	setMemoryLimit(log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: memory limit changed to %d", got)
	}
}

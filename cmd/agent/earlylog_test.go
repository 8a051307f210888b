package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestEarlyLogInitFirst: in the agent binary the earlylog package is
// initialized before VictoriaMetrics/metrics, whose init may log.Printf a
// plain-text line about PSI files (so that line comes out as JSON), and
// every line the binary prints on stderr is JSON.
func TestEarlyLogInitFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent")
	}
	bin := t.TempDir() + "/agent"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	early, metrics := -1, -1
	for i, l := range strings.Split(stderr.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "init github.com/sluice-agent/sluice/cmd/agent/internal/earlylog "):
			early = i
		case strings.HasPrefix(l, "init github.com/VictoriaMetrics/metrics "):
			metrics = i
		}
	}
	if early < 0 || metrics < 0 || early > metrics {
		t.Fatalf("init order: earlylog at line %d, metrics at line %d (want earlylog first):\n%s", early, metrics, stderr.String())
	}
}

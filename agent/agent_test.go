package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNewFailureClosesQueues: when a later component cannot be built, New
// returns the error (no panic) and releases the buffers it already opened,
// so a corrected retry can open them again.
func TestNewFailureClosesQueues(t *testing.T) {
	dir := t.TempDir()
	yml := "data_dir: " + dir + `
inputs:
  - id: in
    type: docker
    root: ` + dir + `/containers
outputs:
  - id: a
    type: stdout
  - id: b
    type: stdout
default_output: a
`
	cfg, err := config.Parse([]byte(yml), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Output b's buffer directory is a plain file: its Open fails.
	os.MkdirAll(filepath.Join(dir, "buffer"), 0o755)
	bad := filepath.Join(dir, "buffer", "b")
	if err := os.WriteFile(bad, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "output b") {
		t.Fatalf("New: %v, want an error naming output b", err)
	}
	os.Remove(bad)
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("second New (queue a must have been released): %v", err)
	}
	a.closeQueues()
}

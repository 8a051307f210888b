package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchCRISmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-mode", "cri", "-lines", "3000", "-payload", "150", "-runs", "1"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "mode cri") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
	if f := strings.Fields(lines[2]); len(f) != 9 || f[1] != "3000" || f[8] != "0" {
		t.Fatalf("bad row %q", lines[2])
	}
	t.Log("\n" + out.String())
}

package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-agent/sluice/config"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "sluice ") {
		t.Fatalf("code %d, out %q", code, out.String())
	}
	if code := run([]string{"nope"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: code %d", code)
	}
}

func TestValidate(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "--config", "../../deploy/agent.yml"}, &out, &errb); code != 0 {
		t.Fatalf("deploy/agent.yml: code %d: %s", code, errb.String())
	}
	// An explicit insecure listener validates, with a warning.
	insecure := filepath.Join(t.TempDir(), "insecure.yml")
	os.WriteFile(insecure, []byte("inputs:\n  - id: f\n    type: forward\n    listen: 0.0.0.0:24224\n    insecure_listen: true\noutputs: [{id: o, type: stdout}]\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"validate", "--config", insecure}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "warning:") || !strings.Contains(errb.String(), "insecure_listen") {
		t.Fatalf("insecure_listen: code %d, stderr %q", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("inputs:\n  - id: a\n    type: docker\n    rooot: /x\noutputs:\n  - id: o\n    type: file\nroutes:\n  - match: \"{a\"\n    outputs: [missing]\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"validate", "--config", bad}, &out, &errb); code != 1 {
		t.Fatalf("bad config: code %d", code)
	}
	// Every problem is printed, one per line, with file and line number.
	got := errb.String()
	for _, want := range []string{"bad.yml:4:", `"rooot"`, "path", "bad.yml:10:", `"missing"`, "bad.yml:9:"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(strings.TrimSpace(got), "\n") + 1; n < 4 {
		t.Errorf("expected at least 4 problems, got %d:\n%s", n, got)
	}
	// The path may be given without --config; it is never ignored.
	out.Reset()
	errb.Reset()
	if code := run([]string{"validate", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "bad.yml:4:") {
		t.Fatalf("positional path: code %d, stderr %q", code, errb.String())
	}
	if code := run([]string{"validate", "--config", bad, "other.yml"}, &out, &errb); code != 2 {
		t.Fatalf("two paths: code %d", code)
	}
}

// TestTypes: `agent types` lists every type config declares, with its
// options and their defaults.
func TestTypes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"types"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	got := out.String()
	for _, ty := range config.Types() {
		if !strings.Contains(got, ty.Kind+" type "+ty.Name+": "+ty.Doc) {
			t.Errorf("type %s %s missing", ty.Kind, ty.Name)
		}
	}
	for _, want := range []string{
		"buffer.max_bytes", "default 1GiB",
		"root", "default /var/lib/docker/containers",
		"servers[].weight", "default 60",
		"unix_mode", "default 0660",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if code := run([]string{"types", "x"}, &out, &errb); code != 2 {
		t.Errorf("types with an argument: code %d", code)
	}
}

// TestDemo runs the README's first command on the shipped samples.
func TestDemo(t *testing.T) {
	outDir := filepath.Join(t.TempDir(), "out")
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--logs", "../../examples/docker/containers", "--out", outDir}, &out, &errb)
	if code != 0 {
		t.Fatalf("demo: code %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	want := map[string]int{"access": 300, "app": 500, "audit": 100, "other": 100}
	for name, n := range want {
		lines := readLines(t, filepath.Join(outDir, name+".jsonl"))
		if len(lines) != n {
			t.Errorf("%s: %d lines, want %d", name, len(lines), n)
		}
		if name == "app" {
			long := 0
			for _, l := range lines {
				if len(l) > 40000 {
					long++
				}
			}
			if long != 1 {
				t.Errorf("app: %d joined long lines, want 1 (Docker's 16 KiB partials joined)", long)
			}
		}
	}
	if !strings.Contains(out.String(), "Unrouted events: 0") {
		t.Errorf("summary missing:\n%s", out.String())
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestHelpPointsToConfigReference: the usage and the help of run,
// validate and types name the config reference, which exists.
func TestHelpPointsToConfigReference(t *testing.T) {
	if _, err := os.Stat(filepath.Join("..", "..", configReference)); err != nil {
		t.Fatalf("config reference: %v", err)
	}
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"validate", "--help"}, {"validate", "-h"}, {"types", "--help"}, {"types"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Errorf("agent %s: exit %d", strings.Join(args, " "), code)
		}
		if got := out.String() + errb.String(); !strings.Contains(got, configReference) {
			t.Errorf("agent %s does not name %s:\n%s", strings.Join(args, " "), configReference, got)
		}
	}
}

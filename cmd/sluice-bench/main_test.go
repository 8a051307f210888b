package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBenchSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-lines", "3000", "-payload", "150", "-runs", "2", "-gzip"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "compression gzip") || !strings.HasPrefix(lines[1], "run ") ||
		!strings.HasPrefix(lines[2], "1 ") || !strings.HasPrefix(lines[4], "median ") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 9 || f[1] != "3000" || f[8] != "0" {
			t.Fatalf("bad row %q", l)
		}
	}
	t.Log("\n" + out.String())
}

func TestFlags(t *testing.T) {
	tests := map[string][]string{
		"unknown mode": {"-mode", "nope"},
		"no lines":     {"-lines", "0"},
		"bad flag":     {"-nope"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(args, &out, &errOut); code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, errOut.String())
			}
		})
	}
}

func TestMedian(t *testing.T) {
	rs := []result{
		{lines: 10, elapsed: 3 * time.Second, cpu: time.Second, maxRSS: 5},
		{lines: 10, elapsed: 1 * time.Second, cpu: 3 * time.Second, maxRSS: 9},
		{lines: 10, elapsed: 2 * time.Second, cpu: 2 * time.Second, maxRSS: 7},
	}
	m := median(rs)
	if m.elapsed != 2*time.Second || m.cpu != 2*time.Second || m.maxRSS != 7 || m.lines != 10 {
		t.Fatalf("%+v", m)
	}
	m = median(rs[:2])
	if m.elapsed != 2*time.Second || m.maxRSS != 7 {
		t.Fatalf("%+v", m)
	}
}

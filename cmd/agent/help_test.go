package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestEveryCommandHelp: `agent <command> --help` (and -h) exits 0 and
// prints something for every command, and the top-level usage lists every
// command and points to the config reference.
func TestEveryCommandHelp(t *testing.T) {
	cmds := [][]string{
		{"run"}, {"validate"}, {"types"}, {"demo"}, {"health"}, {"route"},
		{"buffer"}, {"buffer", "ls"}, {"buffer", "inspect"}, {"buffer", "replay"}, {"buffer", "drop"},
		{"top"}, {"tap"}, {"version"}, {"help"},
	}
	for _, c := range cmds {
		for _, h := range []string{"--help", "-h"} {
			var out, errOut bytes.Buffer
			args := append(append([]string{}, c...), h)
			if code := run(args, &out, &errOut); code != 0 {
				t.Errorf("agent %s: exit %d, want 0; stderr %q", strings.Join(args, " "), code, errOut.String())
			} else if out.Len()+errOut.Len() == 0 {
				t.Errorf("agent %s: printed nothing", strings.Join(args, " "))
			}
		}
	}
	var out bytes.Buffer
	run([]string{"--help"}, &out, &out)
	for _, want := range []string{"\n  route ", "\n  types ", "agent types prints every", "--help prints a command's flags"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

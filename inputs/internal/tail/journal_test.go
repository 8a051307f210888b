package tail

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/journal"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// copyDir copies a state directory as a kill -9 leaves it: whatever was
// written to the OS.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(to, 0o750))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o600))
	}
}

func setBoot(t *testing.T, id string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot_id")
	must(t, os.WriteFile(p, []byte(id), 0o600))
	old := journal.BootIDPath
	journal.BootIDPath = p
	t.Cleanup(func() { journal.BootIDPath = old })
}

// TestJournalResumesAfterCrash: with a checkpoint that never comes, the
// state left by a crash (the offsets file of the first checkpoint plus the
// journal) makes a restart in the same boot read nothing again, including
// a file first seen after that checkpoint; after a reboot the journal is
// ignored and the input resumes from the checkpoint (duplicates, no loss).
func TestJournalResumesAfterCrash(t *testing.T) {
	setBoot(t, "boot-1")
	h := newHarness(t)
	pathA := h.container(idA, "/web")
	writeLines(t, pathA, "a", 0, 50)
	cfg := h.cfg()
	in := h.tail(cfg)
	in.ckptEvery = time.Hour
	stop := tailtest.Start(t, in)
	h.waitEvents(50)
	must(t, in.checkpoint()) // the last checkpoint before the crash
	_, wantB := writeLines(t, pathA, "b", 0, 70)
	pathB := h.container(idB, "/api") // first seen after the checkpoint
	_, wantC := writeLines(t, pathB, "c", 0, 30)
	h.waitEvents(150)
	time.Sleep(50 * time.Millisecond) // the last flushes journaled
	stateDir := filepath.Join(h.dataDir, "inputs", "tl")
	crashed := t.TempDir()
	copyDir(t, stateDir, filepath.Join(crashed, "inputs", "tl"))
	must(t, stop())

	restart := func(boot string) []string {
		setBoot(t, boot)
		h2 := newHarness(t)
		h2.root = h.root
		h2.dataDir = t.TempDir()
		copyDir(t, filepath.Join(crashed, "inputs", "tl"), filepath.Join(h2.dataDir, "inputs", "tl"))
		cfg := h2.cfg()
		in := h2.tail(cfg)
		must(t, tailtest.Pump(t, in))
		in.Close()
		return h2.q.Logs()
	}
	if got := restart("boot-1"); len(got) != 0 {
		t.Fatalf("same boot: %d lines read again, want 0: %q", len(got), tailtest.Clip(got))
	}
	got := restart("boot-2")
	want := map[string]bool{}
	for _, l := range append(wantB, wantC...) {
		want[l] = true
	}
	for _, l := range got {
		if !want[l] {
			t.Fatalf("after a reboot: %q re-read, it was before the checkpoint", l)
		}
		delete(want, l)
	}
	if len(want) > 0 {
		t.Fatalf("after a reboot: %d lines after the checkpoint not read again", len(want))
	}
}

// TestJournalStartAtEndCrash: with StartAtEnd, a crash before the first
// checkpoint must not make the restart start at the (later) end again and
// skip what was written meanwhile: the first scan's offsets are journaled.
func TestJournalStartAtEndCrash(t *testing.T) {
	setBoot(t, "boot-1")
	h := newHarness(t)
	path := h.container(idA, "/web")
	writeLines(t, path, "old", 0, 20)
	cfg := h.cfg()
	cfg.StartAtEnd = true
	in := h.tail(cfg)
	in.ckptEvery = time.Hour
	stop := tailtest.Start(t, in)
	stateDir := filepath.Join(h.dataDir, "inputs", "tl")
	tailtest.WaitFor(t, "the first scan journaled", func() bool {
		m, _ := filepath.Glob(filepath.Join(stateDir, "journal.*"))
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && st.Size() > 50 {
				return true
			}
		}
		return false
	})
	crashed := t.TempDir()
	copyDir(t, stateDir, filepath.Join(crashed, "inputs", "tl"))
	stop()
	_, want := writeLines(t, path, "new", 0, 10) // written while the agent was down

	h2 := newHarness(t)
	h2.root, h2.dataDir = h.root, crashed
	cfg2 := h2.cfg()
	cfg2.StartAtEnd = true
	in2 := h2.tail(cfg2)
	must(t, tailtest.Pump(t, in2))
	in2.Close()
	tailtest.EqualStrings(t, h2.q.Logs(), want)
}

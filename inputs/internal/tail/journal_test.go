package tail

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/journal"
)

// copyDir copies a state directory as a kill -9 leaves it: whatever was
// written to the OS.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func setBoot(t *testing.T, id string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(p, []byte(id), 0o600); err != nil {
		t.Fatal(err)
	}
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
	a, _ := lines("a", 0, 50)
	appendFile(t, pathA, a)
	cfg := h.cfg()
	in := h.tail(cfg)
	in.ckptEvery = time.Hour
	stop := start(t, in)
	h.waitEvents(50)
	if err := in.checkpoint(); err != nil { // the last checkpoint before the crash
		t.Fatal(err)
	}
	b, wantB := lines("b", 0, 70)
	appendFile(t, pathA, b)
	pathB := h.container(idB, "/api") // first seen after the checkpoint
	c, wantC := lines("c", 0, 30)
	appendFile(t, pathB, c)
	h.waitEvents(150)
	time.Sleep(50 * time.Millisecond) // the last flushes journaled
	stateDir := filepath.Join(h.dataDir, "inputs", "tl")
	crashed := t.TempDir()
	copyDir(t, stateDir, filepath.Join(crashed, "inputs", "tl"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	restart := func(boot string) []string {
		setBoot(t, boot)
		h2 := newHarness(t)
		h2.root = h.root
		h2.dataDir = t.TempDir()
		copyDir(t, filepath.Join(crashed, "inputs", "tl"), filepath.Join(h2.dataDir, "inputs", "tl"))
		cfg := h2.cfg()
		in := h2.tail(cfg)
		if err := pump(t, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		return h2.q.logs()
	}
	if got := restart("boot-1"); len(got) != 0 {
		t.Fatalf("same boot: %d lines read again, want 0: %q", len(got), clip(got))
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
	old, _ := lines("old", 0, 20)
	appendFile(t, path, old)
	cfg := h.cfg()
	cfg.StartAtEnd = true
	in := h.tail(cfg)
	in.ckptEvery = time.Hour
	stop := start(t, in)
	stateDir := filepath.Join(h.dataDir, "inputs", "tl")
	waitFor(t, "the first scan journaled", func() bool {
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
	added, want := lines("new", 0, 10) // written while the agent was down
	appendFile(t, path, added)

	h2 := newHarness(t)
	h2.root, h2.dataDir = h.root, crashed
	cfg2 := h2.cfg()
	cfg2.StartAtEnd = true
	in2 := h2.tail(cfg2)
	if err := pump(t, in2); err != nil {
		t.Fatal(err)
	}
	in2.Close()
	equalStrings(t, h2.q.logs(), want)
}

package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func fakeBoot(t *testing.T, id string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := BootIDPath
	BootIDPath = p
	t.Cleanup(func() { BootIDPath = old })
}

func replayAll(t *testing.T, dir string, after uint64) ([]string, int) {
	t.Helper()
	var got []string
	other, err := Replay(dir, after, func(r Record) error {
		got = append(got, fmt.Sprintf("%d:%s", r.Gen, r.Payload))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, other
}

func TestAppendReplayRotatePrune(t *testing.T) {
	fakeBoot(t, "boot-1")
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for g := uint64(1); g <= 3; g++ {
		if err := j.Append(g, []byte(fmt.Sprint("p", g))); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Rotate(); err != nil { // a checkpoint covering gen 3 starts
		t.Fatal(err)
	}
	keep := j.Seq()
	j.Append(4, []byte("p4"))
	j.Append(5, nil)
	if got, _ := replayAll(t, dir, 0); fmt.Sprint(got) != "[1:p1 2:p2 3:p3 4:p4 5:]" {
		t.Fatalf("replay %v", got)
	}
	if got, _ := replayAll(t, dir, 3); fmt.Sprint(got) != "[4:p4 5:]" {
		t.Fatalf("replay after 3: %v", got)
	}
	if err := Prune(dir, keep); err != nil { // the checkpoint is durable
		t.Fatal(err)
	}
	if got, _ := replayAll(t, dir, 0); fmt.Sprint(got) != "[4:p4 5:]" {
		t.Fatalf("after prune: %v", got)
	}
	j.Close()
	// A restart in the same boot opens a new file and sees the old ones.
	j2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	j2.Append(6, []byte("p6"))
	if got, _ := replayAll(t, dir, 0); fmt.Sprint(got) != "[4:p4 5: 6:p6]" {
		t.Fatalf("after reopen: %v", got)
	}
	j2.Close()
}

// TestOtherBootNotTrusted: after a reboot the page cache may have lost
// queue data the records point past: nothing is replayed.
func TestOtherBootNotTrusted(t *testing.T) {
	fakeBoot(t, "boot-1")
	dir := t.TempDir()
	j, _ := Open(dir)
	j.Append(1, []byte("x"))
	j.Close()
	fakeBoot(t, "boot-2")
	got, other := replayAll(t, dir, 0)
	if len(got) != 0 || other != 1 {
		t.Fatalf("replayed %v, other boot files %d", got, other)
	}
	BootIDPath = filepath.Join(t.TempDir(), "missing")
	if got, _ := replayAll(t, dir, 0); len(got) != 0 {
		t.Fatalf("replayed %v without a boot id", got)
	}
}

// TestTornTail: a record cut by a crash, or damaged, ends its file's
// replay; later files still count.
func TestTornTail(t *testing.T) {
	fakeBoot(t, "b")
	dir := t.TempDir()
	j, _ := Open(dir)
	j.Append(1, []byte("good"))
	j.Append(2, []byte("torn-record"))
	first := j.path(j.Seq())
	j.Rotate()
	j.Append(3, []byte("next-file"))
	j.Close()
	st, _ := os.Stat(first)
	if err := os.Truncate(first, st.Size()-3); err != nil {
		t.Fatal(err)
	}
	if got, _ := replayAll(t, dir, 0); fmt.Sprint(got) != "[1:good 3:next-file]" {
		t.Fatalf("torn: %v", got)
	}
	data, _ := os.ReadFile(first)
	data[7+recHdrLen] ^= 0xff // the payload of record 1 (header: magic, length, "b")
	os.WriteFile(first, data, 0o600)
	if got, _ := replayAll(t, dir, 0); fmt.Sprint(got) != "[3:next-file]" {
		t.Fatalf("damaged: %v", got)
	}
}

func BenchmarkAppend(b *testing.B) {
	j, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	p := make([]byte, 80)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := j.Append(uint64(i), p); err != nil {
			b.Fatal(err)
		}
	}
}

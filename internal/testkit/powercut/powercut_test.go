package powercut

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModel(t *testing.T) {
	root := t.TempDir()
	d := New(root)
	dirf, _ := os.Open(root)
	defer dirf.Close()
	a, _ := os.Create(filepath.Join(root, "a"))
	defer a.Close()
	a.WriteString("synced")
	if err := d.Sync(a); err != nil {
		t.Fatal(err)
	}
	a.WriteString("+lost")
	if err := d.Sync(dirf); err != nil {
		t.Fatal(err)
	}
	b, _ := os.Create(filepath.Join(root, "b")) // created after the dir fsync
	b.WriteString("b")
	d.Sync(b)
	b.Close()
	dst := t.TempDir()
	if err := d.Crash(dst); err != nil {
		t.Fatal(err)
	}
	a.WriteString("after")
	d.Sync(a) // not recorded any more
	if got, _ := os.ReadFile(filepath.Join(dst, "a")); string(got) != "synced" {
		t.Fatalf("a = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dst, "b")); !os.IsNotExist(err) {
		t.Fatalf("b survived without a dir fsync: %v", err)
	}
}

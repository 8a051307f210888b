package tail

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// refusalLog counts the refusal warnings per path.
type refusalLog struct {
	mu    sync.Mutex
	paths map[string]int
}

func (l *refusalLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *refusalLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *refusalLog) WithGroup(string) slog.Handler            { return l }
func (l *refusalLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "refusing log path") {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "path" {
			l.mu.Lock()
			l.paths[a.Value.String()]++
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *refusalLog) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int, len(l.paths))
	for k, v := range l.paths {
		m[k] = v
	}
	return m
}

// TestRefuseSymlinksAndNonRegular (issue 12.2): log files that are
// symlinks out of the root (an /etc/shadow- and an /etc/passwd-like file,
// a character device), a FIFO and a directory symlink loop are never read
// and never block the reader; each refusal is logged and counted once over
// many scans; a symlink whose target lies inside the root is read.
func TestRefuseSymlinksAndNonRegular(t *testing.T) {
	h := newHarness(t)
	base := t.TempDir()
	h.root = filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	must(t, os.MkdirAll(h.root, 0o755))
	must(t, os.MkdirAll(outside, 0o755))

	shadow := filepath.Join(outside, "shadow")
	secret, _ := lines("SECRET-shadow", 0, 5)
	must(t, os.WriteFile(shadow, []byte(secret), 0o600))
	passwd := filepath.Join(outside, "passwd")
	pw, _ := lines("SECRET-passwd", 0, 5)
	must(t, os.WriteFile(passwd, []byte(pw), 0o644))
	// What a directory symlink out of the root would expose: <base>/up.log
	// seen as <root>/up/up.log through <root>/up -> ..
	must(t, os.WriteFile(filepath.Join(base, "up.log"), []byte(secret), 0o644))

	const (
		idShadow = "shadow000000"
		idPasswd = "passwd000000"
		idFifo   = "fifo00000000"
		idDev    = "dev000000000"
		idLink   = "link00000000"
	)
	pShadow := h.container(idShadow, "/shadow")
	must(t, os.Symlink(shadow, pShadow))
	pPasswd := h.container(idPasswd, "/passwd")
	must(t, os.Symlink("../../outside/passwd", pPasswd)) // relative
	pFifo := h.container(idFifo, "/fifo")
	must(t, syscall.Mkfifo(pFifo, 0o644))
	pDev := h.container(idDev, "/dev")
	must(t, os.Symlink("/dev/zero", pDev))
	// In-root target, as /var/log/containers links into /var/log/pods.
	store := filepath.Join(h.root, "store")
	must(t, os.MkdirAll(store, 0o755))
	_, wantLink := writeLines(t, filepath.Join(store, "data"), "link", 0, 3)
	pLink := h.container(idLink, "/link")
	must(t, os.Symlink("../store/data", pLink))
	// Directory symlink loops: into the root's parent and onto itself.
	must(t, os.Symlink("..", filepath.Join(h.root, "up")))
	must(t, os.Symlink(".", filepath.Join(h.root, "self")))
	must(t, os.Symlink("..", filepath.Join(h.root, idA+"-loop")))

	pA := h.container(idA, "/a")
	_, wantA := writeLines(t, pA, "a", 0, 5)

	rl := &refusalLog{paths: map[string]int{}}
	cfg := h.cfg()
	cfg.Log = slog.New(rl)
	start := time.Now()
	stop := tailtest.Start(t, h.tail(cfg))
	h.waitEvents(8)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("normal lines took %v", d)
	}
	// Created while running (inotify events): more of the same.
	must(t, os.Symlink("..", filepath.Join(h.root, "up2")))
	pShadow2 := h.container(idB, "/shadow2")
	must(t, os.Symlink(shadow, pShadow2))
	pFifo2 := h.container(idC, "/fifo2")
	must(t, syscall.Mkfifo(pFifo2, 0o644))
	_, wantA2 := writeLines(t, pA, "a", 5, 5)
	h.waitEvents(13)
	time.Sleep(300 * time.Millisecond) // many full scans (PollInterval 20 ms, ×10 while watched)
	must(t, stop())

	for _, l := range h.q.Logs() {
		if strings.Contains(l, "SECRET") {
			t.Fatalf("read from outside the root: %q", l)
		}
	}
	bySource := h.q.LogsBy(func(e tailtest.Event) string { return e.Record["source"].(string) })
	tailtest.EqualStrings(t, bySource[idA], append(wantA, wantA2...))
	tailtest.EqualStrings(t, bySource[idLink], wantLink)
	if len(bySource) != 2 {
		t.Fatalf("sources read: %v", bySource)
	}

	outsideRefused := h.set.GetOrCreateCounter(`sluice_input_files_refused_total{input="tl",reason="symlink_outside_root"}`).Get()
	notRegular := h.set.GetOrCreateCounter(`sluice_input_files_refused_total{input="tl",reason="not_regular"}`).Get()
	// shadow, passwd, /dev/zero, shadow2; the directories up, <idA>-loop, up2.
	if outsideRefused != 7 {
		t.Errorf("symlink_outside_root refusals %d, want 7", outsideRefused)
	}
	if notRegular != 2 { // the two FIFOs
		t.Errorf("not_regular refusals %d, want 2", notRegular)
	}
	logged := rl.counts()
	for _, p := range []string{pShadow, pPasswd, pDev, pShadow2, pFifo, pFifo2,
		filepath.Join(h.root, "up"), filepath.Join(h.root, "up2"), filepath.Join(h.root, idA+"-loop")} {
		if logged[p] != 1 {
			t.Errorf("%s refusal logged %d times, want 1 (%v)", p, logged[p], logged)
		}
	}
}

// TestOpenRegularRefusesSwap: the opened descriptor must be the file the
// scan resolved (a symlink swapped in after the check is not followed), and
// a FIFO opens without blocking and is refused.
func TestOpenRegularRefusesSwap(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	must(t, os.WriteFile(reg, []byte("x\n"), 0o644))
	fi, err := os.Stat(reg)
	must(t, err)
	dev, ino := fileID(fi)
	f, err := openRegular(reg, dev, ino)
	must(t, err)
	b := make([]byte, 2)
	if n, err := f.Read(b); err != nil || n != 2 {
		t.Fatalf("read %d %v", n, err)
	}
	_ = f.Close()

	other := filepath.Join(dir, "other")
	must(t, os.WriteFile(other, []byte("y\n"), 0o644))
	if f, err := openRegular(other, dev, ino); err == nil {
		_ = f.Close()
		t.Fatal("a different file than the one checked was opened")
	}
	link := filepath.Join(dir, "link")
	must(t, os.Symlink(reg, link))
	if f, err := openRegular(link, dev, ino); err == nil {
		_ = f.Close()
		t.Fatal("a symlink was followed")
	}
	fifo := filepath.Join(dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	done := make(chan error, 1)
	go func() {
		f, err := openRegular(fifo, 0, 0)
		if err == nil {
			_ = f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != errNotRegular {
			t.Fatalf("fifo: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("opening a FIFO blocked")
	}
}

package loggen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type line struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

type payload struct {
	LogType string `json:"log_type"`
	Src     string `json:"src"`
	Seq     int64  `json:"seq"`
	Pad     string `json:"pad"`
}

// readAll decodes every line of the given files with encoding/json and
// returns the payloads.
func readAll(t *testing.T, files ...string) []payload {
	t.Helper()
	var out []payload
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s: %v: %s", f, err, sc.Text())
			}
			if !strings.HasSuffix(l.Log, "\n") || l.Stream != "stdout" {
				t.Fatalf("bad line %q", sc.Text())
			}
			if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
				t.Fatal(err)
			}
			var p payload
			text := strings.TrimSuffix(l.Log, "\n")
			if err := json.Unmarshal([]byte(text), &p); err != nil {
				t.Fatalf("payload %q: %v", text, err)
			}
			out = append(out, p)
		}
		fh.Close()
		if sc.Err() != nil {
			t.Fatal(sc.Err())
		}
	}
	return out
}

func TestFormatAndSizes(t *testing.T) {
	for _, size := range []int{0, 10, 100, 200, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			root := t.TempDir()
			c, err := New(root, Options{Name: "web", LogType: "access", Payload: size, Labels: map[string]string{"team": "a"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Write(1200); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			ps := readAll(t, c.Path())
			if len(ps) != 1200 {
				t.Fatalf("%d lines", len(ps))
			}
			for i, p := range ps {
				if p.Seq != int64(i) || p.Src != "web" || p.LogType != "access" {
					t.Fatalf("line %d: %+v", i, p)
				}
				js, _ := json.Marshal(p)
				want := c.PayloadBytes(int64(i))
				if len(js) != want || (size >= 100 && want != size) {
					t.Fatalf("line %d: payload %d bytes, want %d (size %d)", i, len(js), want, size)
				}
			}
			var meta struct {
				ID     string
				Name   string
				Config struct{ Labels map[string]string }
			}
			js, err := os.ReadFile(filepath.Join(c.Dir(), "config.v2.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(js, &meta); err != nil {
				t.Fatal(err)
			}
			if meta.Name != "/web" || meta.ID != c.ID() || meta.Config.Labels["team"] != "a" || len(c.ID()) != 64 {
				t.Fatalf("meta %+v", meta)
			}
			if filepath.Base(c.Path()) != c.ID()+"-json.log" || filepath.Dir(c.Dir()) != root {
				t.Fatalf("path %s", c.Path())
			}
		})
	}
}

func TestRotation(t *testing.T) {
	tests := map[string]struct {
		rot      Rotation
		every    int
		maxFiles int
		lines    int
		files    []string // suffixes expected to exist
		first    int64    // first seq still on disk
	}{
		"rename":            {rot: Rename, every: 100, maxFiles: 5, lines: 450, files: []string{"", ".1", ".2", ".3", ".4"}, first: 0},
		"rename drops":      {rot: Rename, every: 100, maxFiles: 3, lines: 450, files: []string{"", ".1", ".2"}, first: 200},
		"copytruncate":      {rot: CopyTruncate, every: 100, maxFiles: 5, lines: 450, files: []string{"", ".1", ".2", ".3", ".4"}, first: 0},
		"copytruncate drop": {rot: CopyTruncate, every: 100, maxFiles: 2, lines: 450, files: []string{"", ".1"}, first: 300},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := New(t.TempDir(), Options{Name: "c", Rotate: tc.rot, RotateEvery: tc.every, MaxFiles: tc.maxFiles})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Write(tc.lines); err != nil {
				t.Fatal(err)
			}
			var files []string
			for i := len(tc.files) - 1; i >= 0; i-- {
				files = append(files, c.Path()+tc.files[i])
			}
			if _, err := os.Stat(fmt.Sprintf("%s.%d", c.Path(), len(tc.files))); !os.IsNotExist(err) {
				t.Fatalf("too many files: %v", err)
			}
			ps := readAll(t, files...)
			if int64(len(ps)) != int64(tc.lines)-tc.first {
				t.Fatalf("%d lines on disk, want %d", len(ps), int64(tc.lines)-tc.first)
			}
			for i, p := range ps {
				if p.Seq != tc.first+int64(i) {
					t.Fatalf("line %d has seq %d, want %d", i, p.Seq, tc.first+int64(i))
				}
			}
			if c.Rotations() != (tc.lines-1)/tc.every {
				t.Fatalf("rotations %d", c.Rotations())
			}
		})
	}
}

func TestRotateMaxFilesOne(t *testing.T) {
	c, err := New(t.TempDir(), Options{Name: "c", MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(10)
	if err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	c.Write(5)
	if ps := readAll(t, c.Path()); len(ps) != 5 || ps[0].Seq != 10 {
		t.Fatalf("%+v", ps)
	}
}

func TestRun(t *testing.T) {
	c, err := New(t.TempDir(), Options{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := c.Run(context.Background(), 200, 1000); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 2*time.Second {
		t.Fatalf("200 lines at 1000/s took %v", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx, 1000000, 100); err != context.DeadlineExceeded {
		t.Fatalf("err %v", err)
	}
	if n := len(readAll(t, c.Path())); int64(n) != c.Seq() {
		t.Fatalf("%d lines on disk, seq %d", n, c.Seq())
	}
}

func BenchmarkWrite(b *testing.B) {
	c, err := New(b.TempDir(), Options{Name: "bench", Payload: 200})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var buf []byte
	buf = c.appendLine(buf, 123456, time.Now())
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.writeOne(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	c.Flush()
}

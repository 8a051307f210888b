package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// TestLineShapes checks every line is valid JSON of the announced length,
// keyed as the receiver extracts it, and that no 16 KiB fragment of a long
// line carries a full key.
func TestLineShapes(t *testing.T) {
	o := options{src: "web", types: []string{"app", "audit"}, size: 200, longEvery: 5}
	tests := map[string]struct {
		typ      string
		seq      int
		wantLen  int
		wantLong bool
	}{
		"normal":         {typ: "app", seq: 0, wantLen: 200},
		"normal big seq": {typ: "audit", seq: 123456787, wantLen: 200},
		"long 40000":     {typ: "app", seq: 4, wantLen: 40000, wantLong: true},
		"long 16384":     {typ: "audit", seq: 9, wantLen: 16384, wantLong: true},
		"long again":     {typ: "app", seq: 14, wantLen: 40000, wantLong: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			line := appendLine(nil, o, tc.typ, tc.seq)
			if line[len(line)-1] != '\n' {
				t.Fatal("no trailing newline")
			}
			line = line[:len(line)-1]
			if len(line) != tc.wantLen {
				t.Fatalf("length %d, want %d", len(line), tc.wantLen)
			}
			var v struct {
				LogType string `json:"log_type"`
				Src     string `json:"src"`
				Seq     int    `json:"seq"`
				Len     int    `json:"len"`
			}
			if err := json.Unmarshal(line, &v); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			wantSrc := "web-" + tc.typ
			if v.LogType != tc.typ || v.Src != wantSrc || v.Seq != tc.seq {
				t.Fatalf("fields %+v", v)
			}
			if tc.wantLong && v.Len != tc.wantLen {
				t.Fatalf("len field %d, want %d", v.Len, tc.wantLen)
			}
			src, seq, ok := receiver.LogKey(line)
			if !ok || string(src) != wantSrc || seq != int64(tc.seq) {
				t.Fatalf("LogKey = %q %d %v", src, seq, ok)
			}
			if len(line) <= 16384 {
				return // one fragment holds the whole line (plus an empty last one)
			}
			for off := 0; off < len(line); off += 16384 {
				frag := line[off:min(off+16384, len(line))]
				if _, _, ok := receiver.LogKey(frag); ok {
					t.Fatalf("fragment at %d yields a key", off)
				}
			}
		})
	}
}

// TestStreamsAndSequences runs the generator into files and checks the
// per-type sequences are dense and split between stdout and stderr.
func TestStreamsAndSequences(t *testing.T) {
	dir := t.TempDir()
	out, err := createFile(dir + "/out")
	if err != nil {
		t.Fatal(err)
	}
	errf, err := createFile(dir + "/err")
	if err != nil {
		t.Fatal(err)
	}
	o := options{src: "c", types: []string{"app", "access", "audit"}, n: 50, size: 120, longEvery: 10, stderrEvery: 3, rate: 5000,
		progress: dir + "/progress"}
	if err := generate(o, out, errf); err != nil {
		t.Fatal(err)
	}
	out.Close()
	errf.Close()
	seen := map[string]map[int64]bool{}
	for _, f := range []string{"out", "err"} {
		b := readFile(t, dir+"/"+f)
		for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			src, seq, ok := receiver.LogKey(line)
			if !ok {
				t.Fatalf("%s: unkeyed line %.80q", f, line)
			}
			if (f == "err") != (seq%3 == 2) {
				t.Fatalf("seq %d on %s", seq, f)
			}
			if seen[string(src)] == nil {
				seen[string(src)] = map[int64]bool{}
			}
			if seen[string(src)][seq] {
				t.Fatalf("duplicate %s %d", src, seq)
			}
			seen[string(src)][seq] = true
		}
	}
	for _, typ := range o.types {
		if n := len(seen["c-"+typ]); n != o.n {
			t.Fatalf("%s: %d sequences, want %d", typ, n, o.n)
		}
	}
	if got := string(readFile(t, dir+"/progress")); got != fmt.Sprint(o.n-1) {
		t.Fatalf("progress %q", got)
	}
}

func BenchmarkAppendLine(b *testing.B) {
	o := options{src: "web", types: []string{"app"}, size: 200}
	var line []byte
	b.ReportAllocs()
	b.SetBytes(201)
	for i := 0; b.Loop(); i++ {
		line = appendLine(line[:0], o, "app", i)
	}
}

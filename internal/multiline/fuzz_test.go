package multiline

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzJoiner feeds the lines of data (split at "\n") to a Joiner with
// every rule on, flushing as ops says, and checks after every call that:
// each line comes out in exactly one event, in order, byte for byte
// (Start and End name the lines an event holds); a line is missing only
// right after a truncated event, as a prefix of its group; Pending names
// the first line not yet emitted; the drops match Stats; groups stay
// within MaxBytes and MaxLines. The caller's line buffer is scribbled
// over after each call, so whatever the Joiner holds it must have copied.
func FuzzJoiner(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.log"))
	for i, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 4096)], uint64(i)*0x9e3779b97f4a7c15, uint16(i*397))
	}
	f.Add([]byte("panic: x\n\n\n\n\n\ngoroutine 1 [running]:\nmain.main()\n\n"), uint64(0), uint16(0))
	f.Add([]byte("Error: é€€€\n\tat a\n\n    at b {\n  x\n}\n\nNode.js v1\n"), ^uint64(0), uint16(9))
	f.Add([]byte("2024-01-01 a\nb\n  c\n2024-01-01 d\n"), uint64(0x5555), uint16(3<<10|40))
	f.Fuzz(func(t *testing.T, data []byte, ops uint64, limits uint16) {
		maxBytes := 1 + int(limits%1024)
		maxLines := int(limits>>10) % 8
		user := Rule{Start: `^\d{4}-`, Continue: `^\s`}
		if ops>>63 == 1 {
			user.Continue = "" // the first line mode
		}
		j, err := New(Config{Rules: Builtins(), User: []Rule{user}, MaxBytes: maxBytes, MaxLines: maxLines})
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(data, []byte("\n"))
		c := checker{t: t, lines: lines, maxBytes: maxBytes, maxLines: maxLines}
		var out []Event
		var scratch []byte
		now := time.Unix(1e9, 0)
		for k, l := range lines {
			scratch = append(scratch[:0], l...)
			out = j.Add(out[:0], scratch, int64(2*k), int64(2*k+1), int64(1000+k))
			c.fed = k + 1
			c.check(j, out)
			for i := range scratch {
				scratch[i] = 0xAA
			}
			switch (ops >> (2 * (k % 31))) & 3 {
			case 1:
				now = now.Add(600 * time.Millisecond)
				c.check(j, j.Flush(out[:0], now, false))
			case 2:
				now = now.Add(2 * time.Second)
				c.check(j, j.Flush(out[:0], now, false))
			case 3:
				c.check(j, j.Flush(out[:0], now, true))
			}
		}
		c.check(j, j.Flush(out[:0], now, true))
		if _, ok := j.Pending(); ok {
			t.Fatal("pending after a forced flush")
		}
		if c.next != len(lines) {
			t.Fatalf("lines %d.. never emitted", c.next)
		}
		if s := j.Stats(); s.DroppedLines != uint64(c.dropped) {
			t.Fatalf("stats count %d dropped lines, %d missing", s.DroppedLines, c.dropped)
		}
	})
}

type checker struct {
	t        *testing.T
	lines    [][]byte
	fed      int // lines given to Add
	next     int // first line not emitted or dropped
	cut      bool
	dropped  int
	maxBytes int
	maxLines int
}

func (c *checker) check(j *Joiner, out []Event) {
	t := c.t
	t.Helper()
	for _, e := range out {
		a, b := int(e.Start/2), int(e.End/2)
		if e.Start != int64(2*a) || e.End != int64(2*b+1) || b < a || b >= c.fed {
			t.Fatalf("event tags %d-%d, %d lines fed", e.Start, e.End, c.fed)
		}
		if a < c.next {
			t.Fatalf("event of lines %d-%d, line %d already out", a, b, c.next-1)
		}
		if a > c.next {
			if !c.cut {
				t.Fatalf("event of lines %d-%d: lines %d-%d lost", a, b, c.next, a-1)
			}
			c.dropped += a - c.next
		}
		if e.Lines != b-a+1 || e.Time != int64(1000+a) {
			t.Fatalf("event of lines %d-%d: Lines %d, Time %d", a, b, e.Lines, e.Time)
		}
		joined := bytes.Join(c.lines[a:b+1], []byte("\n"))
		switch {
		case !e.Truncated && !bytes.Equal(e.Line, joined):
			t.Fatalf("event of lines %d-%d: %q, want %q", a, b, e.Line, joined)
		case e.Truncated && !bytes.HasPrefix(joined, e.Line):
			t.Fatalf("truncated event of lines %d-%d: %q, not a prefix of %q", a, b, e.Line, joined)
		case e.Truncated && len(e.Line) > c.maxBytes:
			t.Fatalf("truncated event of %d bytes, max %d", len(e.Line), c.maxBytes)
		case e.Lines > 1 && len(e.Line) > c.maxBytes:
			t.Fatalf("group of %d bytes, max %d", len(e.Line), c.maxBytes)
		case c.maxLines > 0 && e.Lines > c.maxLines:
			t.Fatalf("group of %d lines, max %d", e.Lines, c.maxLines)
		}
		c.next, c.cut = b+1, e.Truncated
	}
	// Lines before the first one held are out, or dropped after a cut.
	first := c.fed
	if p, ok := j.Pending(); ok {
		first = int(p / 2)
		if p != int64(2*first) || first >= c.fed {
			t.Fatalf("pending tag %d, %d lines fed", p, c.fed)
		}
	}
	switch {
	case first < c.next:
		t.Fatalf("pending line %d, already out", first)
	case first > c.next && !c.cut:
		t.Fatalf("pending line %d: lines %d-%d lost", first, c.next, first-1)
	case first > c.next:
		c.dropped += first - c.next
		c.next = first
	}
}

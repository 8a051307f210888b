package multiline

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenEvent is one expected event; first and last are 1-based line
// numbers of the input (the position tags the test feeds).
type goldenEvent struct {
	First     int64  `json:"first"`
	Last      int64  `json:"last"`
	Lines     int    `json:"lines"`
	Truncated bool   `json:"truncated,omitempty"`
	Text      string `json:"text"`
}

// The .log files are real output: the programs' stdout and stderr
// (OpenJDK 17, Go 1.26, Python 3.11, Ruby 3.1, Node 20), with log lines
// around each trace; the go and mixed files join runs one after the
// other, as a restarted container writes them.
var goldenCases = map[string]struct {
	log, golden string
	cfg         Config
	flushAt     []int // lines after which the group times out
	stats       Stats
}{
	"java":               {log: "java/shop.log", golden: "java/shop.golden", cfg: Config{Rules: []string{"java"}}, stats: Stats{Groups: 5}},
	"java timeout":       {log: "java/shop.log", golden: "java/shop-timeout.golden", cfg: Config{Rules: []string{"java"}}, flushAt: []int{8}, stats: Stats{Groups: 6, Timeouts: 1}},
	"java max bytes":     {log: "java/overflow.log", golden: "java/overflow-maxbytes.golden", cfg: Config{Rules: []string{"java"}, MaxBytes: 1010}, stats: Stats{Groups: 1, Truncated: 1, DroppedLines: 987, DroppedBytes: 25679}},
	"java max lines":     {log: "java/overflow.log", golden: "java/overflow-maxlines.golden", cfg: Config{Rules: []string{"java"}, MaxLines: 10}, stats: Stats{Groups: 1, Truncated: 1, DroppedLines: 1015, DroppedBytes: 26390}},
	"java whole":         {log: "java/overflow.log", golden: "java/overflow.golden", cfg: Config{Rules: []string{"java"}}, stats: Stats{Groups: 1}},
	"java first line":    {log: "java/shop.log", golden: "java/shop-firstline.golden", cfg: Config{User: []Rule{{Name: "log4j", Start: `^\d{4}-\d\d-\d\d `}}}, stats: Stats{Groups: 4}},
	"go":                 {log: "go/goroutines.log", golden: "go/goroutines.golden", cfg: Config{Rules: []string{"go"}}, stats: Stats{Groups: 2}},
	"go http":            {log: "go/http.log", golden: "go/http.golden", cfg: Config{Rules: []string{"go"}}, stats: Stats{Groups: 1}},
	"go deadlock":        {log: "go/deadlock.log", golden: "go/deadlock.golden", cfg: Config{Rules: []string{"go"}}, stats: Stats{Groups: 1}},
	"go timeout":         {log: "go/goroutines.log", golden: "go/goroutines-timeout.golden", cfg: Config{Rules: []string{"go"}}, flushAt: []int{9}, stats: Stats{Groups: 3, Timeouts: 1}},
	"python":             {log: "python/app.log", golden: "python/app.golden", cfg: Config{Rules: []string{"python"}}, stats: Stats{Groups: 4}},
	"python group":       {log: "python/group.log", golden: "python/group.golden", cfg: Config{Rules: []string{"python"}}, stats: Stats{Groups: 1}},
	"ruby":               {log: "ruby/app.log", golden: "ruby/app.golden", cfg: Config{Rules: []string{"ruby"}}, stats: Stats{Groups: 4}},
	"javascript":         {log: "javascript/app.log", golden: "javascript/app.golden", cfg: Config{Rules: []string{"javascript"}}, stats: Stats{Groups: 4}},
	"javascript crash":   {log: "javascript/crash.log", golden: "javascript/crash.golden", cfg: Config{Rules: []string{"node"}}, stats: Stats{Groups: 1}},
	"all rules":          {log: "mixed/all.log", golden: "mixed/all.golden", cfg: Config{Rules: Builtins()}, stats: Stats{Groups: 20}},
	"all rules and user": {log: "mixed/all.log", golden: "mixed/all.golden", cfg: Config{Rules: Builtins(), User: []Rule{{Start: `^never matches$`, Continue: `^x`}}}, stats: Stats{Groups: 20}},
}

func TestGolden(t *testing.T) {
	for name, c := range goldenCases {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.log))
			if err != nil {
				t.Fatal(err)
			}
			j, err := New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			lines := splitLines(data)
			got := runGolden(t, j, lines, c.flushAt)
			path := filepath.Join("testdata", c.golden)
			if *update {
				var b bytes.Buffer
				enc := json.NewEncoder(&b)
				enc.SetEscapeHTML(false)
				for _, e := range got {
					if err := enc.Encode(e); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := readGolden(t, path)
			if len(got) != len(want) {
				t.Errorf("%d events, want %d", len(got), len(want))
			}
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
			if s := j.Stats(); s != c.stats {
				t.Errorf("stats %+v, want %+v", s, c.stats)
			}
		})
	}
}

// runGolden feeds lines (tags: 1-based line numbers), checks Pending
// after each call and returns the events.
func runGolden(t *testing.T, j *Joiner, lines [][]byte, flushAt []int) []goldenEvent {
	t.Helper()
	var got []goldenEvent
	var out []Event
	next := int64(1) // first line not emitted
	collect := func() {
		for _, e := range out {
			if e.Start != next && !(e.Start > next && got != nil && got[len(got)-1].Truncated) {
				t.Fatalf("event starts at line %d, want %d", e.Start, next)
			}
			got = append(got, goldenEvent{First: e.Start, Last: e.End, Lines: e.Lines, Truncated: e.Truncated, Text: string(e.Line)})
			next = e.End + 1
		}
	}
	now := time.Unix(1700000000, 0)
	for i, l := range lines {
		n := int64(i + 1)
		out = j.Add(out[:0], l, n, n, n*int64(time.Millisecond))
		collect()
		cut := got != nil && got[len(got)-1].Truncated // lines after it may be dropped
		switch p, ok := j.Pending(); {
		case ok && (p < next || p != next && !cut):
			t.Fatalf("after line %d: pending %d, first line not emitted %d", n, p, next)
		case !ok && next != n+1 && !cut:
			t.Fatalf("after line %d: nothing pending, first line not emitted %d", n, next)
		}
		for _, f := range flushAt {
			if f == i+1 {
				out = j.Flush(out[:0], now, false)
				now = now.Add(2 * DefaultFlushTimeout)
				out = j.Flush(out, now, false)
				collect()
			}
		}
	}
	out = j.Flush(out[:0], now, true)
	collect()
	if _, ok := j.Pending(); ok {
		t.Fatal("pending after a forced flush")
	}
	return got
}

func splitLines(data []byte) [][]byte {
	s := strings.TrimSuffix(string(data), "\n")
	var lines [][]byte
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, []byte(l))
	}
	return lines
}

func readGolden(t *testing.T, path string) []goldenEvent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []goldenEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var e goldenEvent
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// TestAllRulesAgree runs every single-rule golden case with all the
// built-ins on: no rule may change what another joins in its language.
func TestAllRulesAgree(t *testing.T) {
	for name, c := range goldenCases {
		if len(c.cfg.Rules) != 1 || c.cfg.User != nil || c.cfg.MaxBytes != 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.log))
			if err != nil {
				t.Fatal(err)
			}
			cfg := c.cfg
			cfg.Rules = Builtins()
			j, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := runGolden(t, j, splitLines(data), c.flushAt)
			want := readGolden(t, filepath.Join("testdata", c.golden))
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

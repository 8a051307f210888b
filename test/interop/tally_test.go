package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tally counts how often each (src, seq) key was seen in a receiver's
// output.
type tally struct {
	seen    map[string]map[int64]int
	lines   int // lines holding a key
	unkeyed int // JSON lines without one
}

func newTally() *tally { return &tally{seen: map[string]map[int64]int{}} }

func (t *tally) add(src string, seq int64) {
	m := t.seen[src]
	if m == nil {
		m = map[int64]int{}
		t.seen[src] = m
	}
	m[seq]++
	t.lines++
}

// merge adds o's counts to t.
func (t *tally) merge(o *tally) {
	for src, m := range o.seen {
		for seq, n := range m {
			for range n {
				t.add(src, seq)
			}
		}
	}
	t.unkeyed += o.unkeyed
}

// distinct is the number of distinct sequence numbers of src in [0, n).
func (t *tally) distinct(src string, n int) int {
	c := 0
	for seq := range t.seen[src] {
		if seq >= 0 && seq < int64(n) {
			c++
		}
	}
	return c
}

// result describes src's sequence numbers [0, n) against what was seen.
type result struct {
	Want       int
	Missing    int
	FirstMiss  []int64 // up to 20
	Duplicates int     // extra copies of seen keys
	Extra      int     // keys outside [0, n) or of other sources
}

func (r result) String() string {
	s := fmt.Sprintf("%d/%d delivered, %d missing, %d duplicates", r.Want-r.Missing, r.Want, r.Missing, r.Duplicates)
	if r.Missing > 0 {
		s += fmt.Sprintf(" (first missing %v)", r.FirstMiss)
	}
	if r.Extra > 0 {
		s += fmt.Sprintf(", %d unexpected keys", r.Extra)
	}
	return s
}

func (t *tally) check(src string, n int) result {
	r := result{Want: n}
	m := t.seen[src]
	for seq := int64(0); seq < int64(n); seq++ {
		c := m[seq]
		if c == 0 {
			r.Missing++
			if len(r.FirstMiss) < 20 {
				r.FirstMiss = append(r.FirstMiss, seq)
			}
		} else {
			r.Duplicates += c - 1
		}
	}
	for s, mm := range t.seen {
		for seq, c := range mm {
			if s != src || seq < 0 || seq >= int64(n) {
				r.Extra += c
			}
		}
	}
	return r
}

// extractor returns the JSON text of a received event in one output line,
// or false for lines that are not events.
type extractor func(line []byte) ([]byte, bool)

// jsonLine takes lines that are JSON objects (Sluice's file output, Fluent
// Bit's file output with format plain).
func jsonLine(line []byte) ([]byte, bool) {
	return line, len(line) > 0 && line[0] == '{'
}

// fluentdStdoutLine takes out_stdout lines "<time> interop.<x>: {...}" of
// Fluentd's log.
func fluentdStdoutLine(line []byte) ([]byte, bool) {
	i := bytes.Index(line, []byte(" interop."))
	if i < 0 {
		return nil, false
	}
	j := bytes.Index(line[i:], []byte(": {"))
	if j < 0 {
		return nil, false
	}
	return line[i+j+2:], true
}

// readTally reads every file matching the glob patterns. A line that does
// not parse (the last one, while the writer is still at it) is skipped; a
// later read sees it whole.
func readTally(ex extractor, patterns ...string) *tally {
	t := newTally()
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		sort.Strings(files)
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(fh)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() {
				js, ok := ex(sc.Bytes())
				if !ok {
					continue
				}
				var v any
				d := json.NewDecoder(bytes.NewReader(js))
				d.UseNumber()
				if d.Decode(&v) != nil {
					continue
				}
				if src, seq, ok := findKey(v, 0); ok {
					t.add(src, seq)
				} else {
					t.unkeyed++
				}
			}
			fh.Close()
		}
	}
	return t
}

// findKey looks for a map with a string "src" and an integer "seq" in v
// (Sluice's {"tag","time","record"} envelope, a bare record, or a record
// whose "log" string holds the JSON payload).
func findKey(v any, depth int) (string, int64, bool) {
	if depth > 4 {
		return "", 0, false
	}
	switch x := v.(type) {
	case map[string]any:
		src, ok1 := x["src"].(string)
		num, ok2 := x["seq"].(json.Number)
		if ok1 && ok2 {
			if seq, err := strconv.ParseInt(num.String(), 10, 64); err == nil {
				return src, seq, true
			}
		}
		if rec, ok := x["record"]; ok {
			if s, q, ok := findKey(rec, depth+1); ok {
				return s, q, true
			}
		}
		if log, ok := x["log"].(string); ok && strings.HasPrefix(log, "{") {
			var inner any
			d := json.NewDecoder(strings.NewReader(log))
			d.UseNumber()
			if d.Decode(&inner) == nil {
				return findKey(inner, depth+1)
			}
		}
	case []any:
		for _, e := range x {
			if s, q, ok := findKey(e, depth+1); ok {
				return s, q, true
			}
		}
	}
	return "", 0, false
}

// waitTally re-reads the output until src has every seq in [0, n), stop
// reports true (a process died), or timeout passes; it returns the last
// tally.
func waitTally(t *testing.T, read func() *tally, src string, n int, timeout time.Duration, stop func() bool) *tally {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tl := read()
		if tl.distinct(src, n) == n || time.Now().After(deadline) || (stop != nil && stop()) {
			return tl
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

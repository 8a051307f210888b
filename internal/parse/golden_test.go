package parse

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files testdata/*/*.jsonl")

// goldenNow is the clock of the golden tests: RFC 3164 and klog lines,
// which have no year, are dated from it.
var goldenNow = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

// goldenCases maps testdata/<parser>/<case> to the parser it runs: every
// line of <case>.log gives one line of <case>.jsonl. Lines of files named
// malformed.log must all be rejected.
var goldenCases = map[string]Config{
	"nginx/combined":           {Type: "nginx"},
	"nginx/keep_time":          {Type: "nginx", KeepTimeKey: true},
	"nginx/malformed":          {Type: "nginx"},
	"apache/access":            {Type: "apache"},
	"apache/malformed":         {Type: "apache"},
	"syslog_rfc3164/rfc":       {Type: "syslog_rfc3164"},
	"syslog_rfc3164/linux":     {Type: "syslog_rfc3164", KeepTimeKey: true},
	"syslog_rfc3164/zone":      {Type: "syslog_rfc3164", TimeZone: "America/New_York"},
	"syslog_rfc3164/malformed": {Type: "syslog_rfc3164"},
	"syslog_rfc5424/rfc":       {Type: "syslog_rfc5424"},
	"syslog_rfc5424/keep_time": {Type: "syslog_rfc5424", KeepTimeKey: true},
	"syslog_rfc5424/malformed": {Type: "syslog_rfc5424"},
	"syslog/auto":              {Type: "syslog"},
	"klog/kube":                {Type: "klog"},
	"klog/malformed":           {Type: "klog"},
	"logfmt/slog":              {Type: "logfmt"},
	"logfmt/logrus":            {Type: "logfmt", KeepTimeKey: true},
	"logfmt/types": {Type: "logfmt", Types: map[string]string{
		"status": "int", "dur": "float", "ok": "bool", "at": "time:2006-01-02 15:04:05", "id": "string",
	}},
	"logfmt/malformed": {Type: "logfmt"},
	"regex/fluentbit_apache": {Type: "regex",
		Pattern: `^(?P<host>[^ ]*) [^ ]* (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] "(?P<method>\S+)(?: +(?P<path>[^ ]*) +\S*)?" (?P<code>[^ ]*) (?P<size>[^ ]*)(?: "(?P<referer>[^\"]*)" "(?P<agent>.*)")?$`,
		Types:   map[string]string{"code": "int", "size": "int"}, TimeKey: "time", TimeLayout: clfLayout},
	"json/docker":  {Type: "json", TimeKey: "time"},
	"json/unix_ms": {Type: "json", TimeKey: "ts", TimeLayout: "unix_ms", KeepTimeKey: true},
}

func TestGolden(t *testing.T) {
	for name, c := range goldenCases {
		t.Run(name, func(t *testing.T) {
			c.now = func() time.Time { return goldenNow }
			p, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name)
			lines := readLines(t, path+".log")
			var got strings.Builder
			for _, line := range lines {
				ok := p.Parse(line, nil)
				checkContract(t, p, line, ok, nil)
				if ok && strings.HasSuffix(name, "/malformed") {
					t.Errorf("malformed line accepted: %q", line)
				}
				got.WriteString(resultJSON(t, p, ok))
				got.WriteByte('\n')
			}
			if *update {
				if err := os.WriteFile(path+".jsonl", []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path + ".jsonl")
			if err != nil {
				t.Fatal(err)
			}
			gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
			if len(gl) != len(wl) {
				t.Fatalf("%d results, golden has %d (run with -update and review)", len(gl), len(wl))
			}
			for i := range gl {
				if gl[i] != wl[i] {
					t.Errorf("line %d: %q\ngot  %s\nwant %s", i+1, lines[i], gl[i], wl[i])
				}
			}
		})
	}
}

// readLines returns the lines of a golden input (no trailing newline, a
// final empty line dropped).
func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	return lines
}

// goldenInputs returns every line of the golden inputs of a parser's
// directories, the seed corpus of its fuzz test.
func goldenInputs(t testing.TB, dirs ...string) [][]byte {
	var all [][]byte
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join("testdata", d, "*.log"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no golden inputs in %s", d)
		}
		for _, f := range files {
			all = append(all, readLines(t, f)...)
		}
	}
	return all
}

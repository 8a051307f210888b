package multiline

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewErrors(t *testing.T) {
	cases := map[string]struct {
		cfg  Config
		want string
	}{
		"no rules":         {Config{}, "multiline: no rules"},
		"unknown":          {Config{Rules: []string{"java", "cobol"}}, `multiline: unknown rule "cobol" (known: go, java, javascript, python, ruby)`},
		"negative timeout": {Config{Rules: []string{"go"}, FlushTimeout: -time.Second}, "multiline: negative flush timeout -1s"},
		"negative bytes":   {Config{Rules: []string{"go"}, MaxBytes: -1}, "multiline: negative max bytes -1"},
		"negative lines":   {Config{Rules: []string{"go"}, MaxLines: -1}, "multiline: negative max lines -1"},
		"empty start":      {Config{User: []Rule{{Name: "app", Continue: `^\s`}}}, `multiline: rule "app": start: empty pattern`},
		"bad start":        {Config{User: []Rule{{Name: "app", Start: `^\d+**`}}}, `multiline: rule "app": start: at offset 3: error parsing regexp: invalid nested repetition operator: ` + "`+*`"},
		"bad continue":     {Config{User: []Rule{{Start: `^\d`, Continue: `^\s+[z-a]`}}}, `multiline: user rule 0: continue: at offset 5: error parsing regexp: invalid character class range: ` + "`z-a`"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(c.cfg)
			if err == nil || err.Error() != c.want {
				t.Fatalf("err %v, want %s", err, c.want)
			}
		})
	}
	_, err := New(Config{User: []Rule{{Start: `a(`}}})
	var pe *PatternError
	if !errors.As(err, &pe) || pe.Field != "start" || pe.Offset != 0 || pe.Pattern != "a(" {
		t.Fatalf("err %#v, want a *PatternError for start at offset 0", err)
	}
	if _, err := New(Config{Rules: []string{"Node", " golang", "js", "javascript"}}); err != nil {
		t.Fatalf("aliases: %v", err)
	}
}

// feed adds lines tagged with their 1-based index and returns copies of
// the events, as "first-last:text" strings.
func feed(j *Joiner, lines ...string) []string {
	var got []string
	for i, l := range lines {
		n := int64(i + 1)
		for _, e := range j.Add(nil, []byte(l), n, n, n) {
			got = append(got, describe(e))
		}
	}
	return got
}

func describe(e Event) string {
	s := strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(string(e.Line))
	if e.Truncated {
		s += " (truncated)"
	}
	return itoa(e.Start) + "-" + itoa(e.End) + ":" + s
}

func itoa(n int64) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func mustNew(t testing.TB, c Config) *Joiner {
	t.Helper()
	j, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestPassThroughNoCopy(t *testing.T) {
	j := mustNew(t, Config{Rules: Builtins()})
	line := []byte(`{"level":"info","msg":"GET /health 200"}`)
	out := j.Add(nil, line, 10, 52, 7)
	if len(out) != 1 || &out[0].Line[0] != &line[0] || len(out[0].Line) != len(line) {
		t.Fatalf("events %+v: want the caller's line itself", out)
	}
	if e := out[0]; e.Start != 10 || e.End != 52 || e.Time != 7 || e.Lines != 1 || e.Truncated {
		t.Fatalf("event %+v", e)
	}
	if _, ok := j.Pending(); ok {
		t.Fatal("pending after a line passed through")
	}
}

func TestAllocs(t *testing.T) {
	j := mustNew(t, Config{Rules: Builtins()})
	out := make([]Event, 0, 4)
	if n := testing.AllocsPerRun(1000, func() {
		for _, l := range plainLines {
			out = j.Add(out[:0], l, 0, 1, 0)
		}
	}); n != 0 {
		t.Errorf("no-match path: %v allocs a run", n)
	}
	trace := []string{
		"java.lang.IllegalStateException: no stock row for sku A-17",
		"\tat Shop$Repository.load(Shop.java:19)",
		"\tat Shop$Service.reserve(Shop.java:30)",
		"\t... 2 more",
		"2024-05-02 10:15:03.001 INFO  [http-2] shop.Api - GET /health 200",
	}
	lines := make([][]byte, len(trace))
	for i, l := range trace {
		lines[i] = []byte(l)
	}
	run := func() {
		for _, l := range lines {
			out = j.Add(out[:0], l, 0, 1, 0)
		}
	}
	run() // warm up the buffers
	run()
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Errorf("joining: %v allocs a run", n)
	}
}

func TestBlankLinesHeld(t *testing.T) {
	j := mustNew(t, Config{Rules: []string{"go"}})
	in := []string{
		"panic: boom",
		"",
		"goroutine 1 [running]:",
		"main.main()",
		"\t/app/main.go:5 +0x25",
		"",
		"",
		`level=info msg="restarted"`,
	}
	var got []string
	for i, l := range in {
		n := int64(i + 1)
		for _, e := range j.Add(nil, []byte(l), n, n, n) {
			got = append(got, describe(e))
		}
		p, ok := j.Pending()
		switch {
		case n <= 7 && (!ok || p != 1):
			t.Fatalf("after line %d: pending %d %v, want 1", n, p, ok)
		case n == 8 && ok:
			t.Fatalf("after line %d: pending %d", n, p)
		}
	}
	equal(t, got, []string{
		`1-5:panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:5 +0x25`,
		"6-6:",
		"7-7:",
		`8-8:level=info msg="restarted"`,
	})

	// Past 4 blank lines the group ends.
	j = mustNew(t, Config{Rules: []string{"go"}})
	got = feed(j, "panic: boom", "", "", "", "", "", "goroutine 1 [running]:")
	equal(t, got, []string{"1-1:panic: boom", "2-2:", "3-3:", "4-4:", "5-5:", "6-6:"})
	if p, ok := j.Pending(); !ok || p != 7 {
		t.Fatalf("pending %d %v, want 7 (an orphan goroutine dump)", p, ok)
	}
}

func TestFlushIdleClock(t *testing.T) {
	j := mustNew(t, Config{Rules: []string{"java"}, FlushTimeout: time.Second})
	t0 := time.Unix(1000, 0)
	feed(j, "java.lang.Error: x", "\tat A.b(A.java:1)")
	if out := j.Flush(nil, t0, false); len(out) != 0 {
		t.Fatalf("first flush emitted %v", out)
	}
	if out := j.Flush(nil, t0.Add(999*time.Millisecond), false); len(out) != 0 {
		t.Fatalf("flush before the timeout emitted %v", out)
	}
	j.Add(nil, []byte("\tat A.c(A.java:2)"), 3, 3, 3) // restarts the clock
	if out := j.Flush(nil, t0.Add(1500*time.Millisecond), false); len(out) != 0 {
		t.Fatalf("flush after a new line emitted %v", out)
	}
	if out := j.Flush(nil, t0.Add(2400*time.Millisecond), false); len(out) != 0 {
		t.Fatalf("flush 0.9s after the clock restarted emitted %v", out)
	}
	out := j.Flush(nil, t0.Add(2500*time.Millisecond), false)
	if len(out) != 1 || describe(out[0]) != `1-3:java.lang.Error: x\n\tat A.b(A.java:1)\n\tat A.c(A.java:2)` {
		t.Fatalf("flush at the timeout: %v", out)
	}
	if s := j.Stats(); s.Timeouts != 1 || s.Groups != 1 {
		t.Fatalf("stats %+v", s)
	}
	if out := j.Flush(nil, t0.Add(time.Hour), true); len(out) != 0 {
		t.Fatalf("forced flush with nothing held emitted %v", out)
	}
}

func TestUserRules(t *testing.T) {
	// Start and Continue.
	j := mustNew(t, Config{User: []Rule{{Name: "sql", Start: `^QUERY `, Continue: `^\s+`}}})
	got := feed(j, "boot", "QUERY select *", "  from t", "  where x = 1", "QUERY select 1", "  from dual", "done", "  indented alone")
	equal(t, got, []string{
		"1-1:boot",
		`2-4:QUERY select *\n  from t\n  where x = 1`,
		`5-6:QUERY select 1\n  from dual`,
		"7-7:done",
		"8-8:  indented alone",
	})

	// First line mode: everything up to the next start.
	j = mustNew(t, Config{User: []Rule{{Start: `^\d{4}-\d\d-\d\d `}}})
	got = feed(j, "2024-05-02 a", "x", "", "y", "2024-05-02 b", "2024-05-02 c", "z")
	got = append(got, describe(j.Flush(nil, time.Time{}, true)[0]))
	equal(t, got, []string{`1-4:2024-05-02 a\nx\n\ny`, "5-5:2024-05-02 b", `6-7:2024-05-02 c\nz`})
}

func TestRubyReversed(t *testing.T) {
	// Ruby 2.5 to 2.7 on a terminal print the backtrace reversed.
	j := mustNew(t, Config{Rules: []string{"ruby"}})
	got := feed(j,
		"I, [2020-04-01T10:00:00] INFO -- : boot",
		"Traceback (most recent call last):",
		"\t2: from app.rb:7:in `<main>'",
		"\t1: from app.rb:3:in `bar'",
		"app.rb:2:in `baz': boom (RuntimeError)",
		"I, [2020-04-01T10:00:01] INFO -- : restart",
	)
	equal(t, got, []string{
		"1-1:I, [2020-04-01T10:00:00] INFO -- : boot",
		"2-5:Traceback (most recent call last):\\n\\t2: from app.rb:7:in `<main>'\\n\\t1: from app.rb:3:in `bar'\\napp.rb:2:in `baz': boom (RuntimeError)",
		"6-6:I, [2020-04-01T10:00:01] INFO -- : restart",
	})
}

func TestDotNet(t *testing.T) {
	j := mustNew(t, Config{Rules: []string{"java"}})
	got := feed(j,
		"System.InvalidOperationException: Sequence contains no elements",
		" ---> System.ArgumentException: bad key",
		"   at Shop.Repo.Find(String key) in /src/Repo.cs:line 12",
		"   --- End of inner exception stack trace ---",
		"   at Shop.Api.Get() in /src/Api.cs:line 30",
		"info: Microsoft.Hosting.Lifetime[0]",
	)
	equal(t, got, []string{
		`1-5:System.InvalidOperationException: Sequence contains no elements\n ---> System.ArgumentException: bad key\n   at Shop.Repo.Find(String key) in /src/Repo.cs:line 12\n   --- End of inner exception stack trace ---\n   at Shop.Api.Get() in /src/Api.cs:line 30`,
		"6-6:info: Microsoft.Hosting.Lifetime[0]",
	})
}

func TestTruncation(t *testing.T) {
	// A first line over MaxBytes is cut from the caller's buffer, at a
	// UTF-8 boundary; the group's other lines are dropped.
	j := mustNew(t, Config{Rules: []string{"java"}, MaxBytes: 12})
	got := feed(j, "java.lang.Error: é€€€", "\tat A.b(A.java:1)", "next")
	equal(t, got, []string{"1-1:java.lang.Er (truncated)", "3-3:next"})
	s := j.Stats()
	if s.Truncated != 1 || s.DroppedLines != 1 || s.DroppedBytes != uint64(len("java.lang.Error: é€€€")-12+len("\tat A.b(A.java:1)")) {
		t.Fatalf("stats %+v", s)
	}

	// A continuation is cut at a rune boundary.
	j = mustNew(t, Config{Rules: []string{"java"}, MaxBytes: 16})
	got = feed(j, "Error: x", "\tat é€(A.java:1)", "\tat C.d(C.java:2)", "next")
	equal(t, got, []string{`1-2:Error: x\n\tat é (truncated)`, "4-4:next"})

	// While truncated lines are dropped, nothing is pending but the
	// blank lines held.
	j = mustNew(t, Config{Rules: []string{"go"}, MaxLines: 2})
	got = feed(j, "panic: x", "", "goroutine 1 [running]:", "main.main()")
	equal(t, got, []string{`1-2:panic: x\n (truncated)`})
	if _, ok := j.Pending(); ok {
		t.Fatal("pending while dropping")
	}
	j.Add(nil, nil, 5, 5, 5)
	if p, ok := j.Pending(); !ok || p != 5 {
		t.Fatalf("pending %d %v, want the blank line 5", p, ok)
	}
	got = feed(j, "level=info")
	equal(t, got, []string{"5-5:", "1-1:level=info"})
}

func TestCandidates(t *testing.T) {
	// "TypeError: x" opens both a java and a javascript group; the
	// javascript rule alone knows the "{ ... }" block, and the group
	// follows it.
	j := mustNew(t, Config{Rules: []string{"java", "javascript"}})
	got := feed(j,
		"TypeError: x",
		"    at f (/a.js:1:2) {",
		"  code: 'E'",
		"}",
		"ok",
	)
	equal(t, got, []string{`1-4:TypeError: x\n    at f (/a.js:1:2) {\n  code: 'E'\n}`, "5-5:ok"})
}

package forward

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
)

// Multiline joining on real sockets, with the traces of
// internal/multiline/testdata (real JVM output) sent line by line as
// Docker's fluentd driver does: one Message per line.

const mlTestdata = "../../internal/multiline/testdata"

// mlSample returns the lines of a sample and the texts of its golden
// events.
func mlSample(t testing.TB, name string) (lines, want []string) {
	t.Helper()
	lines, want, _ = mlGolden(t, name)
	return lines, want
}

// mlGolden is mlSample with the number of each event's first line
// (1-based).
func mlGolden(t testing.TB, name string) (lines, want []string, first []int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mlTestdata, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	g, err := os.ReadFile(filepath.Join(mlTestdata, name+".golden"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(g))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Text  string
			First int
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.Text)
		first = append(first, e.First)
	}
	return lines, want, first
}

// mlCID is the container id of test container i.
func mlCID(i int) string { return fmt.Sprintf("%064x", 0xc0ffee00+i) }

// mlLine is Docker's driver's record of one line of container i.
func mlLine(i int, source, log string) []byte {
	return rec("container_id", mlCID(i), "container_name", fmt.Sprintf("/app-%d", i), "source", source, "log", log,
		"com.example.team", "pay")
}

// forwardReq is a Forward-mode request [tag, [entries], option].
func forwardReq(tag string, entries [][]byte, chunk string) []byte {
	b := append([]byte{0x93}, msgp.AppendString(nil, tag)...)
	b = msgp.AppendArrayHeader(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e...)
	}
	return append(b, options(chunk)...)
}

func mlConfig(ml config.Multiline) config.ForwardInput {
	return config.ForwardInput{Multiline: &ml}
}

// mlLogs returns the log of each event, and checks their records.
func mlLogs(t testing.TB, got []storedEvent) []string {
	t.Helper()
	var logs []string
	for _, e := range got {
		logs = append(logs, decodeRecord(t, e.Record)["log"].(string))
	}
	return logs
}

// TestMultilineDockerInterleaved sends the Java sample of two containers
// line by line, interleaved, without acks: on one connection (FireLens,
// Fluent Bit: containers multiplexed) and on one connection each
// (Docker's driver). Each trace is one event with its lines, the first
// line's time and record; the other lines are stored as they would be
// without multiline.
func TestMultilineDockerInterleaved(t *testing.T) {
	lines, want := mlSample(t, "java/shop")
	for _, conns := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d connections", conns), func(t *testing.T) {
			s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java", "go"}, FlushTimeout: time.Minute}), nil)
			cs := []net.Conn{s.dial(t)}
			if conns == 2 {
				cs = append(cs, s.dial(t))
			}
			const base = 1700000000
			for i, l := range lines {
				for k := range 2 {
					// Container 1 logs to stderr, one second behind.
					src, sec := "stdout", uint32(base+i)
					if k == 1 {
						src, sec = "stderr", uint32(base+1000+i)
					}
					if _, err := cs[k%len(cs)].Write(message(fmt.Sprintf("docker.%d", k), sec, mlLine(k, src, l), "")); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := s.q.waitEvents(t, 2*len(want))
			time.Sleep(50 * time.Millisecond)
			got = s.q.snapshot()
			by := map[string][]storedEvent{}
			for _, e := range got {
				by[e.Tag] = append(by[e.Tag], e)
			}
			for k := range 2 {
				evs := by[fmt.Sprintf("docker.%d", k)]
				if logs := mlLogs(t, evs); !reflect.DeepEqual(logs, want) {
					t.Fatalf("container %d: %d events\n got %q\nwant %q", k, len(logs), logs, want)
				}
				// Each event has the time and the record of its first line.
				src, sec := "stdout", int64(base)
				if k == 1 {
					src, sec = "stderr", base+1000
				}
				n := 0
				for i, e := range evs {
					if e.Time != (sec+int64(n))*1e9 {
						t.Errorf("container %d event %d: time %d, want line %d's", k, i, e.Time, n)
					}
					r := decodeRecord(t, e.Record)
					wantRec := map[string]any{"log": want[i], "stream": src, "container_id": mlCID(k),
						"container_name": fmt.Sprintf("app-%d", k), "labels": map[string]any{"com.example.team": "pay"}}
					if !reflect.DeepEqual(r, wantRec) {
						t.Errorf("container %d event %d: %v", k, i, r)
					}
					n += strings.Count(want[i], "\n") + 1
				}
			}
			if n := s.counter(`sluice_input_multiline_groups_total{input="fw"}`); n != 10 {
				t.Errorf("groups_total %d, want 10", n)
			}
			if n := s.counter(`sluice_input_multiline_timeouts_total{input="fw"}`); n != 0 {
				t.Errorf("timeouts_total %d", n)
			}
		})
	}
}

// TestMultilineAllRules: the mixed sample (Java, Go, Python, Ruby and
// Node traces, blank lines inside and between them) with every built-in
// rule, on the stdout and stderr of one container interleaved: each
// stream gets the golden events, each with its first line's time (blank
// lines a group held and then let go keep their own).
func TestMultilineAllRules(t *testing.T) {
	lines, want, first := mlGolden(t, "mixed/all")
	s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java", "go", "python", "ruby", "javascript"}, FlushTimeout: time.Minute}), nil)
	c := s.dial(t)
	srcs := []string{"stdout", "stderr"}
	var buf []byte
	for i, l := range lines {
		for k, src := range srcs {
			buf = append(buf, message("app", uint32(1700000000+10000*k+i), mlLine(0, src, l), "")...)
		}
		if len(buf) > 32<<10 {
			c.Write(buf)
			buf = buf[:0]
		}
	}
	c.Write(buf)
	c.Close() // the last group is stored at the close
	s.q.waitEvents(t, 2*len(want))
	time.Sleep(50 * time.Millisecond)
	by := map[string][]storedEvent{}
	for _, e := range s.q.snapshot() {
		r := decodeRecord(t, e.Record)
		by[r["stream"].(string)] = append(by[r["stream"].(string)], e)
	}
	for k, src := range srcs {
		if logs := mlLogs(t, by[src]); !reflect.DeepEqual(logs, want) {
			t.Fatalf("%s: %d events, want %d\n got %q\nwant %q", src, len(logs), len(want), logs, want)
		}
		for i, e := range by[src] {
			if wt := int64(1700000000+10000*k+first[i]-1) * 1e9; e.Time != wt {
				t.Errorf("%s event %d (%q): time %d, want line %d's", src, i, want[i], e.Time, first[i])
			}
		}
	}
}

// TestMultilineHeldBlankLines: blank lines a group held and then let go
// (the trace did not go on) are stored after it, each with its own time
// and record; the group has its first line's record (its own labels).
func TestMultilineHeldBlankLines(t *testing.T) {
	s := startServer(t, mlConfig(config.Multiline{Rules: []string{"go", "python"}, FlushTimeout: time.Minute}), nil)
	c := s.dial(t)
	lines := []string{"panic: boom", "", "goroutine 1 [running]:", "main.main()", "\t/app/main.go:5 +0x1d", "", "", "next log line"}
	for i, l := range lines {
		r := rec("container_id", mlCID(0), "container_name", "/app", "source", "stderr", "log", l, "n", fmt.Sprint(i))
		c.Write(message("t", uint32(1700000000+i), r, ""))
	}
	got := s.q.waitEvents(t, 4)
	want := []struct {
		log  string
		line int
	}{{strings.Join(lines[:5], "\n"), 0}, {"", 5}, {"", 6}, {"next log line", 7}}
	if len(got) != len(want) {
		t.Fatalf("%d events: %q", len(got), mlLogs(t, got))
	}
	for i, w := range want {
		r := decodeRecord(t, got[i].Record)
		if r["log"] != w.log || got[i].Time != int64(1700000000+w.line)*1e9 ||
			!reflect.DeepEqual(r["labels"], map[string]any{"n": fmt.Sprint(w.line)}) || r["stream"] != "stderr" {
			t.Errorf("event %d: %v at %d, want line %d", i, r, got[i].Time, w.line)
		}
	}
}

// TestMultilineNonDockerRecords: records of another shape (Fluent Bit)
// keep their fields in order, log replaced by the joined lines; a line
// that joins nothing is stored byte for byte; a record without a log
// passes, after what its stream held.
func TestMultilineNonDockerRecords(t *testing.T) {
	s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java"}, FlushTimeout: time.Minute}), nil)
	c := s.dial(t)
	fb := func(log string) []byte { return rec("pod", "shop-1", "log", log, "level", "x") }
	plain := fb("plain line")
	for i, r := range [][]byte{
		plain,
		fb("java.lang.IllegalStateException: boom"),
		fb("\tat Shop.main(Shop.java:60)"),
		rec("metric", "42"), // no log: stored after the trace it cut
		fb("\tat Shop.run(Shop.java:70)"),
		fb("done"),
	} {
		c.Write(message("fb", uint32(1700000000+i), r, ""))
	}
	got := s.q.waitEvents(t, 5)
	if !bytes.Equal(got[0].Record, plain) {
		t.Errorf("plain line %x, want %x", got[0].Record, plain)
	}
	if w := fb("java.lang.IllegalStateException: boom\n\tat Shop.main(Shop.java:60)"); !bytes.Equal(got[1].Record, w) || got[1].Time != 1700000001e9 {
		t.Errorf("trace %v at %d", decodeRecord(t, got[1].Record), got[1].Time)
	}
	if !bytes.Equal(got[2].Record, rec("metric", "42")) {
		t.Errorf("record without log: %v", decodeRecord(t, got[2].Record))
	}
	if logs := mlLogs(t, got[3:]); !reflect.DeepEqual(logs, []string{"\tat Shop.run(Shop.java:70)", "done"}) {
		t.Errorf("after: %q", logs)
	}
}

// TestMultilineFlushTimeout: a trace at the end of the input is stored
// flush_timeout after its last line, with no further byte on the
// connection (the read loop wakes for it), and the connection stays up.
func TestMultilineFlushTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java"}, FlushTimeout: timeout}), nil)
	c := s.dial(t)
	trace := []string{"java.lang.IllegalStateException: boom", "\tat Shop.load(Shop.java:19)", "\tat Shop.main(Shop.java:60)"}
	c.Write(message("t", 1700000000, mlLine(0, "stdout", "before"), ""))
	for i, l := range trace {
		c.Write(message("t", uint32(1700000001+i), mlLine(0, "stdout", l), ""))
	}
	sent := time.Now()
	s.q.waitEvents(t, 1)
	time.Sleep(timeout / 2)
	if n := len(s.q.snapshot()); n != 1 {
		t.Fatalf("%d events before the flush timeout", n)
	}
	got := s.q.waitEvents(t, 2)
	d := time.Since(sent)
	if d < timeout || d > timeout+2*time.Second {
		t.Errorf("trace stored %s after its last line, flush_timeout %s", d, timeout)
	}
	if logs := mlLogs(t, got); !reflect.DeepEqual(logs, []string{"before", strings.Join(trace, "\n")}) || got[1].Time != 1700000001e9 {
		t.Fatalf("logs %q", logs)
	}
	if n := s.counter(`sluice_input_multiline_timeouts_total{input="fw"}`); n != 1 {
		t.Errorf("timeouts_total %d, want 1", n)
	}
	// The connection is still served; a new trace joins again.
	c.Write(message("t", 1700000010, mlLine(0, "stdout", "java.lang.Error: again"), ""))
	c.Write(message("t", 1700000011, mlLine(0, "stdout", "\tat A.b(A.java:1)"), ""))
	c.Write(message("t", 1700000012, mlLine(0, "stdout", "after"), ""))
	if logs := mlLogs(t, s.q.waitEvents(t, 4)[2:]); !reflect.DeepEqual(logs, []string{"java.lang.Error: again\n\tat A.b(A.java:1)", "after"}) {
		t.Fatalf("logs %q", logs)
	}
}

// TestMultilineHeldAtClose: a held trace is stored when its connection
// ends, and when the input stops, never dropped.
func TestMultilineHeldAtClose(t *testing.T) {
	trace := []string{"java.lang.IllegalStateException: boom", "\tat Shop.load(Shop.java:19)"}
	for _, how := range []string{"client close", "input stop"} {
		t.Run(how, func(t *testing.T) {
			s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java"}, FlushTimeout: time.Hour}), nil)
			c := s.dial(t)
			for i, l := range trace {
				c.Write(message("t", uint32(1700000000+i), mlLine(0, "stdout", l), ""))
			}
			time.Sleep(100 * time.Millisecond)
			if n := len(s.q.snapshot()); n != 0 {
				t.Fatalf("%d events while the trace is open", n)
			}
			start := time.Now()
			if how == "client close" {
				c.Close()
			} else {
				s.stop()
			}
			got := s.q.waitEvents(t, 1)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("stored %s after the close", d)
			}
			if logs := mlLogs(t, got); !reflect.DeepEqual(logs, []string{strings.Join(trace, "\n")}) {
				t.Fatalf("logs %q", logs)
			}
			if n := s.counter(`sluice_input_multiline_cut_total{input="fw",reason="close"}`); n != 1 {
				t.Errorf("cut_total{close} %d, want 1", n)
			}
		})
	}
}

// TestMultilineForwardModeAck: a Forward-mode request with a chunk (Fluent
// Bit, fluent-logger in batches) has its traces joined within the request;
// the one open at its end is closed there, and the ack comes after every
// event of the request was stored. The next request's lines do not join
// that trace: they were acked apart.
func TestMultilineForwardModeAck(t *testing.T) {
	s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java"}, FlushTimeout: time.Hour}), nil)
	c := s.dial(t)
	lines := []string{
		"start",
		"java.lang.IllegalStateException: boom",
		"\tat Shop.load(Shop.java:19)",
		"\tat Shop.main(Shop.java:60)",
		"middle",
		"java.lang.Exception: second",
		"\tat Shop.persist(Shop.java:47)",
	}
	var entries [][]byte
	for i, l := range lines {
		entries = append(entries, entry(uint32(1700000000+i), 0, mlLine(0, "stdout", l)))
	}
	c.Write(forwardReq("fw.app", entries, "c1"))
	if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
		t.Fatalf("ack %q", got)
	}
	// Acked: every event of the request is stored already.
	want := []string{"start", strings.Join(lines[1:4], "\n"), "middle", strings.Join(lines[5:], "\n")}
	got := s.q.snapshot()
	if logs := mlLogs(t, got); !reflect.DeepEqual(logs, want) {
		t.Fatalf("at the ack:\n got %q\nwant %q", logs, want)
	}
	if got[1].Time != 1700000001e9 || got[3].Time != 1700000005e9 {
		t.Errorf("times %d %d", got[1].Time, got[3].Time)
	}
	if n := s.counter(`sluice_input_multiline_cut_total{input="fw",reason="ack"}`); n != 1 {
		t.Errorf("cut_total{ack} %d, want 1", n)
	}
	// The rest of the second trace, in a request of its own.
	c.Write(forwardReq("fw.app", [][]byte{entry(1700000010, 0, mlLine(0, "stdout", "\tat Shop.main(Shop.java:67)")),
		entry(1700000011, 0, mlLine(0, "stdout", "end"))}, "c2"))
	if got := readN(t, c, len(ack("c2"))); !bytes.Equal(got, ack("c2")) {
		t.Fatalf("ack %q", got)
	}
	if logs := mlLogs(t, s.q.snapshot()[4:]); !reflect.DeepEqual(logs, []string{"\tat Shop.main(Shop.java:67)", "end"}) {
		t.Fatalf("second request: %q", logs)
	}
	// (Counted after the write.)
	for deadline := time.Now().Add(5 * time.Second); s.counter(`sluice_input_acks_total{input="fw"}`) != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("acks_total %d, want 2", s.counter(`sluice_input_acks_total{input="fw"}`))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMultilineMaxBytes: a trace over max_bytes is stored cut (at a line's
// UTF-8 boundary), once, its further lines dropped and counted; the lines
// after it are untouched.
func TestMultilineMaxBytes(t *testing.T) {
	s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java"}, MaxBytes: 200, FlushTimeout: time.Hour}), nil)
	c := s.dial(t)
	lines := []string{"java.lang.StackOverflowError"}
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("\tat Shop.depth(Shop.java:%d)", 50+i))
	}
	lines = append(lines, "after")
	for i, l := range lines {
		c.Write(message("t", uint32(1700000000+i), mlLine(0, "stdout", l), ""))
	}
	got := s.q.waitEvents(t, 2)
	logs := mlLogs(t, got)
	if len(logs) != 2 || len(logs[0]) > 200 || !strings.HasPrefix(strings.Join(lines, "\n"), logs[0]) || logs[1] != "after" {
		t.Fatalf("%d events: %q", len(logs), logs)
	}
	if n := s.counter(`sluice_input_multiline_truncated_total{input="fw"}`); n != 1 {
		t.Errorf("truncated_total %d, want 1", n)
	}
}

// TestMultilinePartialAndParser: a frame longer than Docker's 16 KiB
// chunks comes in fragments (no ack); reassembled, it joins its trace; the
// parser then reads the joined event (multiline runs before it, as in the
// docker input).
func TestMultilinePartialAndParser(t *testing.T) {
	cfg := mlConfig(config.Multiline{Custom: []config.MultilineRule{{Name: "ts", Start: `^\d{4}-\d\d-\d\d `}}, FlushTimeout: time.Hour})
	cfg.Parser = &config.Parser{Type: "regex", Pattern: `^\S+ \S+ (?P<level>[A-Z]+) `}
	s := startServer(t, cfg, nil)
	c := s.dial(t)
	long := "\tat Shop.main(Shop.java:60) " + strings.Repeat("x", 40<<10)
	send := func(sec uint32, r []byte) { c.Write(message("t", sec, r, "")) }
	send(1700000000, mlLine(0, "stdout", "2024-05-02 10:15:02.483 ERROR [http-1] checkout failed"))
	send(1700000001, mlLine(0, "stdout", "java.lang.IllegalArgumentException: checkout rejected"))
	for i, off := 0, 0; off < len(long); i++ {
		end := min(off+16384, len(long))
		send(1700000002, rec("container_id", mlCID(0), "container_name", "/app-0", "source", "stdout", "log", long[off:end],
			"partial_message", "true", "partial_id", "p1", "partial_ordinal", fmt.Sprint(i+1), "partial_last", fmt.Sprint(end == len(long))))
		off = end
	}
	send(1700000003, mlLine(0, "stdout", "2024-05-02 10:15:03.001 INFO [http-2] ok"))
	got := s.q.waitEvents(t, 1)
	r := decodeRecord(t, got[0].Record)
	want := "2024-05-02 10:15:02.483 ERROR [http-1] checkout failed\njava.lang.IllegalArgumentException: checkout rejected\n" + long
	if r["log"] != want || r["level"] != "ERROR" || got[0].Time != 1700000000e9 {
		t.Fatalf("event: level %v, log of %d bytes (want %d), time %d", r["level"], len(fmt.Sprint(r["log"])), len(want), got[0].Time)
	}
	if _, ok := r["partial_id"]; ok {
		t.Errorf("partial fields kept: %v", keys(r))
	}
}

// TestMultilineMaxGroups: one connection feeding more streams than it
// follows: the least recently used one's group is stored to make room
// (counted), and every line arrives once.
func TestMultilineMaxGroups(t *testing.T) {
	s := startServer(t, mlConfig(config.Multiline{Rules: []string{"java"}, FlushTimeout: time.Hour}), nil)
	c := s.dial(t)
	n := maxMultilineGroups + 1
	for k := range n {
		c.Write(message("t", 1700000000, mlLine(k, "stdout", "java.lang.Error: boom"), ""))
		c.Write(message("t", 1700000001, mlLine(k, "stdout", fmt.Sprintf("\tat A.b(A.java:%d)", k)), ""))
	}
	got := s.q.waitEvents(t, 1)
	r := decodeRecord(t, got[0].Record)
	if r["container_id"] != mlCID(0) || r["log"] != "java.lang.Error: boom\n\tat A.b(A.java:0)" {
		t.Fatalf("first stored: %v", r)
	}
	if n := s.counter(`sluice_input_multiline_cut_total{input="fw",reason="max_groups"}`); n != 1 {
		t.Errorf("cut_total{max_groups} %d, want 1", n)
	}
	c.Close()
	got = s.q.waitEvents(t, n)
	seen := map[string]bool{}
	for _, e := range got {
		r := decodeRecord(t, e.Record)
		seen[r["container_id"].(string)] = true
		if !strings.HasPrefix(r["log"].(string), "java.lang.Error: boom\n\tat A.b") {
			t.Errorf("event %v", r)
		}
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("%d events of %d streams, want %d", len(got), len(seen), n)
	}
}

// TestMultilineBadRule: New refuses a multiline section the joiner
// refuses (config validation says the same, with the file's line).
func TestMultilineBadRule(t *testing.T) {
	for _, tc := range []struct {
		ml   config.Multiline
		want string
	}{
		{config.Multiline{Rules: []string{"cobol"}}, `forward input fw: multiline: unknown rule "cobol"`},
		{config.Multiline{Custom: []config.MultilineRule{{Name: "x", Start: "[a-"}}}, `rule "x": start: at offset 0`},
		{config.Multiline{}, "no rules"},
	} {
		_, err := New("fw", mlConfig(tc.ml), newRouter(t, &fakeQueue{}), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.ml, err, tc.want)
		}
	}
}

// BenchmarkMessageModeMultiline: BenchmarkMessageMode's Docker stream with
// multiline on (java and go rules): lines no rule takes ("plain": the
// cost of finding their stream and passing them through), and the Java
// sample, 36 lines joined into 12 events (b.N counts stored events).
func BenchmarkMessageModeMultiline(b *testing.B) {
	cfg := mlConfig(config.Multiline{Rules: []string{"java", "go"}})
	b.Run("plain", func(b *testing.B) {
		benchConn(b, cfg, dockerBlock(1000, false), 1000, 64<<10)
	})
	b.Run("java", func(b *testing.B) {
		lines, want := mlSample(b, "java/shop")
		var block []byte
		for i, l := range lines {
			block = append(block, message("7f1c0ad52e4b", uint32(1700000000+i), dockerRecord("/web", "stdout", l), "")...)
		}
		benchConn(b, cfg, block, len(want), 64<<10)
	})
}

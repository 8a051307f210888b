package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/wire"
)

// t0 is the first event time of the test queues.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// record is a msgpack map of string members, in order.
func record(kv ...string) []byte {
	b := msgp.AppendMapHeader(nil, uint32(len(kv)/2))
	for _, s := range kv {
		b = msgp.AppendString(b, s)
	}
	return b
}

// deadLetter is record kv with the member a dead-letter queue adds.
func deadLetter(kv ...string) []byte {
	b := msgp.AppendMapHeader(nil, uint32(len(kv)/2)+1)
	for _, s := range kv {
		b = msgp.AppendString(b, s)
	}
	b = msgp.AppendString(b, deadLetterKey)
	b = msgp.AppendMapHeader(b, 2)
	b = msgp.AppendString(msgp.AppendString(b, "output"), "app")
	b = msgp.AppendString(msgp.AppendString(b, "reason"), "rejected")
	return b
}

// appendChunk stores one chunk of records under tag, the i-th at t0+at+i s.
func appendChunk(t *testing.T, q *buffer.Queue, tag string, at time.Duration, recs ...[]byte) {
	t.Helper()
	var e []byte
	for i, r := range recs {
		e = wire.AppendEntry(e, t0.Add(at+time.Duration(i)*time.Second).UnixNano(), r)
	}
	if err := q.Append(context.Background(), []byte(tag), len(recs), e); err != nil {
		t.Fatal(err)
	}
}

func openTestQueue(t *testing.T, dir string) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// testQueues builds under a new data dir: buffer/app (3 chunks, the first
// acked), deadletter/app (one chunk of 2 dead letters), buffer/old (an
// output not in the config, 1 chunk), and a config naming app and web.
func testQueues(t *testing.T) (dataDir, cfgFile string) {
	t.Helper()
	dataDir = t.TempDir()
	q := openTestQueue(t, filepath.Join(dataDir, "buffer", "app"))
	appendChunk(t, q, "app.web", 0, record("msg", "a0"))
	appendChunk(t, q, "app.web", 10*time.Second, record("msg", "a1"), record("msg", "a2"))
	appendChunk(t, q, "app.db", 20*time.Second, record("msg", "a3"))
	now, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := q.Next(now)
	if err != nil {
		t.Fatal(err)
	}
	q.Ack(c.ID)
	q.Close()
	dl := openTestQueue(t, filepath.Join(dataDir, "deadletter", "app"))
	appendChunk(t, dl, "app.web", 30*time.Second, deadLetter("msg", "d0"), deadLetter("msg", "d1"))
	dl.Close()
	old := openTestQueue(t, filepath.Join(dataDir, "buffer", "old"))
	appendChunk(t, old, "legacy", time.Minute, record("msg", "o0"))
	old.Close()
	cfgFile = filepath.Join(t.TempDir(), "agent.yml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`data_dir: %s
inputs: [{id: f, type: forward, listen: "127.0.0.1:0"}]
outputs:
  - {id: app, type: file, path: %s/app.jsonl}
  - {id: web, type: file, path: %s/web.jsonl}
default_output: app
`, dataDir, dataDir, dataDir)), 0o644)
	return dataDir, cfgFile
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestBufferLs: every queue on disk with its pending chunks, events,
// bytes, event times and ack position; outputs not in the config are
// noted; a queue a running agent holds is listed, not read.
func TestBufferLs(t *testing.T) {
	dataDir, cfgFile := testQueues(t)
	code, out, errs := runCmd("buffer", "ls", "--config", cfgFile)
	want := `OUTPUT  QUEUE        CHUNKS  EVENTS  BYTES  OLDEST                NEWEST                ACKED  NOTE
app     buffer       2       3       150    2026-03-04T05:06:17Z  2026-03-04T05:06:27Z  1:44   
app     dead-letter  1       2       145    2026-03-04T05:06:37Z  2026-03-04T05:06:38Z  1:0    
old     buffer       1       1       43     2026-03-04T05:07:07Z  2026-03-04T05:07:07Z  1:0    not in config
`
	if code != 0 || out != want || errs != "" {
		t.Errorf("ls: code %d\n%s\nwant\n%s\nstderr %s", code, out, want, errs)
	}

	// A running agent holds web's queue: listed as in use, not read.
	q := openTestQueue(t, filepath.Join(dataDir, "buffer", "web"))
	defer q.Close()
	code, out, _ = runCmd("buffer", "ls", "--data-dir", dataDir)
	want = `OUTPUT  QUEUE        CHUNKS  EVENTS  BYTES  OLDEST                NEWEST                ACKED  NOTE
app     buffer       2       3       150    2026-03-04T05:06:17Z  2026-03-04T05:06:27Z  1:44   
app     dead-letter  1       2       145    2026-03-04T05:06:37Z  2026-03-04T05:06:38Z  1:0    
old     buffer       1       1       43     2026-03-04T05:07:07Z  2026-03-04T05:07:07Z  1:0    
web     buffer       -       -       -      -                     -                     -      in use by a running agent: not read
queues in use: see ` + "`agent top`" + ` or /status of the running agent
`
	if code != 0 || out != want {
		t.Errorf("ls --data-dir: code %d\n%s\nwant\n%s", code, out, want)
	}

	code, out, _ = runCmd("buffer", "ls", "--data-dir", dataDir, "--json")
	var rows []lsRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 0 || len(rows) != 4 {
		t.Fatalf("ls --json: code %d, %v:\n%s", code, err, out)
	}
	if r := rows[1]; r.Kind != "dead-letter" || r.Events != 2 || r.Chunks != 1 || r.Acked != "1:0" || !r.Oldest.Equal(t0.Add(30*time.Second)) || r.InUse {
		t.Errorf("json row %+v", r)
	}
	if !rows[3].InUse {
		t.Errorf("web not in use: %+v", rows[3])
	}

	code, out, _ = runCmd("buffer", "ls", "--data-dir", t.TempDir())
	if code != 0 || !strings.HasPrefix(out, "no queues under ") {
		t.Errorf("empty data dir: code %d %q", code, out)
	}
}

// TestBufferInspect: the pending events as JSON lines, --limit, the
// dead-letter queue, and a refusal for a queue in use.
func TestBufferInspect(t *testing.T) {
	dataDir, cfgFile := testQueues(t)
	code, out, errs := runCmd("buffer", "inspect", "app", "--config", cfgFile)
	want := `{"tag":"app.web","time":"2026-03-04T05:06:17Z","record":{"msg":"a1"}}
{"tag":"app.web","time":"2026-03-04T05:06:18Z","record":{"msg":"a2"}}
{"tag":"app.db","time":"2026-03-04T05:06:27Z","record":{"msg":"a3"}}
`
	if code != 0 || out != want || errs != "agent buffer inspect: buffer/app: 3 events from 2 chunks\n" {
		t.Errorf("inspect: code %d\n%s\nstderr %q", code, out, errs)
	}
	code, out, _ = runCmd("buffer", "inspect", "--data-dir", dataDir, "app", "--limit", "1")
	if code != 0 || out != strings.SplitAfter(want, "\n")[0] {
		t.Errorf("--limit 1: code %d %q", code, out)
	}
	code, out, _ = runCmd("buffer", "inspect", "app", "--dead-letter", "--data-dir", dataDir)
	want = `{"tag":"app.web","time":"2026-03-04T05:06:37Z","record":{"msg":"d0","_dead_letter":{"output":"app","reason":"rejected"}}}
{"tag":"app.web","time":"2026-03-04T05:06:38Z","record":{"msg":"d1","_dead_letter":{"output":"app","reason":"rejected"}}}
`
	if code != 0 || out != want {
		t.Errorf("--dead-letter: code %d\n%s", code, out)
	}
	q := openTestQueue(t, filepath.Join(dataDir, "buffer", "app"))
	code, out, errs = runCmd("buffer", "inspect", "app", "--data-dir", dataDir)
	q.Close()
	if code != 1 || out != "" || errs != "agent buffer inspect: buffer/app is in use by a running agent (the queue is locked); stop the agent first (or watch it live: agent tap app)\n" {
		t.Errorf("locked: code %d %q %q", code, out, errs)
	}
	code, _, errs = runCmd("buffer", "inspect", "nope", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(errs, "no queue buffer/nope under") {
		t.Errorf("missing: code %d %q", code, errs)
	}
	if code, _, _ = runCmd("buffer", "inspect", "../x", "--data-dir", dataDir); code != 2 {
		t.Errorf("bad id: code %d", code)
	}
}

// TestBufferReplay: a dead-letter queue moves into another output's queue
// without its _dead_letter members; the source chunks are acked, so a
// rerun replays nothing; --keep-dead-letter keeps them; a buffer moves
// too; a locked target, a replay into itself and a target without room
// are refused.
func TestBufferReplay(t *testing.T) {
	dataDir, cfgFile := testQueues(t)
	code, out, errs := runCmd("buffer", "replay", "--dead-letter", "app", "--to", "web", "--config", cfgFile)
	if want := "replayed 2 events (1 chunks) from deadletter/app into buffer/web; _dead_letter removed from 2 records\n" +
		"the replayed chunks are acked in deadletter/app: a rerun replays only what arrived since\n"; code != 0 || out != want || errs != "" {
		t.Fatalf("replay: code %d\n%s\nstderr %s", code, out, errs)
	}
	_, out, _ = runCmd("buffer", "inspect", "web", "--config", cfgFile)
	if want := `{"tag":"app.web","time":"2026-03-04T05:06:37Z","record":{"msg":"d0"}}
{"tag":"app.web","time":"2026-03-04T05:06:38Z","record":{"msg":"d1"}}
`; out != want {
		t.Errorf("web after replay:\n%s", out)
	}
	code, out, _ = runCmd("buffer", "replay", "--dead-letter", "app", "--to", "web", "--config", cfgFile)
	if code != 0 || out != "nothing to replay: deadletter/app has no pending events\n" {
		t.Errorf("rerun: code %d %q", code, out)
	}

	// New dead letters arrive; kept with their member this time.
	dl := openTestQueue(t, filepath.Join(dataDir, "deadletter", "app"))
	appendChunk(t, dl, "app.web", 40*time.Second, deadLetter("msg", "d2"))
	dl.Close()
	code, out, _ = runCmd("buffer", "replay", "app", "--dead-letter", "--keep-dead-letter", "--to", "web", "--config", cfgFile)
	if code != 0 || !strings.HasPrefix(out, "replayed 1 events (1 chunks) from deadletter/app into buffer/web\n") {
		t.Errorf("keep: code %d %q", code, out)
	}
	_, out, _ = runCmd("buffer", "inspect", "web", "--config", cfgFile)
	if !strings.HasSuffix(out, `{"tag":"app.web","time":"2026-03-04T05:06:47Z","record":{"msg":"d2","_dead_letter":{"output":"app","reason":"rejected"}}}`+"\n") {
		t.Errorf("web after keep:\n%s", out)
	}

	// A buffer moves into another output: app's pending events leave it.
	code, out, _ = runCmd("buffer", "replay", "app", "--to", "web", "--config", cfgFile)
	if code != 0 || !strings.HasPrefix(out, "replayed 3 events (2 chunks) from buffer/app into buffer/web\n") {
		t.Errorf("buffer replay: code %d %q", code, out)
	}
	_, out, _ = runCmd("buffer", "ls", "--config", cfgFile, "--json")
	var rows []lsRow
	json.Unmarshal([]byte(out), &rows)
	events := map[string]int64{}
	for _, r := range rows {
		events[r.Dir] = r.Events
	}
	if want := map[string]int64{"buffer/app": 0, "deadletter/app": 0, "buffer/old": 1, "buffer/web": 6}; fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events after the replays %v, want %v", events, want)
	}

	for _, c := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"into itself", []string{"app", "--to", "app"}, 2, "buffer/app cannot be replayed into itself"},
		{"target not in config", []string{"old", "--to", "nope"}, 1, `has no output "nope"`},
		{"no --to", []string{"old"}, 2, "give OUTPUT, --to OUTPUT2 and --config FILE"},
		{"no source", []string{"gone", "--to", "web"}, 1, "no queue buffer/gone under"},
	} {
		code, _, errs := runCmd(append([]string{"buffer", "replay", "--config", cfgFile}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.err) {
			t.Errorf("%s: code %d %q", c.name, code, errs)
		}
	}
	q := openTestQueue(t, filepath.Join(dataDir, "buffer", "web"))
	code, _, errs = runCmd("buffer", "replay", "old", "--to", "web", "--config", cfgFile)
	q.Close()
	if code != 1 || errs != "agent buffer replay: buffer/web is in use by a running agent (the queue is locked); stop the agent first\n" {
		t.Errorf("locked target: code %d %q", code, errs)
	}
	// A target without room: web may hold 2 segments of 64 bytes.
	small := filepath.Join(t.TempDir(), "small.yml")
	os.WriteFile(small, []byte(fmt.Sprintf("data_dir: %s\ninputs: [{id: f, type: forward, listen: \"127.0.0.1:0\"}]\noutputs: [{id: tiny, type: file, path: /dev/null, buffer: {max_bytes: 128, segment_bytes: 64, chunk_bytes: 32}}]\n", dataDir)), 0o644)
	code, _, errs = runCmd("buffer", "replay", "web", "--to", "tiny", "--config", small)
	if code != 1 || !strings.Contains(errs, "bytes, buffer/tiny has room for 128 (max_bytes 128): raise its buffer.max_bytes or let it drain first") {
		t.Errorf("no room: code %d %q", code, errs)
	}
	// A chunk larger than the target's segments is re-cut.
	sq := openTestQueue(t, filepath.Join(dataDir, "buffer", "split"))
	appendChunk(t, sq, "t", 0, record("m", "1"), record("m", "2"), record("m", "3"))
	sq.Close()
	code, out, errs = runCmd("buffer", "replay", "split", "--to", "tiny", "--config", small)
	if code != 0 || !strings.HasPrefix(out, "replayed 3 events (1 chunks) from buffer/split into buffer/tiny\n") {
		t.Errorf("split: code %d %q %q", code, out, errs)
	}
	_, out, _ = runCmd("buffer", "ls", "--config", small, "--json")
	json.Unmarshal([]byte(out), &rows)
	for _, r := range rows {
		if r.Dir == "buffer/tiny" && (r.Chunks != 2 || r.Events != 3) {
			t.Errorf("tiny after the split: %+v", r)
		}
	}
}

// TestBufferDrop: without --yes it refuses when stdin is no terminal and
// asks when it is; --yes drops; a queue in use is refused.
func TestBufferDrop(t *testing.T) {
	dataDir, cfgFile := testQueues(t)
	defer func(tty func() bool) { stdinIsTerminal = tty }(stdinIsTerminal)
	defer func(r io.Reader) { stdin = r }(stdin)
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(dataDir, p)); return err == nil }

	stdinIsTerminal = func() bool { return false }
	code, _, errs := runCmd("buffer", "drop", "old", "--config", cfgFile)
	if code != 1 || errs != "agent buffer drop: not dropping buffer/old (1 events in 1 chunks, 43 bytes): give --yes (stdin is not a terminal)\n" || !exists("buffer/old") {
		t.Errorf("no terminal: code %d %q", code, errs)
	}
	stdinIsTerminal = func() bool { return true }
	stdin = strings.NewReader("n\n")
	code, _, errs = runCmd("buffer", "drop", "old", "--config", cfgFile)
	if code != 1 || errs != "drop buffer/old (1 events in 1 chunks, 43 bytes)? [y/N] not dropped\n" || !exists("buffer/old") {
		t.Errorf("answered no: code %d %q", code, errs)
	}
	stdin = strings.NewReader("y\n")
	code, out, _ := runCmd("buffer", "drop", "old", "--config", cfgFile)
	if code != 0 || out != "dropped buffer/old (1 events in 1 chunks, 43 bytes)\n" || exists("buffer/old") {
		t.Errorf("answered yes: code %d %q", code, out)
	}
	code, out, _ = runCmd("buffer", "drop", "app", "--dead-letter", "--yes", "--data-dir", dataDir)
	if code != 0 || out != "dropped deadletter/app (2 events in 1 chunks, 145 bytes)\n" || exists("deadletter/app") || !exists("buffer/app") {
		t.Errorf("--yes: code %d %q", code, out)
	}
	q := openTestQueue(t, filepath.Join(dataDir, "buffer", "app"))
	code, _, errs = runCmd("buffer", "drop", "app", "--yes", "--config", cfgFile)
	q.Close()
	if code != 1 || errs != "agent buffer drop: buffer/app: in use by a running agent (the queue is locked); stop the agent first\n" || !exists("buffer/app") {
		t.Errorf("locked: code %d %q", code, errs)
	}
	code, out, _ = runCmd("buffer", "drop", "app", "--yes", "--config", cfgFile)
	if code != 0 || !strings.Contains(out, "output app is still in "+cfgFile+": the agent starts it with an empty queue") {
		t.Errorf("configured output: code %d %q", code, out)
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "buffer"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".dropped") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

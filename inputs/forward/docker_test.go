package forward

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
)

const testCID = "7f1c0ad52e4baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// dockerRecord builds a record as Docker's fluentd driver does: string
// values only, base keys then extras.
func dockerRecord(name, source, log string, extra ...string) []byte {
	kv := []string{"container_id", testCID, "container_name", name, "source", source, "log", log}
	return rec(append(kv, extra...)...)
}

// fragment is one partial chunk of a long line.
func fragment(source, id string, ordinal int, last bool, log string) []byte {
	return dockerRecord("/web", source, log, "partial_message", "true", "partial_id", id,
		"partial_ordinal", fmt.Sprint(ordinal), "partial_last", fmt.Sprint(last))
}

// send writes reqs on a fresh connection, reads the acks of the chunked
// ones, closes and waits for n events.
func sendAndCollect(t *testing.T, s *server, n int, acks []string, reqs ...[]byte) []storedEvent {
	t.Helper()
	c := s.dial(t)
	for _, r := range reqs {
		if _, err := c.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range acks {
		if got := readN(t, c, len(ack(a))); !bytes.Equal(got, ack(a)) {
			t.Fatalf("ack %q, want %q", got, a)
		}
	}
	return s.q.waitEvents(t, n)
}

func TestDockerRecords(t *testing.T) {
	s := startServer(t, config.ForwardInput{}, nil)
	got := sendAndCollect(t, s, 3, nil,
		message("7f1c0ad52e4b", 1700000000, dockerRecord("/web", "stderr", "GET / 200",
			"com.example.team", "payments", "ENV_MODE", "prod"), ""),
		message("web-firelens-0123", 1700000001, dockerRecord("/ecs-app-1-web-abc", "stdout", "hello",
			"ecs_cluster", "prod", "ecs_task_arn", "arn:aws:ecs:eu-west-1:1:task/prod/0123",
			"ecs_task_definition", "app:1"), ""),
		message("fluentbit", 1700000002, rec("log", "from fluent bit", "source", "x"), ""),
	)
	r0 := decodeRecord(t, got[0].Record)
	want0 := map[string]any{
		"log": "GET / 200", "stream": "stderr", "container_id": testCID, "container_name": "web",
		"labels": map[string]any{"ENV_MODE": "prod", "com.example.team": "payments"},
	}
	if !reflect.DeepEqual(r0, want0) {
		t.Errorf("docker record\n got %v\nwant %v", r0, want0)
	}
	// Key order is the docker input's: log, stream, container_id,
	// container_name, labels (sorted).
	wantBytes := rec("log", "GET / 200", "stream", "stderr", "container_id", testCID, "container_name", "web")
	wantBytes[0] = 0x85
	wantBytes = append(wantBytes, msgp.AppendString(nil, "labels")...)
	wantBytes = append(wantBytes, rec("ENV_MODE", "prod", "com.example.team", "payments")...)
	if !bytes.Equal(got[0].Record, wantBytes) {
		t.Errorf("docker record bytes\n got %x\nwant %x", got[0].Record, wantBytes)
	}
	if got[0].Tag != "7f1c0ad52e4b" {
		t.Errorf("tag %q", got[0].Tag)
	}
	r1 := decodeRecord(t, got[1].Record)
	want1 := map[string]any{
		"log": "hello", "stream": "stdout", "container_id": testCID, "container_name": "ecs-app-1-web-abc",
		"ecs_cluster": "prod", "ecs_task_arn": "arn:aws:ecs:eu-west-1:1:task/prod/0123", "ecs_task_definition": "app:1",
	}
	if !reflect.DeepEqual(r1, want1) {
		t.Errorf("firelens record\n got %v\nwant %v", r1, want1)
	}
	// Not a Docker record (no container_id): stored byte for byte.
	if want := rec("log", "from fluent bit", "source", "x"); !bytes.Equal(got[2].Record, want) {
		t.Errorf("pass-through record %x, want %x", got[2].Record, want)
	}
}

func TestParseJSON(t *testing.T) {
	s := startServer(t, config.ForwardInput{ParseJSON: true}, nil)
	payload := `{"level":"warn","n":-3,"big":18446744073709551615,"f":2.5e3,"ok":true,"none":null,` +
		`"log":"dropped: reserved","stream":"x","nested":{"a":[1,"\u00e9\ud83d\ude80\n",{}]},"level":"dup"}`
	got := sendAndCollect(t, s, 3, nil,
		message("cid", 1700000000, dockerRecord("/web", "stdout", payload), ""),
		message("fb", 1700000001, rec("log", `  {"msg":"hi","x":"no"} `, "x", "kept"), ""),
		message("fb", 1700000002, rec("log", `{"broken":`, "x", "y"), ""),
	)
	r0 := decodeRecord(t, got[0].Record)
	want0 := map[string]any{
		"log": payload, "stream": "stdout", "container_id": testCID, "container_name": "web",
		"level": "warn", "n": "-3", "big": "1.8446744073709552e+19", "f": "2500.0", "ok": true, "none": nil,
		"nested": map[string]any{"a": []any{"1", "é🚀\n", map[string]any{}}},
	}
	if !reflect.DeepEqual(r0, want0) {
		t.Errorf("parsed docker record\n got %v\nwant %v", r0, want0)
	}
	r1 := decodeRecord(t, got[1].Record)
	want1 := map[string]any{"log": `  {"msg":"hi","x":"no"} `, "x": "kept", "msg": "hi"}
	if !reflect.DeepEqual(r1, want1) {
		t.Errorf("parsed pass-through record\n got %v\nwant %v", r1, want1)
	}
	if want := rec("log", `{"broken":`, "x", "y"); !bytes.Equal(got[2].Record, want) {
		t.Errorf("invalid JSON payload changed the record: %x", got[2].Record)
	}
}

func TestTagTemplate(t *testing.T) {
	s := startServer(t, config.ForwardInput{
		Tag: "{tag}.{name}.{short_id}.{stream}.{label:team}.{field:level}.{field:code}.{label:none}",
	}, nil)
	got := sendAndCollect(t, s, 2, nil,
		message("orig", 1700000000, dockerRecord("/web", "stderr", `{"level":"error","code":503}`, "team", "pay"), ""),
		message("orig", 1700000001, rec("log", "plain"), ""),
	)
	if want := "orig.web.7f1c0ad52e4b.stderr.pay.error.503.unknown"; got[0].Tag != want {
		t.Errorf("tag %q, want %q", got[0].Tag, want)
	}
	if want := "orig.unknown.unknown.unknown.unknown.unknown.unknown.unknown"; got[1].Tag != want {
		t.Errorf("tag %q, want %q", got[1].Tag, want)
	}
}

func TestPartialReassembly(t *testing.T) {
	long := strings.Repeat("a", 16384) + strings.Repeat("b", 16384) + strings.Repeat("c", 7232)
	exact := strings.Repeat("x", 16384)
	t.Run("joined", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{}, nil)
		got := sendAndCollect(t, s, 3, nil,
			message("cid", 1700000000, fragment("stdout", "p1", 1, false, long[:16384]), ""),
			// another stream's line in between, itself split
			message("cid", 1700000000, fragment("stderr", "p2", 1, false, exact), ""),
			message("cid", 1700000001, rec("log", "unrelated"), ""),
			message("cid", 1700000000, fragment("stdout", "p1", 2, false, long[16384:32768]), ""),
			message("cid", 1700000000, fragment("stderr", "p2", 2, true, ""), ""),
			message("cid", 1700000000, fragment("stdout", "p1", 3, true, long[32768:]), ""),
		)
		r := []map[string]any{decodeRecord(t, got[0].Record), decodeRecord(t, got[1].Record), decodeRecord(t, got[2].Record)}
		if r[0]["log"] != "unrelated" || r[1]["log"] != exact || r[2]["log"] != long {
			t.Fatalf("logs: %.20q %.20q %.20q", r[0]["log"], r[1]["log"], r[2]["log"])
		}
		for _, x := range r[1:] {
			for k := range x {
				if strings.HasPrefix(k, "partial_") {
					t.Errorf("joined line keeps %s", k)
				}
			}
		}
		if r[1]["stream"] != "stderr" || r[2]["stream"] != "stdout" || got[2].Time != 1700000000e9 {
			t.Errorf("joined metadata: %v %v time %d", r[1]["stream"], r[2]["stream"], got[2].Time)
		}
		if n := s.counter(`sluice_input_partial_reassemblies_total{input="fw"}`); n != 2 {
			t.Errorf("reassemblies %d", n)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{MaxPartialBytes: 20000}, nil)
		got := sendAndCollect(t, s, 1, nil,
			message("cid", 1700000000, fragment("stdout", "p1", 1, false, long[:16384]), ""),
			message("cid", 1700000000, fragment("stdout", "p1", 2, false, long[16384:32768]), ""),
			message("cid", 1700000000, fragment("stdout", "p1", 3, true, long[32768:]), ""),
		)
		if l := decodeRecord(t, got[0].Record)["log"].(string); l != long[:20000] {
			t.Fatalf("truncated log has %d bytes", len(l))
		}
		if n := s.counter(`sluice_input_limit_violations_total{input="fw",limit="partial_bytes"}`); n != 1 {
			t.Errorf("partial_bytes violations %d", n)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{PartialTimeout: 100 * time.Millisecond}, nil)
		start := time.Now()
		got := sendAndCollect(t, s, 1, nil,
			message("cid", 1700000000, fragment("stdout", "p1", 1, false, "lost "), ""),
			message("cid", 1700000000, fragment("stdout", "p1", 2, false, "last part"), ""),
		)
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Fatalf("stored after %s, before the timeout", d)
		}
		if l := decodeRecord(t, got[0].Record)["log"]; l != "lost last part" {
			t.Fatalf("log %q", l)
		}
		if n := s.counter(`sluice_input_partial_incomplete_total{input="fw"}`); n != 1 {
			t.Errorf("incomplete %d", n)
		}
	})
	t.Run("timeout while other lines keep coming", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{PartialTimeout: 100 * time.Millisecond}, nil)
		c := s.dial(t)
		c.Write(message("cid", 1700000000, fragment("stdout", "p1", 1, false, "no newline at EOF"), ""))
		for i := range 30 {
			c.Write(message("cid", 1700000001, dockerRecord("/web", "stderr", fmt.Sprint("busy ", i)), ""))
			time.Sleep(10 * time.Millisecond)
			if s.counter(`sluice_input_partial_incomplete_total{input="fw"}`) == 1 {
				return
			}
		}
		t.Fatal("dangling partial not stored while the connection stayed busy")
	})
	t.Run("acked fragments are stored at once", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{}, nil)
		got := sendAndCollect(t, s, 3, []string{"a1", "a2", "a3"},
			message("cid", 1700000000, fragment("stdout", "p1", 1, false, "one "), "a1"),
			message("cid", 1700000000, fragment("stdout", "p1", 2, false, "two "), "a2"),
			message("cid", 1700000000, fragment("stdout", "p1", 3, true, "three"), "a3"),
		)
		for i, e := range got {
			r := decodeRecord(t, e.Record)
			if r["partial_id"] != "p1" || r["partial_ordinal"] != fmt.Sprint(i+1) || r["partial_message"] != "true" {
				t.Errorf("fragment %d: %v", i, r)
			}
			if r["container_name"] != "web" || r["stream"] != "stdout" {
				t.Errorf("fragment %d not normalized: %v", i, r)
			}
		}
		if n := s.counter(`sluice_input_partial_unjoined_total{input="fw"}`); n != 3 {
			t.Errorf("unjoined %d", n)
		}
	})
	t.Run("held fragment released before an acked one", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{}, nil)
		got := sendAndCollect(t, s, 2, []string{"a2"},
			message("cid", 1700000000, fragment("stdout", "p1", 1, false, "one "), ""),
			message("cid", 1700000000, fragment("stdout", "p1", 2, true, "two"), "a2"),
		)
		if l0, l1 := decodeRecord(t, got[0].Record)["log"], decodeRecord(t, got[1].Record)["log"]; l0 != "one " || l1 != "two" {
			t.Fatalf("logs %q %q", l0, l1)
		}
	})
	t.Run("connection end stores what arrived", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{}, nil)
		c := s.dial(t)
		c.Write(message("cid", 1700000000, fragment("stdout", "p1", 1, false, "cut "), ""))
		c.Write(message("cid", 1700000000, fragment("stdout", "p1", 2, false, "short"), ""))
		time.Sleep(50 * time.Millisecond)
		c.Close()
		got := s.q.waitEvents(t, 1)
		if l := decodeRecord(t, got[0].Record)["log"]; l != "cut short" {
			t.Fatalf("log %q", l)
		}
	})
	t.Run("many dangling groups stay bounded", func(t *testing.T) {
		s := startServer(t, config.ForwardInput{}, nil)
		var reqs [][]byte
		for i := range maxPartialGroups + 4 {
			reqs = append(reqs, message("cid", 1700000000, fragment("stdout", fmt.Sprint("id", i), 1, false, fmt.Sprint(i)), ""))
		}
		got := sendAndCollect(t, s, 4, nil, reqs...)
		for i, e := range got[:4] {
			if l := decodeRecord(t, e.Record)["log"]; l != fmt.Sprint(i) {
				t.Errorf("evicted %d: log %q", i, l)
			}
		}
	})
}

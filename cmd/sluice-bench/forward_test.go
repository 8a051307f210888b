package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// TestDockerMessage checks the client encodes what Docker's fluentd driver
// sends (formats.md §1.9, §2.1/§2.3): a 4-element Message with an int32
// time, a map of string fields, and an empty option map.
func TestDockerMessage(t *testing.T) {
	log := appendForwardPayload(nil, 7, 200)
	b := appendDockerMessage(nil, []byte("app"), 1700000000, strings.Repeat("a", 64), "/web", log, nil)
	if want, _ := hex.DecodeString("94a3617070d26553f100"); !bytes.HasPrefix(b, want) {
		t.Fatalf("header % x, want % x", b[:len(want)], want)
	}
	if b[len(b)-1] != 0x80 {
		t.Fatalf("option map %x, want empty map 80", b[len(b)-1])
	}
	v, err := msgp.NewReader(bytes.NewReader(b)).ReadIntf()
	if err != nil {
		t.Fatal(err)
	}
	msg, ok := v.([]any)
	if !ok || len(msg) != 4 {
		t.Fatalf("message %v", v)
	}
	rec, ok := msg[2].(map[string]any)
	if !ok {
		t.Fatalf("record %T", msg[2])
	}
	want := map[string]any{"container_id": strings.Repeat("a", 64), "container_name": "/web", "source": "stdout", "log": string(log)}
	if len(rec) != len(want) {
		t.Fatalf("record %v", rec)
	}
	for k, v := range want {
		if rec[k] != v {
			t.Fatalf("record[%q] = %v, want %v", k, rec[k], v)
		}
	}
}

// TestForwardPayloads checks sizes, JSON validity and that the keys are
// dense per source and match forwardExpect.
func TestForwardPayloads(t *testing.T) {
	const lines = 1000
	o := options{lines: lines, payload: 180}
	seen := map[string]int64{}
	for i := range lines {
		p := appendForwardPayload(nil, i, o.payload)
		if len(p) != o.payload {
			t.Fatalf("line %d: %d bytes", i, len(p))
		}
		if !json.Valid(p) {
			t.Fatalf("line %d not JSON: %s", i, p)
		}
		src, seq, ok := receiver.LogKey(p)
		if !ok || seq != seen[string(src)] {
			t.Fatalf("line %d: key %s %d %v", i, src, seq, ok)
		}
		seen[string(src)]++
	}
	for _, e := range forwardExpect(o) {
		if seen[e.src] != e.lines {
			t.Fatalf("%s: generated %d, expected %d", e.src, seen[e.src], e.lines)
		}
	}
}

func TestBenchForwardSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-mode", "forward", "-lines", "20000", "-runs", "1"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "mode forward") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
	if f := strings.Fields(lines[2]); len(f) != 9 || f[1] != "20000" || f[8] != "0" {
		t.Fatalf("bad row %q", lines[2])
	}
	t.Log("\n" + out.String())
}

func BenchmarkDockerMessage(b *testing.B) {
	id := strings.Repeat("a", 64)
	tag := []byte("docker.web")
	var buf, payload []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		payload = appendForwardPayload(payload[:0], i, 200)
		buf = appendDockerMessage(buf[:0], tag, 1700000000, id, "/web", payload, nil)
	}
	b.SetBytes(int64(len(buf)))
}

package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// TestSeqCheck checks the read-back accounting of the AWS modes: lines
// in either record shape (the payload escaped in "log", or its fields
// merged), several lines in one blob, duplicates, missing and foreign
// lines.
func TestSeqCheck(t *testing.T) {
	exp := []expectation{{src: "bench-app", lines: 3}, {src: "bench-audit", lines: 2}}
	escaped := func(src string, seq int) string {
		return fmt.Sprintf(`{"log":"{\"log_type\":\"app\",\"src\":\"%s\",\"seq\":%d,\"pad\":\"x\"}\n","stream":"stdout","tag":"docker.%s"}`, src, seq, src)
	}
	merged := func(src string, seq int) string {
		return fmt.Sprintf(`{"log_type":"audit","src":"%s","seq":%d,"pad":"x","@timestamp":"2026-01-01T00:00:00Z"}`, src, seq)
	}

	c := newSeqCheck(exp)
	c.addBlob([]byte(escaped("bench-app", 0) + "\n"))
	c.addBlob([]byte(escaped("bench-app", 1) + "\n" + escaped("bench-app", 2) + "\n")) // an aggregated record
	c.addBlob([]byte(merged("bench-audit", 0)))                                        // a log event: no newline
	c.addBlob([]byte(merged("bench-audit", 1) + "\n"))
	c.addBlob([]byte(escaped("bench-app", 1) + "\n"))
	if err := c.err(); err != nil {
		t.Fatal(err)
	}
	if c.read != 6 || c.dups != 1 {
		t.Fatalf("read %d dups %d, want 6 and 1", c.read, c.dups)
	}

	c = newSeqCheck(exp)
	c.addBlob([]byte(escaped("bench-app", 0) + "\n" + escaped("bench-app", 2) + "\n"))
	c.addBlob([]byte(merged("bench-audit", 0)))
	c.addBlob([]byte(merged("bench-audit", 1)))
	err := c.err()
	if err == nil || !strings.Contains(err.Error(), "source bench-app: 1 of 3 lines missing (first seq 1)") {
		t.Fatalf("missing line: err %v", err)
	}

	c = newSeqCheck(exp)
	for i := range 3 {
		c.add([]byte(escaped("bench-app", i)))
	}
	for i := range 2 {
		c.add([]byte(merged("bench-audit", i)))
	}
	c.add([]byte(merged("bench-audit", 2))) // out of range
	c.add([]byte(merged("other", 0)))
	c.add([]byte(`{"log":"no key"}`))
	if err := c.err(); err == nil || !strings.Contains(err.Error(), "3 of 8 lines read back are not generated lines") {
		t.Fatalf("foreign lines: err %v", err)
	}
}

// TestAWSConfigYAML checks each mode's output section, and that
// SLUICE_BENCH_AWS_OPTIONS adds keys and may replace the delivery line.
func TestAWSConfigYAML(t *testing.T) {
	want := map[string]string{
		"cloudwatch_logs": "    type: cloudwatch_logs\n    log_group_name: \"/sluice/bench/{tag[1]}\"\n    endpoint: http://127.0.0.1:1\n    delivery: {flush_interval: 1s}\n",
		"kinesis":         "    type: kinesis\n    stream_name: bench\n    endpoint: http://127.0.0.1:1\n    delivery: {flush_interval: 1s}\n",
		"firehose":        "    type: firehose\n    delivery_stream_name: bench\n    endpoint: http://127.0.0.1:1\n    delivery: {flush_interval: 1s}\n",
	}
	for kind, section := range want {
		a := &awsMode{kind: kind}
		y := a.configYAML("/data", "127.0.0.1:2", "http://127.0.0.1:1", options{})
		if !strings.Contains(y, section) {
			t.Errorf("%s: config lacks\n%s\ngot\n%s", kind, section, y)
		}
	}
	t.Setenv("SLUICE_BENCH_AWS_OPTIONS", "    aggregate: true\n    delivery: {workers: 4}")
	y := (&awsMode{kind: "firehose"}).configYAML("/data", "127.0.0.1:2", "http://127.0.0.1:1", options{})
	if !strings.Contains(y, "    aggregate: true\n    delivery: {workers: 4}\n    buffer:") || strings.Contains(y, "flush_interval: 1s") {
		t.Fatalf("options not applied:\n%s", y)
	}
}

// TestBenchAWSSmall runs each AWS mode once at a tiny size against the
// fake, which injects no fault: nothing may be missing, duplicated,
// retried or dead-lettered.
func TestBenchAWSSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	bin, err := agentproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"cloudwatch_logs", "kinesis", "firehose"} {
		t.Run(mode, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run([]string{"-mode", mode, "-lines", "3000", "-payload", "150", "-runs", "1", "-agent", bin}, &out, &errOut); code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 3 || !strings.Contains(lines[0], "mode "+mode) {
				t.Fatalf("unexpected output:\n%s", out.String())
			}
			if f := strings.Fields(lines[2]); len(f) != 9 || f[1] != "3000" || f[8] != "0" {
				t.Fatalf("bad row %q", lines[2])
			}
			if s := errOut.String(); !strings.Contains(s, "run1: fake: ") || !strings.Contains(s, "failed 0; retried 0, rejected 0, dead-lettered 0, dropped 0 events") {
				t.Fatalf("unexpected counters:\n%s", s)
			}
			t.Log("\n" + out.String() + errOut.String())
		})
	}
}

package agentproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
)

func TestConfigValidates(t *testing.T) {
	dir := t.TempDir()
	c := Config{
		DataDir:     filepath.Join(dir, "data"),
		DockerRoot:  filepath.Join(dir, "containers"),
		MetricsAddr: "127.0.0.1:0",
		Outputs: []Output{
			{ID: "app", Address: "127.0.0.1:24001", Compress: "gzip", MaxInFlight: 4, AckTimeout: 5 * time.Second},
			{ID: "audit", Address: "127.0.0.1:24002", Buffer: Buffer{MaxBytes: "2MiB", SegmentBytes: "512KiB", ChunkBytes: "64KiB", Overflow: "drop_oldest", Fsync: "interval", FsyncInterval: 200 * time.Millisecond}},
		},
	}
	cfg, err := config.Parse([]byte(c.YAML()), "e2e.yml")
	if err != nil {
		t.Fatalf("%v\n%s", err, c.YAML())
	}
	if len(cfg.Outputs) != 2 || cfg.Outputs[1].Buffer.MaxBytes != 2<<20 || cfg.Outputs[1].Buffer.SegmentBytes != 512<<10 ||
		cfg.Outputs[0].Forward.Compress != "gzip" || cfg.Outputs[0].Forward.MaxInFlight != 4 ||
		cfg.Inputs[0].Docker.Tag != "{field:log_type}.{name}" || !cfg.Inputs[0].Docker.ParseJSON ||
		len(cfg.Routes) != 2 || cfg.Routes[1].Match != "audit.**" {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake")
	// Burns a little CPU, logs, then sleeps until signalled.
	script := "#!/bin/sh\necho '{\"level\":\"WARN\",\"msg\":\"hello\"}'\ni=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\nexec sleep 30\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "agent.log")
	p, err := Start(bin, "cfg.yml", logPath)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if p.Exited() {
		t.Fatal("exited early")
	}
	if _, err := p.CPU(); err != nil {
		t.Fatal(err)
	}
	if rss, _, err := p.RSS(); err != nil || rss <= 0 {
		t.Fatalf("rss %d %v", rss, err)
	}
	code, took, err := p.Term(5 * time.Second)
	if err != nil || code != -1 || took > 5*time.Second {
		t.Fatalf("term: code %d took %v err %v", code, took, err)
	}
	u := p.Usage()
	if u.MaxRSS <= 0 || u.Wall <= 0 {
		t.Fatalf("usage %+v", u)
	}
	if lines := LogLines(logPath, "WARN", "hello"); len(lines) != 1 {
		t.Fatalf("log lines %q", lines)
	}

	p2, err := Start(bin, "cfg.yml", logPath)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(LogLines(logPath, "WARN", "hello")) < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	p2.Kill()
	if !p2.Exited() || !strings.Contains(p2.Log(), "hello") {
		t.Fatal("kill")
	}
	if n := len(LogLines(logPath, "WARN", "hello")); n != 2 {
		t.Fatalf("log not appended across runs: %d", n)
	}
}

func TestMetric(t *testing.T) {
	text := "# HELP x\nsluice_buffer_dropped_chunks_total{output=\"app\"} 12\nsluice_buffer_dropped_chunks_total{output=\"app2\"} 3\nfoo 1.5e+06\n"
	if v, ok := Metric(text, `sluice_buffer_dropped_chunks_total{output="app"}`); !ok || v != 12 {
		t.Fatal(v, ok)
	}
	if v, ok := Metric(text, "foo"); !ok || v != 1.5e6 {
		t.Fatal(v, ok)
	}
	if v := MetricSum(text, "sluice_buffer_dropped_chunks_total", `output="app"`); v != 12 {
		t.Fatal(v)
	}
	if v := MetricSum(text, "sluice_buffer_dropped_chunks_total"); v != 15 {
		t.Fatal(v)
	}
	if v := MetricSum(text, "fo"); v != 0 {
		t.Fatal(v)
	}
	if _, ok := Metric(text, "bar"); ok {
		t.Fatal("bar")
	}
}

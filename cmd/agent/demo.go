package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sluice-agent/sluice/agent"
	"github.com/sluice-agent/sluice/config"
)

//go:embed demo.yml
var demoConfig []byte

// cmdDemo runs the agent's main job end to end on the sample container logs
// shipped in examples/: tail, parse, route by log type through per-output
// disk queues to files, then print what each output received.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logs := fs.String("logs", "examples/docker/containers", "Docker containers directory to tail")
	out := fs.String("out", "demo-out", "directory for the output files (emptied first)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return flagErrCode(err)
	}
	if _, err := os.Stat(*logs); err != nil {
		fmt.Fprintf(stderr, "demo: %v (run from the repository root, or pass --logs)\n", err)
		return 1
	}
	data, err := os.MkdirTemp("", "sluice-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer os.RemoveAll(data)
	if err := os.RemoveAll(*out); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	absLogs, _ := filepath.Abs(*logs)
	absOut, _ := filepath.Abs(*out)
	env := map[string]string{"SLUICE_DEMO_DATA": data, "SLUICE_DEMO_LOGS": absLogs, "SLUICE_DEMO_OUT": absOut}
	cfg, err := config.ParseWithEnv(demoConfig, "demo.yml", func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	log := newLogger(stdout, cfg.LogLevel)
	a, err := agent.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- a.Run(ctx) }()

	// The job is done when events stopped arriving and every queue is empty.
	deadline := time.After(*timeout)
	last, stableSince := -1.0, time.Now()
	for {
		select {
		case err := <-done:
			cancel()
			fmt.Fprintln(stderr, "demo: agent stopped early:", err)
			return 1
		case <-deadline:
			cancel()
			<-done
			fmt.Fprintln(stderr, "demo: timed out")
			return 1
		case <-time.After(100 * time.Millisecond):
		}
		n := a.EventsIn()
		if n != last {
			last, stableSince = n, time.Now()
			continue
		}
		if n > 0 && a.Idle() && time.Since(stableSince) > time.Second {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nSluice demo: tailed %s (rotated .1 files first), routed by log type, %d events in %.1fs\n\n",
		*logs, int(last), time.Since(start).Seconds())
	fmt.Fprintf(stdout, "%-10s %8s  %s\n", "output", "events", "file (tags seen)")
	files, _ := filepath.Glob(filepath.Join(absOut, "*.jsonl"))
	sort.Strings(files)
	for _, f := range files {
		n, tags := summarize(f)
		fmt.Fprintf(stdout, "%-10s %8d  %s %v\n", filepath.Base(f[:len(f)-len(".jsonl")]), n, f, tags)
	}
	fmt.Fprintln(stdout, "\nUnrouted events:", int(a.Unrouted()))
	return 0
}

func summarize(path string) (int, []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	seen := map[string]bool{}
	var tags []string
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if i := bytes.Index(line, []byte(`{"tag":"`)); i == 0 {
			rest := line[8:]
			if j := bytes.IndexByte(rest, '"'); j > 0 && !seen[string(rest[:j])] {
				seen[string(rest[:j])] = true
				tags = append(tags, string(rest[:j]))
			}
		}
	}
	sort.Strings(tags)
	return n, tags
}

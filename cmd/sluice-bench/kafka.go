package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// kafkaMode is workload -mode kafka: mode json-file's generated lines
// (three containers, one log type each, tailed by the docker input) go to
// ONE kafka output with its default settings (acks all, idempotent
// producer, zstd level 1, 4 workers of up to 5000 records) and topic logs-{tag[1]}: one
// topic per log type. The peer is franz-go's kfake, a 3-broker in-process
// cluster the benchmark starts on 127.0.0.1 (3 partitions per topic, auto
// created), so its CPU is the benchmark process's, not the agent's. The
// clock stops when the output's sluice_output_sent_events_total (records
// the broker acknowledged) reaches the number of lines; every topic is
// then read back with a franz-go consumer and every sequence number of
// every container checked: a run with one missing fails. dups is what
// the topics hold beyond the lines written. peak_rss is the agent's VmHWM
// sampled when the clock stops (see runKafka).
//
// SLUICE_BENCH_KAFKA_OPTIONS adds keys to the output's section, e.g.
// "    compression: lz4"; SLUICE_BENCH_CPUPROFILE profiles the benchmark's
// own process (kfake, the read-back), SLUICE_CPUPROFILE the agent's.
type kafkaMode struct {
	jsonFile
}

func (k *kafkaMode) describe(o options) string {
	return fmt.Sprintf("mode kafka: %d lines x %d B payload in 3 containers -> 1 kafka output (defaults: acks all, idempotent, zstd; topic per log type; disk buffer fsync interval 1s) -> kfake (3 brokers, in the benchmark's process)",
		o.lines, o.payload)
}

func (k *kafkaMode) configYAML(dataDir, metricsAddr string, brokers []string, o options) string {
	var bl string
	for _, b := range brokers {
		bl += strconv.Quote(b) + ", "
	}
	return fmt.Sprintf(`data_dir: %q
log_level: warn
metrics_addr: %s
shutdown_grace: 30s
inputs:
  - id: containers
    type: docker
    root: %q
    parse_json: %v
outputs:
  - id: dest
    type: kafka
    brokers: [%s]
    topic: "logs-{tag[1]}"
%s    buffer: {fsync: interval, fsync_interval: 1s}
default_output: dest
`, dataDir, metricsAddr, k.root, o.parseJSON, bl[:len(bl)-2], extraKafkaOptions())
}

// runKafka is runOnce for kafkaMode.
func runKafka(dir, bin string, k *kafkaMode, o options) (result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	if p := os.Getenv("SLUICE_BENCH_CPUPROFILE"); p != "" {
		// Profiles the benchmark's own process: kfake and the read-back.
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	metricsAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	cfgPath := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfgPath, []byte(k.configYAML(filepath.Join(dir, "data"), metricsAddr, c.ListenAddrs(), o)), 0o644); err != nil {
		return result{}, err
	}
	logPath := filepath.Join(dir, "agent.log")
	proc, err := agentproc.Start(bin, cfgPath, logPath)
	if err != nil {
		return result{}, err
	}
	defer proc.Kill()
	exp := k.expect()
	var total int64
	for _, e := range exp {
		total += e.lines
	}
	deadline := proc.StartTime().Add(o.timeout)
	for {
		text, err := agentproc.Scrape(metricsAddr)
		if err == nil && int64(agentproc.MetricSum(text, "sluice_output_sent_events_total", `output="dest"`)) >= total {
			break
		}
		if proc.Exited() {
			return result{}, fmt.Errorf("agent exited early; log %s:\n%s", logPath, tail(proc.Log(), 20))
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("timeout after %v; log %s:\n%s", o.timeout, logPath, tail(proc.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(proc.StartTime())
	cpu, cpuErr := proc.CPU()
	// Peak RSS is the agent's VmHWM, sampled now: the rusage of a child
	// starts from its parent's peak RSS (Linux takes the high-water mark of
	// the mm exec replaces, here the benchmark's, which holds kfake and the
	// previous runs' read-backs).
	_, peak, rssErr := proc.RSS()
	code, took, err := proc.Term(time.Minute)
	if err != nil {
		return result{}, err
	}
	if code != 0 {
		return result{}, fmt.Errorf("agent exited %d after SIGTERM; log %s", code, logPath)
	}
	u := proc.Usage()
	if cpuErr != nil {
		cpu = u.CPU()
	}
	if rssErr != nil {
		peak = u.MaxRSS
	}
	want := map[string]int64{}
	for _, e := range exp {
		want[e.src] = e.lines
	}
	n, err := readBackKafka(c, want)
	if err != nil {
		return result{}, fmt.Errorf("read back: %w", err)
	}
	return result{lines: total, elapsed: elapsed, cpu: cpu, maxRSS: peak, payload: k.payloadBytes(), exitAfter: took, dups: n - total}, nil
}

// readBackKafka consumes every partition of every topic from its start to
// its high watermark and checks that each source's sequence numbers [0,
// want[src]) are all there; it returns the records read.
func readBackKafka(c *kfake.Cluster, want map[string]int64) (int64, error) {
	parts := map[string]map[int32]kgo.Offset{}
	var total int64
	for _, lt := range logTypes {
		topic := "logs-bench-" + lt
		for _, p := range c.PartitionInfos(topic) {
			if parts[topic] == nil {
				parts[topic] = map[int32]kgo.Offset{}
			}
			parts[topic][p.Partition] = kgo.NewOffset().AtStart()
			total += p.HighWatermark - p.LogStartOffset
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumePartitions(parts), kgo.DisableClientMetrics(), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	seen := map[string][]bool{}
	for src, n := range want {
		seen[src] = make([]bool, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var read, bad int64
	for read < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return read, fmt.Errorf("read %d of %d records", read, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			src, seq, ok := benchKey(r.Value)
			if s := seen[src]; ok && seq >= 0 && seq < int64(len(s)) {
				s[seq] = true
			} else {
				bad++
			}
		})
	}
	for src, s := range seen {
		missing := 0
		for _, ok := range s {
			if !ok {
				missing++
			}
		}
		if missing > 0 {
			return read, fmt.Errorf("source %s: %d of %d lines missing (%d records unreadable)", src, missing, len(s), bad)
		}
	}
	return read, nil
}

// benchKey finds the payload's src and seq in a record's JSON value,
// where the payload is the escaped "log" string (parse_json off) or
// merged fields (parse_json on).
func benchKey(v []byte) (string, int64, bool) {
	for _, pre := range [][2]string{{`\"src\":\"`, `\"seq\":`}, {`"src":"`, `"seq":`}} {
		i := bytes.Index(v, []byte(pre[0]))
		if i < 0 {
			continue
		}
		rest := v[i+len(pre[0]):]
		end := bytes.IndexAny(rest, `"\`)
		if end < 0 {
			return "", 0, false
		}
		src := string(rest[:end])
		j := bytes.Index(v, []byte(pre[1]))
		if j < 0 {
			return "", 0, false
		}
		d := v[j+len(pre[1]):]
		k := 0
		for k < len(d) && d[k] >= '0' && d[k] <= '9' {
			k++
		}
		n, err := strconv.ParseInt(string(d[:k]), 10, 64)
		return src, n, err == nil
	}
	return "", 0, false
}

// extraKafkaOptions are more keys of the kafka output section, from
// SLUICE_BENCH_KAFKA_OPTIONS (YAML lines indented by 4 spaces), to
// measure other settings than the defaults.
func extraKafkaOptions() string {
	if v := os.Getenv("SLUICE_BENCH_KAFKA_OPTIONS"); v != "" {
		return v + "\n"
	}
	return ""
}

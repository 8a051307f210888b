package loggertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-agent/sluice/config"
)

// Multiline joining fed by fluent-logger-golang configured as Docker's
// fluentd driver configures it: one Message per line, acks or not.

// shopSample is the Java sample of internal/multiline: its lines and the
// texts of its golden events.
func shopSample(t *testing.T) (lines, want []string) {
	t.Helper()
	dir := "../../../internal/multiline/testdata/java"
	data, err := os.ReadFile(filepath.Join(dir, "shop.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	g, err := os.ReadFile(filepath.Join(dir, "shop.golden"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(g))
	for sc.Scan() {
		var e struct{ Text string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.Text)
	}
	return lines, want
}

func containerLine(k int, log string) map[string]string {
	return map[string]string{"container_id": fmt.Sprintf("%064x", 0xabc00+k), "container_name": fmt.Sprintf("/app-%d", k),
		"source": "stdout", "log": log}
}

// TestDockerDriverMultiline: two containers log the Java sample line by
// line, interleaved, without acks (Docker's default): each through its own
// connection as Docker's driver does, and both through one connection (as
// FireLens multiplexes them). Each container gets the golden events, each
// with its first line's time.
func TestDockerDriverMultiline(t *testing.T) {
	lines, want := shopSample(t)
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("one connection=", shared), func(t *testing.T) {
			in, q, set := startWithMetrics(t, config.ForwardInput{Listen: "127.0.0.1:0",
				Multiline: &config.Multiline{Rules: []string{"java"}, FlushTimeout: time.Minute}})
			host, port, _ := net.SplitHostPort(in.Addr().String())
			p, _ := strconv.Atoi(port)
			var loggers []*fluent.Fluent
			for range 2 {
				cfg := dockerConfig(false, true, false)
				cfg.FluentNetwork, cfg.FluentHost, cfg.FluentPort = "tcp", host, p
				f, err := fluent.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				loggers = append(loggers, f)
				if shared {
					break
				}
			}
			base := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
			lineTime := func(k, i int) time.Time { return base.Add(time.Duration(1000*k+i) * time.Millisecond) }
			for i, l := range lines {
				for k := range 2 {
					if err := loggers[k%len(loggers)].PostWithTime("docker.app", lineTime(k, i), containerLine(k, l)); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := q.wait(t, 2*len(want))
			for _, f := range loggers {
				f.Close()
			}
			time.Sleep(50 * time.Millisecond)
			got = q.wait(t, 0)
			for k := range 2 {
				var logs []string
				n := 0
				for _, e := range got {
					if e.record["container_id"] != fmt.Sprintf("%064x", 0xabc00+k) {
						continue
					}
					if e.time != lineTime(k, n).UnixNano() || e.record["container_name"] != fmt.Sprintf("app-%d", k) {
						t.Errorf("container %d event %d: time %d (want line %d's), %v", k, len(logs), e.time, n, e.record)
					}
					logs = append(logs, e.record["log"].(string))
					n += strings.Count(logs[len(logs)-1], "\n") + 1
				}
				if !reflect.DeepEqual(logs, want) {
					t.Fatalf("container %d: %d events\n got %q\nwant %q", k, len(logs), logs, want)
				}
			}
			if n := set.GetOrCreateCounter(`sluice_input_multiline_groups_total{input="fw"}`).Get(); n != 10 {
				t.Errorf("groups_total %d, want 10", n)
			}
		})
	}
}

// TestDockerDriverMultilineAck: with fluentd-request-ack the driver waits
// for each line's ack before it sends the next: a line held for joining
// would stall it until the flush timeout (or its read timeout). Each
// request's groups are closed at its end instead, so every Post returns
// at once and every line is stored (each alone: a request holds one line).
func TestDockerDriverMultilineAck(t *testing.T) {
	lines, _ := shopSample(t)
	const flush = 2 * time.Second
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprint("async=", async), func(t *testing.T) {
			in, q, set := startWithMetrics(t, config.ForwardInput{Listen: "127.0.0.1:0",
				Multiline: &config.Multiline{Rules: []string{"java"}, FlushTimeout: flush}})
			host, port, _ := net.SplitHostPort(in.Addr().String())
			p, _ := strconv.Atoi(port)
			cfg := dockerConfig(true, true, async)
			cfg.FluentNetwork, cfg.FluentHost, cfg.FluentPort = "tcp", host, p
			f, err := fluent.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var slowest time.Duration
			for _, l := range lines {
				t0 := time.Now()
				if err := f.Post("docker.app", containerLine(0, l)); err != nil {
					t.Fatal(err)
				}
				slowest = max(slowest, time.Since(t0))
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			total := time.Since(start)
			t.Logf("%d lines posted with acks in %s, slowest Post %s", len(lines), total, slowest)
			if slowest > flush/4 || total > flush {
				t.Errorf("posting stalled: slowest Post %s, all %s (flush_timeout %s)", slowest, total, flush)
			}
			got := q.wait(t, len(lines))
			var logs []string
			for _, e := range got {
				logs = append(logs, e.record["log"].(string))
			}
			if !reflect.DeepEqual(logs, lines) {
				t.Fatalf("%d events\n got %q\nwant %q", len(logs), logs, lines)
			}
			waitCount(t, set, `sluice_input_acks_total{input="fw"}`, uint64(len(lines)))
			if n := set.GetOrCreateCounter(`sluice_input_multiline_cut_total{input="fw",reason="ack"}`).Get(); n == 0 || n > uint64(len(lines)) {
				t.Errorf("cut_total{ack} %d", n)
			}
		})
	}
}

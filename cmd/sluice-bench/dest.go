package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/versity"
	"github.com/sluice-agent/sluice/internal/testkit/vlogs"
)

// destMode is workload -mode elasticsearch and -mode s3: mode json-file's
// generated lines (three containers, tailed by the docker input) all go to
// ONE output of that type with its default settings (gzip on both; s3
// with a 1s flush interval, so that the last object does not wait 5m), which
// sends to a real server the benchmark starts on 127.0.0.1: VictoriaLogs'
// _bulk endpoint, or versitygw (S3, SigV4 checked). A run's clock stops
// when the output's sluice_output_sent_events_total (events the server
// acknowledged) reaches the number of lines; the server is then read back
// (documents counted, or every object decoded and its lines counted) and
// a run with fewer lines than written fails. dups is what the server holds
// beyond the lines written.
type destMode struct {
	kind string // "elasticsearch" or "s3"
	jsonFile
}

func (d *destMode) describe(o options) string {
	peer := "VictoriaLogs v1.52.1 (_bulk)"
	if d.kind == "s3" {
		peer = "versitygw v1.8.0 (S3, gzip JSON lines objects)"
	}
	return fmt.Sprintf("mode %s: %d lines x %d B payload in 3 containers -> 1 %s output (defaults, disk buffer fsync interval 1s) -> %s",
		d.kind, o.lines, o.payload, d.kind, peer)
}

// peer is the server of one run.
type peer struct {
	vl *vlogs.Server
	gw *versity.Server
}

func (p peer) stop() {
	if p.vl != nil {
		p.vl.Stop()
	}
	if p.gw != nil {
		p.gw.Stop()
	}
}

func (d *destMode) startPeer(dir string) (peer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return peer{}, err
	}
	if d.kind == "elasticsearch" {
		vl, err := vlogs.Launch(dir)
		return peer{vl: vl}, err
	}
	gw, err := versity.Launch(dir)
	if err != nil {
		return peer{}, err
	}
	if err := gw.CreateBucketErr("bench"); err != nil {
		gw.Stop()
		return peer{}, err
	}
	return peer{gw: gw}, nil
}

func (d *destMode) configYAML(dataDir, metricsAddr string, p peer, o options) string {
	var out string
	if p.vl != nil {
		var hdrs strings.Builder
		for k, v := range p.vl.Header() {
			fmt.Fprintf(&hdrs, "\n      - {name: %s, value: %q}", k, v[0])
		}
		out = fmt.Sprintf("    type: elasticsearch\n    hosts: [%q]\n    headers:%s\n", p.vl.ESURL(), hdrs.String())
	} else {
		// flush_interval 1s instead of 5m: the clock stops when the last
		// object is stored, which otherwise waits for its age.
		out = fmt.Sprintf("    type: s3\n    bucket: bench\n    region: %s\n    endpoint: %s\n    force_path_style: true\n    access_key_id: %s\n    secret_access_key: %s\n    delivery: {flush_interval: 1s}\n",
			p.gw.Region(), p.gw.Endpoint(), p.gw.AccessKey(), p.gw.SecretKey())
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
%s    buffer: {fsync: interval, fsync_interval: 1s}
default_output: dest
`, dataDir, metricsAddr, d.root, o.parseJSON, out)
}

// held counts what the server holds after a run.
func (d *destMode) held(p peer) (int64, error) {
	if p.vl != nil {
		n, err := p.vl.CountErr("*")
		return int64(n), err
	}
	objs, err := p.gw.ObjectsErr("bench")
	if err != nil {
		return 0, err
	}
	var n int64
	for _, obj := range objs {
		var r io.Reader = bytes.NewReader(obj.Body)
		if strings.HasSuffix(obj.Key, ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return 0, fmt.Errorf("object %s: %w", obj.Key, err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			n++
		}
		if err := sc.Err(); err != nil {
			return 0, fmt.Errorf("object %s: %w", obj.Key, err)
		}
	}
	return n, nil
}

// runDest is runOnce for destMode.
func runDest(dir, bin string, d *destMode, o options) (result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	p, err := d.startPeer(filepath.Join(dir, "peer"))
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	metricsAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	cfgPath := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfgPath, []byte(d.configYAML(filepath.Join(dir, "data"), metricsAddr, p, o)), 0o644); err != nil {
		return result{}, err
	}
	logPath := filepath.Join(dir, "agent.log")
	proc, err := agentproc.Start(bin, cfgPath, logPath)
	if err != nil {
		return result{}, err
	}
	defer proc.Kill()
	var total int64
	for _, e := range d.expect() {
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
	n, err := d.held(p)
	if err != nil {
		return result{}, fmt.Errorf("read back: %w", err)
	}
	if n < total {
		return result{}, fmt.Errorf("the server holds %d of %d lines", n, total)
	}
	return result{lines: total, elapsed: elapsed, cpu: cpu, maxRSS: u.MaxRSS, payload: d.payloadBytes(), exitAfter: took, dups: n - total}, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-agent/sluice/inputs/cri/crigen"
	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// criMode is workload -mode cri: mode json-file's workload in Kubernetes
// CRI format. The same lines (three log types, -lines split evenly, the
// same JSON payloads) are written by crigen as containerd writes them into
// a fake /var/log/pods tree (one pod container per log type) BEFORE the
// agent starts; the agent's cri input (tag "{field:log_type}.{container}",
// parse_json as -parse-json) routes each line by its log_type to the same
// three forward outputs and receivers as mode json-file, with the same
// output settings.
type criMode struct {
	root    string
	conts   []*crigen.Container
	payload int64
	kube    *criKube  // -kube: the API stand-in (crikube.go)
	check   *criCheck // this run's record check (crikube.go)
}

func (c *criMode) describe(o options) string {
	comp := "off"
	if o.gzip {
		comp = "gzip level 1"
	}
	meta := "path metadata only"
	if o.kube {
		meta = "Kubernetes metadata from an API stand-in (-kube)"
	}
	return fmt.Sprintf("mode cri: %d lines x %d B payload in 3 pod containers (CRI format, /var/log/pods layout; %s) -> 3 forward outputs (require_ack, disk buffer fsync interval 1s, compression %s) -> 3 receivers",
		o.lines, o.payload, meta, comp)
}

func (c *criMode) prepare(dir string, o options) error {
	c.root = filepath.Join(dir, "pods")
	for i, lt := range logTypes {
		n := o.lines / len(logTypes)
		if i < o.lines%len(logTypes) {
			n++
		}
		ct, err := crigen.New(c.root, crigen.Options{Namespace: "bench", Pod: "bench-" + lt, Name: lt, Src: "bench-" + lt, LogType: lt, Payload: o.payload})
		if err != nil {
			return err
		}
		if err := ct.Write(n); err != nil {
			return err
		}
		if err := ct.Close(); err != nil {
			return err
		}
		for s := range ct.Seq() {
			c.payload += int64(ct.PayloadBytes(s))
		}
		c.conts = append(c.conts, ct)
	}
	if o.kube {
		return c.startKube(dir)
	}
	return nil
}

// config is mode json-file's (outputs, buffers, routes); configYAML puts
// the cri input in place of its docker input.
func (c *criMode) config(dataDir string, addrs []string, o options) agentproc.Config {
	return (&jsonFile{}).config(dataDir, addrs, o)
}

func (c *criMode) configYAML(dataDir string, addrs []string, o options) string {
	y := c.config(dataDir, addrs, o).YAML()
	i, j := strings.Index(y, "inputs:\n"), strings.Index(y, "outputs:\n")
	in := fmt.Sprintf("inputs:\n  - id: pods\n    type: cri\n    root: %q\n    parse_json: %v\n    tag: %q\n    poll_interval: %q\n    checkpoint_interval: %q\n",
		c.root, o.parseJSON, "{field:log_type}.{container}", (200 * time.Millisecond).String(), (500 * time.Millisecond).String())
	if o.kube {
		in += c.kubeYAML()
	}
	return y[:i] + in + y[j:]
}

// send: the lines were written by prepare.
func (c *criMode) send(options) error { return nil }

func (c *criMode) expect() []expectation {
	e := make([]expectation, len(c.conts))
	for i, ct := range c.conts {
		e[i] = expectation{src: ct.Src(), lines: ct.Seq()}
	}
	return e
}

func (c *criMode) payloadBytes() int64 { return c.payload }

package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// defaultHealthAddr is the image's default metrics_addr (deploy/agent.yml).
const defaultHealthAddr = "127.0.0.1:2020"

// cmdHealth GETs /healthz (or, with --ready, /readyz) of a running agent
// and exits 0 on 200, 1 otherwise, printing the agent's answer. It is the
// health check of images without curl or wget (the FROM scratch image:
// ECS's healthCheck runs it). The address is --addr, else the
// metrics_addr of --config, else 127.0.0.1:2020.
func cmdHealth(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the agent's metrics_addr (default: --config's, else "+defaultHealthAddr+")")
	path := fs.String("config", "", "config file whose metrics_addr to use")
	ready := fs.Bool("ready", false, "check /readyz instead of /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long (below the caller's own timeout)")
	if err := fs.Parse(args); err != nil {
		return flagErrCode(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "agent health: unexpected arguments:", fs.Args())
		return 2
	}
	target := *addr
	if target == "" && *path != "" {
		cfg, err := config.Load(*path)
		if err != nil {
			printErrors(stderr, err)
			return 1
		}
		if cfg.MetricsAddr == "" {
			fmt.Fprintf(stderr, "agent health: %s sets no metrics_addr: the agent serves no health endpoint\n", *path)
			return 1
		}
		target = cfg.MetricsAddr
	}
	if target == "" {
		target = defaultHealthAddr
	}
	endpoint := "/healthz"
	if *ready {
		endpoint = "/readyz"
	}
	code, body, err := httpGet(probeURL(target, endpoint), *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "agent health:", err)
		return 1
	}
	if code != http.StatusOK {
		fmt.Fprintf(stderr, "agent health: %s: %d %s\n%s", endpoint, code, http.StatusText(code), body)
		return 1
	}
	fmt.Fprint(stdout, body)
	return 0
}

// probeURL is the URL of endpoint on an agent listening on addr. A
// wildcard host (":2020", "0.0.0.0:2020", "[::]:2020") is probed on
// loopback.
func probeURL(addr, endpoint string) string {
	for _, wild := range []string{"0.0.0.0:", "[::]:"} {
		if strings.HasPrefix(addr, wild) {
			addr = ":" + strings.TrimPrefix(addr, wild)
		}
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	return "http://" + addr + endpoint
}

// httpGet GETs url within timeout and returns the status and at most
// 64 KiB of the body.
func httpGet(url string, timeout time.Duration) (int, string, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", url, err)
	}
	return resp.StatusCode, string(b), nil
}

package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// cmdTap streams a sample of the events a running agent stores for an
// output (or a route) as JSON lines: GET /tap of the agent (agent/tap.go).
func cmdTap(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr, path := addrFlags(fs)
	n := fs.Int("n", 100, "stop after this many events (at most 10000)")
	rate := fs.Int("rate", 100, "at most this many events per second; the agent skips the others (at most 1000)")
	timeout := fs.Duration("timeout", time.Minute, "stop after this long (at most 10m)")
	pos, err := parseAll(fs, args)
	if err != nil {
		return flagErrCode(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "agent tap: give one OUTPUT or route:N")
		return 2
	}
	base, ok := agentURL("tap", *addr, *path, stderr)
	if !ok {
		return 1
	}
	q := url.Values{}
	if r, ok := strings.CutPrefix(pos[0], "route:"); ok {
		outs, err := routeOutputs(*path, r)
		if err != nil {
			fmt.Fprintln(stderr, "agent tap:", err)
			return 1
		}
		q["output"] = outs
	} else {
		q.Set("output", pos[0])
	}
	q.Set("n", fmt.Sprint(*n))
	q.Set("rate", fmt.Sprint(*rate))
	q.Set("timeout", timeout.String())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/tap?"+q.Encode(), nil)
	if err != nil {
		fmt.Fprintln(stderr, "agent tap:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "agent tap:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(stderr, "agent tap: %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), b)
		return 1
	}
	lines := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		fmt.Fprintf(stdout, "%s\n", sc.Bytes())
		lines++
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "agent tap:", err)
		return 1
	}
	fmt.Fprintf(stderr, "agent tap: %d events\n", lines)
	return 0
}

// addrFlags are the flags that locate a running agent.
func addrFlags(fs *flag.FlagSet) (addr, path *string) {
	addr = fs.String("addr", "", "the agent's metrics_addr (default: --config's, else "+defaultHealthAddr+")")
	path = fs.String("config", "", "config file whose metrics_addr to use")
	return
}

// agentURL is http://HOST:PORT of the agent at addr, else at the
// metrics_addr of the config at path, else at the default address.
func agentURL(name, addr, path string, stderr io.Writer) (string, bool) {
	if addr == "" && path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			fmt.Fprintf(stderr, "agent %s: ", name)
			printErrors(stderr, err)
			return "", false
		}
		if cfg.MetricsAddr == "" {
			fmt.Fprintf(stderr, "agent %s: %s sets no metrics_addr: the agent serves no status\n", name, path)
			return "", false
		}
		addr = cfg.MetricsAddr
	}
	if addr == "" {
		addr = defaultHealthAddr
	}
	return strings.TrimSuffix(probeURL(addr, "/"), "/"), true
}

// routeOutputs returns the outputs of route N (from 1, in config order)
// of the config at path. The queues do not record which route stored an
// event, so a route is tapped through its outputs, and only when no other
// route (nor default_output) feeds them: then their events are exactly
// the route's.
func routeOutputs(path, n string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("route:%s needs --config FILE (the routes are read from it)", n)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 1 || i > len(cfg.Routes) {
		return nil, fmt.Errorf("no route %q in %s: routes are numbered 1 to %d in file order", n, path, len(cfg.Routes))
	}
	rt := cfg.Routes[i-1]
	for _, id := range rt.Outputs {
		if id == cfg.DefaultOutput {
			return nil, fmt.Errorf("route %d: output %s is also the default_output, so its queue holds other events too; tap %s instead", i, id, id)
		}
		for j, other := range cfg.Routes {
			if j != i-1 && slices.Contains(other.Outputs, id) {
				return nil, fmt.Errorf("route %d: output %s is fed by route %d too, so its queue holds other events too; tap %s instead", i, id, j+1, id)
			}
		}
	}
	return rt.Outputs, nil
}

package main

// agent top: a live view of a running agent, from its /status and
// /metrics. See docs/operations.md ("agent top").

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/sluice-agent/sluice/agent"
)

// ANSI sequences of the live view.
const (
	ansiEnter = "\x1b[?1049h\x1b[?25l" // alternate screen, hide the cursor
	ansiLeave = "\x1b[?25h\x1b[?1049l"
	ansiHome  = "\x1b[H"
	ansiEOL   = "\x1b[K" // clear to the end of the line
	ansiEOS   = "\x1b[J" // clear to the end of the screen
)

// terminalWidth returns w's width in columns when it is a terminal.
var terminalWidth = func(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, false
	}
	return int(ws.Col), true
}

func cmdTop(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr, path := addrFlags(fs)
	interval := fs.Duration("interval", time.Second, "refresh period")
	iterations := fs.Int("iterations", 0, "stop after this many frames (0: until interrupted)")
	batch := fs.Bool("batch", false, "plain frames one after the other, no ANSI (the default when stdout is not a terminal)")
	if err := fs.Parse(args); err != nil {
		return flagErrCode(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "agent top: unexpected arguments:", fs.Args())
		return 2
	}
	if *interval < 100*time.Millisecond {
		fmt.Fprintln(stderr, "agent top: --interval must be at least 100ms")
		return 2
	}
	base, ok := agentURL("top", *addr, *path, stderr)
	if !ok {
		return 1
	}
	_, tty := terminalWidth(stdout)
	live := tty && !*batch
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if live {
		fmt.Fprint(stdout, ansiEnter)
		defer fmt.Fprint(stdout, ansiLeave)
	}
	client := &http.Client{Timeout: max(*interval, 2*time.Second)}
	var prev *topSample
	failed := false
	for i := 0; *iterations == 0 || i < *iterations; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return 0
			case <-time.After(*interval):
			}
		}
		cur, err := fetchSample(client, base)
		width := 0
		if live {
			width, _ = terminalWidth(stdout)
		}
		var lines []string
		if err != nil {
			failed = true
			lines = []string{fmt.Sprintf("agent top: %s: %v (retrying every %s)", base, err, *interval)}
		} else {
			failed = false
			lines = renderTop(cur, prev, base, *interval)
			prev = cur
		}
		var b strings.Builder
		if live {
			b.WriteString(ansiHome)
		}
		for _, l := range lines {
			b.WriteString(clip(l, width))
			if live {
				b.WriteString(ansiEOL + "\r")
			}
			b.WriteByte('\n')
		}
		if live {
			b.WriteString(ansiEOS)
		} else if *iterations != 1 {
			b.WriteByte('\n')
		}
		io.WriteString(stdout, b.String())
	}
	if failed {
		return 1
	}
	return 0
}

// clip cuts s to width columns (0: no limit); the lines are ASCII but for
// ids, paths and messages.
func clip(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width])
}

// topSample is one reading of the agent.
type topSample struct {
	at      time.Time
	status  agent.Status
	metrics map[string]float64 // series ("name{labels}" as served) -> value
	series  []series
}

type series struct {
	name   string
	labels map[string]string
	value  float64
}

func fetchSample(c *http.Client, base string) (*topSample, error) {
	s := &topSample{at: time.Now(), metrics: map[string]float64{}}
	resp, err := c.Get(base + "/status")
	if err != nil {
		return nil, err
	}
	err = json.NewDecoder(resp.Body).Decode(&s.status)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("/status: %w", err)
	}
	resp, err = c.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	s.series = parseMetrics(resp.Body)
	return s, nil
}

// parseMetrics reads the Prometheus text format: `name{k="v",...} value`
// lines; comments and histogram buckets are kept like any series.
func parseMetrics(r io.Reader) []series {
	var out []series
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		key := line[:sp]
		s := series{name: key, value: v, labels: map[string]string{}}
		if i := strings.IndexByte(key, '{'); i >= 0 && strings.HasSuffix(key, "}") {
			s.name = key[:i]
			s.labels = parseLabels(key[i+1 : len(key)-1])
		}
		out = append(out, s)
	}
	return out
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return m
		}
		k := s[:eq]
		// The value is a Go-style quoted string (\\, \", \n escapes).
		v, err := strconv.QuotedPrefix(s[eq+1:])
		if err != nil {
			return m
		}
		uv, _ := strconv.Unquote(v)
		m[k] = uv
		s = strings.TrimPrefix(s[eq+1+len(v):], ",")
	}
	return m
}

// sum adds the series named name whose labels include every pair of want.
func (s *topSample) sum(name string, want ...string) (float64, bool) {
	total, found := 0.0, false
	for _, x := range s.series {
		if x.name != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if x.labels[want[i]] != want[i+1] {
				match = false
				break
			}
		}
		if match {
			total += x.value
			found = true
		}
	}
	return total, found
}

// inputEvents is an input's event counter: events stored (forward), else
// lines read (docker, cri).
func (s *topSample) inputEvents(id string) float64 {
	if v, ok := s.sum("sluice_input_events_total", "input", id); ok {
		return v
	}
	v, _ := s.sum("sluice_input_lines_total", "input", id)
	return v
}

func (s *topSample) outputIn(id string) float64 {
	v, _ := s.sum("sluice_buffer_appended_events_total", "output", id)
	return v
}

func (s *topSample) outputOut(id string) float64 {
	v, _ := s.sum("sluice_buffer_settled_events_total", "output", id, "status", "delivered")
	return v
}

// retries are events retried (delivery engine), else chunk resends
// (the forward output's per server counter).
func (s *topSample) retries(id string) float64 {
	if v, ok := s.sum("sluice_output_retried_events_total", "output", id); ok {
		return v
	}
	v, _ := s.sum("sluice_output_retries_total", "output", id)
	return v
}

func (s *topSample) deadLettered(id string) float64 {
	v, _ := s.sum("sluice_output_dead_lettered_events_total", "output", id)
	return v
}

// drop is one (output, reason) of events lost.
type drop struct {
	output, reason string
	events         float64
}

// drops returns every non-zero count of lost events, by output and reason:
// buffer_full (drop_oldest), dead_letter_full, the outputs' own reasons
// (max_retries, rejected...; sluice_buffer_discarded_events_total), events
// too large for a queue, and unrouted events.
func (s *topSample) drops() []drop {
	var ds []drop
	add := func(output, reason string, v float64) {
		if v == 0 {
			return
		}
		for i := range ds {
			if ds[i].output == output && ds[i].reason == reason {
				ds[i].events += v
				return
			}
		}
		ds = append(ds, drop{output, reason, v})
	}
	for _, x := range s.series {
		o := x.labels["output"]
		switch x.name {
		case "sluice_buffer_dropped_events_total":
			if base, ok := strings.CutSuffix(o, ".deadletter"); ok {
				add(base, "dead_letter_full", x.value)
			} else {
				add(o, "buffer_full", x.value)
			}
		case "sluice_buffer_discarded_events_total":
			add(o, x.labels["reason"], x.value)
		case "sluice_events_too_large_total":
			add(o, "too_large", x.value)
		case "sluice_events_unrouted_total":
			add("-", "unrouted", x.value)
		}
	}
	slices.SortFunc(ds, func(a, b drop) int {
		return strings.Compare(a.output+"\x00"+a.reason, b.output+"\x00"+b.reason)
	})
	return ds
}

// renderTop lays out one frame. prev is the previous sample (nil on the
// first frame: rates show "-").
func renderTop(cur, prev *topSample, base string, interval time.Duration) []string {
	st := &cur.status
	rate := func(now, before func(*topSample) float64) string {
		if prev == nil {
			return "-"
		}
		dt := cur.at.Sub(prev.at).Seconds()
		if dt <= 0 {
			return "-"
		}
		return strconv.FormatFloat(math.Max(0, now(cur)-before(prev))/dt, 'f', 1, 64)
	}
	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY"
	}
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	var out []string
	out = append(out, fmt.Sprintf("sluice %s  up %s  %s  %s  %s  every %s  %s", st.Agent.Version,
		fmtSeconds(st.Agent.UptimeSeconds), health, ready, strings.TrimPrefix(base, "http://"), interval, cur.at.Format("15:04:05")))
	for _, p := range append(slices.Clone(st.HealthProblems), st.ReadinessProblems...) {
		msg := "problem: " + p.Component + " " + p.State
		if p.Error != "" {
			msg += ": " + p.Error
		}
		out = append(out, msg)
	}
	table := func(rows [][]string) {
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		tw.Flush()
		out = append(out, strings.Split(strings.TrimRight(b.String(), "\n"), "\n")...)
	}

	out = append(out, "")
	rows := [][]string{{"INPUT", "TYPE", "STATE", "EVENTS/S", "EVENTS", "DETAIL"}}
	for _, in := range st.Inputs {
		id := in.ID
		ev := func(s *topSample) float64 { return s.inputEvents(id) }
		state := in.State
		if in.State == "running" && !in.Ready {
			state = "starting"
		}
		rows = append(rows, []string{id, in.Type, state, rate(ev, ev), fmtCount(ev(cur)), inputDetail(in)})
	}
	table(rows)

	out = append(out, "")
	rows = [][]string{{"OUTPUT", "TYPE", "STATE", "IN/S", "OUT/S", "QUEUED", "BYTES", "OLDEST", "RETRIED", "DEAD-LETTERED"}}
	var errs []string
	for _, o := range st.Outputs {
		id := o.ID
		in := func(s *topSample) float64 { return s.outputIn(id) }
		outEv := func(s *topSample) float64 { return s.outputOut(id) }
		oldest := "-"
		if o.Queue.OldestEventTime != nil {
			oldest = fmtSeconds(o.Queue.OldestAgeSeconds)
		}
		rows = append(rows, []string{id, o.Type, o.State, rate(in, in), rate(outEv, outEv),
			fmtCount(float64(o.Queue.PendingEvents)), fmtBytes(o.Queue.Bytes), oldest,
			fmtCount(cur.retries(id)), fmtCount(cur.deadLettered(id))})
		switch {
		case o.Error != "":
			errs = append(errs, fmt.Sprintf("%s: failed: %s", id, o.Error))
		case o.LastError != "" && o.LastErrorAt != nil:
			errs = append(errs, fmt.Sprintf("%s: %s ago: %s", id, fmtSeconds(cur.at.Sub(*o.LastErrorAt).Seconds()), o.LastError))
		}
	}
	table(rows)

	if srv := serverRows(st, cur.at); len(srv) > 1 {
		out = append(out, "")
		table(srv)
	}
	if ds := cur.drops(); len(ds) > 0 {
		out = append(out, "")
		rows = [][]string{{"DROPPED", "REASON", "EVENTS", "EVENTS/S"}}
		for _, d := range ds {
			d := d
			v := func(s *topSample) float64 {
				for _, x := range s.drops() {
					if x.output == d.output && x.reason == d.reason {
						return x.events
					}
				}
				return 0
			}
			rows = append(rows, []string{d.output, d.reason, fmtCount(d.events), rate(v, v)})
		}
		table(rows)
	}
	if len(errs) > 0 {
		out = append(out, "", "LAST ERRORS")
		out = append(out, errs...)
	}
	return out
}

// inputDetail is a short summary of an input type's own status.
func inputDetail(in agent.InputStatus) string {
	d, _ := in.Detail.(map[string]any)
	if d == nil {
		return ""
	}
	num := func(k string) (float64, bool) { v, ok := d[k].(float64); return v, ok }
	var parts []string
	if v, ok := num("connections"); ok {
		parts = append(parts, fmt.Sprintf("%s connections", fmtCount(v)))
	}
	if v, ok := num("files_open"); ok {
		parts = append(parts, fmt.Sprintf("%s files open", fmtCount(v)))
	}
	if v, ok := num("lag_bytes"); ok {
		parts = append(parts, "lag "+fmtBytes(int64(v)))
	}
	if in.Error != "" {
		parts = append(parts, in.Error)
	}
	return strings.Join(parts, ", ")
}

// serverRows lists the servers of outputs that report them (forward).
func serverRows(st *agent.Status, now time.Time) [][]string {
	rows := [][]string{{"SERVER", "OUTPUT", "STATE", "FOR", "CHUNKS SENT", "ACKED", "CONNECT FAILURES"}}
	for _, o := range st.Outputs {
		d, _ := o.Detail.(map[string]any)
		list, _ := d["servers"].([]any)
		for _, x := range list {
			s, _ := x.(map[string]any)
			if s == nil {
				continue
			}
			str := func(k string) string { v, _ := s[k].(string); return v }
			num := func(k string) string { v, _ := s[k].(float64); return fmtCount(v) }
			state := str("state")
			if b, _ := s["standby"].(bool); b {
				state += " (standby)"
			}
			since := "-"
			if t, err := time.Parse(time.RFC3339Nano, str("since")); err == nil {
				since = fmtSeconds(now.Sub(t).Seconds())
			}
			rows = append(rows, []string{str("address"), o.ID, state, since, num("chunks_sent"), num("chunks_acked"), num("connection_failures")})
		}
	}
	return rows
}

func fmtCount(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// fmtSeconds is a duration rounded to the second: 59s, 13m32s, 2h5m0s.
func fmtSeconds(s float64) string {
	if s < 0 {
		s = 0
	}
	return (time.Duration(s) * time.Second).String()
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f%s", v, []string{"B", "KiB", "MiB", "GiB", "TiB"}[u])
}

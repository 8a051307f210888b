package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// sendLoop posts {"msg": "m<i>"} under tag every period until stop is
// closed.
func sendLoop(t *testing.T, port int, tag string, period time.Duration, stop chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port})
		if err != nil {
			t.Error(err)
			return
		}
		defer l.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(period):
			}
			if err := l.Post(tag, map[string]string{"msg": fmt.Sprintf("m%d", i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	return done
}

var tapLine = regexp.MustCompile(`^\{"output":"(\w+)","tag":"([\w.]+)","time":"[0-9T:.-]+Z","record":\{"msg":"m(\d+)"\}\}$`)

// tapped runs `agent tap args...` and returns the output, tag and message
// number of each line.
func tapped(t *testing.T, args ...string) (outs, tags []string, nums []int, stderr string) {
	t.Helper()
	code, out, errs := runCmd(append([]string{"tap"}, args...)...)
	if code != 0 {
		t.Fatalf("tap %v: code %d: %s", args, code, errs)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := tapLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("tap line %q", l)
		}
		n, _ := strconv.Atoi(m[3])
		outs, tags, nums = append(outs, m[1]), append(tags, m[2]), append(nums, n)
	}
	return outs, tags, nums, errs
}

// TestTap: `agent tap OUTPUT` streams the next events stored for the
// output as JSON lines, in order, and stops after -n; --rate samples;
// route:N taps a route's own outputs and refuses shared ones.
func TestTap(t *testing.T) {
	addr, port, cfgFile, stopAgent := startAgentConfig(t, "  - {id: web, type: file, path: /dev/null}\nroutes: [{match: \"web.**\", outputs: [web]}, {match: \"app.**\", outputs: [app]}]\n")
	defer stopAgent()
	stop := make(chan struct{})
	app := sendLoop(t, port, "app.x", 5*time.Millisecond, stop)
	web := sendLoop(t, port, "web.y", 5*time.Millisecond, stop)
	defer func() { close(stop); <-app; <-web }()

	outs, tags, nums, errs := tapped(t, "app", "--addr", addr, "-n", "20")
	if len(nums) != 20 || errs != "agent tap: 20 events\n" {
		t.Fatalf("%d events, stderr %q", len(nums), errs)
	}
	for i := range nums {
		if outs[i] != "app" || tags[i] != "app.x" || (i > 0 && nums[i] != nums[i-1]+1) {
			t.Fatalf("event %d: %s %s m%d after m%d: want app app.x and consecutive", i, outs[i], tags[i], nums[i], nums[max(i-1, 0)])
		}
	}

	// 200 events/s sampled at 20/s: 30 events take more than half a second
	// and skip some.
	start := time.Now()
	_, _, nums, _ = tapped(t, "app", "--addr", addr, "-n", "30", "--rate", "20")
	gaps := 0
	for i := 1; i < len(nums); i++ {
		if nums[i] <= nums[i-1] {
			t.Fatalf("out of order: %v", nums)
		}
		if nums[i] != nums[i-1]+1 {
			gaps++
		}
	}
	if len(nums) != 30 || gaps == 0 || time.Since(start) < 400*time.Millisecond {
		t.Errorf("rate 20: %d events, %d gaps, in %s", len(nums), gaps, time.Since(start))
	}

	// Route 1 alone feeds web.
	outs, tags, _, _ = tapped(t, "route:1", "--config", cfgFile, "-n", "5")
	if strings.Join(outs, ",") != "web,web,web,web,web" || tags[0] != "web.y" {
		t.Errorf("route:1: %v %v", outs, tags)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"route:2", "--config", cfgFile}, "agent tap: route 2: output app is also the default_output, so its queue holds other events too; tap app instead\n"},
		{[]string{"route:3", "--config", cfgFile}, `agent tap: no route "3" in ` + cfgFile + ": routes are numbered 1 to 2 in file order\n"},
		{[]string{"route:1", "--addr", addr}, "agent tap: route:1 needs --config FILE (the routes are read from it)\n"},
		{[]string{"nope", "--addr", addr}, "agent tap: 404 Not Found: no output \"nope\"\n"},
		{[]string{"app", "--addr", addr, "-n", "0"}, "agent tap: 400 Bad Request: \"0\": want an integer in [1, 10000]\n"},
	} {
		code, _, errs := runCmd(append([]string{"tap"}, c.args...)...)
		if code != 1 || errs != c.err {
			t.Errorf("tap %v: code %d %q, want %q", c.args, code, errs, c.err)
		}
	}
}

package pipeline

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/cond"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/processors"
)

func sp(s string) *string { return &s }

func procRouter(t testing.TB, routes []config.Route, dflt string, procs []processors.Spec, names ...string) (*Router, map[string]*memQueue, *metrics.Set) {
	t.Helper()
	qs := map[string]*memQueue{}
	var oq []OutputQueue
	for _, n := range names {
		q := &memQueue{}
		qs[n] = q
		oq = append(oq, OutputQueue{ID: n, Queue: q})
	}
	set := metrics.NewSet()
	r, err := NewRouter(routes, dflt, oq, set, nil, WithProcessors(procs), WithHostname("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	return r, qs, set
}

// TestRouteWhen: routes on conditions of the raw line (regex, contains),
// next to an exact field route, first match wins.
func TestRouteWhen(t *testing.T) {
	routes := []config.Route{
		{Match: "**", Field: "stream", Value: "stderr", Outputs: []string{"errors"}},
		{Match: "**", When: &config.Condition{Field: "log", Regex: sp(`type=(access|audit)\b`)}, Outputs: []string{"access"}, Continue: true},
		{Match: "**", When: &config.Condition{Field: "log", Contains: sp("type=audit")}, Outputs: []string{"audit"}},
		{Match: "**", When: &config.Condition{Not: &config.Condition{Field: "log", Contains: sp("type=")}}, Outputs: []string{"untyped"}},
	}
	r, qs, set := procRouter(t, routes, "", nil, "errors", "access", "audit", "untyped")
	w := r.NewWriter()
	for _, l := range []string{"a type=app", "b type=access", "c type=audit", "d plain", "e type=accessor"} {
		w.Add(&Event{Tag: []byte("docker.x"), Record: record("log", l, "stream", "stdout")})
	}
	w.Add(&Event{Tag: []byte("docker.x"), Record: record("log", "f type=audit", "stream", "stderr")})
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"errors":  {"docker.x:f type=audit"},
		"access":  {"docker.x:b type=access", "docker.x:c type=audit"},
		"audit":   {"docker.x:c type=audit"},
		"untyped": {"docker.x:d plain"},
	}
	for n, q := range qs {
		if got := q.events(t); !reflect.DeepEqual(got, want[n]) {
			t.Errorf("%s: got %q want %q", n, got, want[n])
		}
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), "sluice_events_unrouted_total 2") { // type=app, type=accessor
		t.Errorf("metrics:\n%s", b.String())
	}
}

// TestWriterProcessors: processors run before routing: a drop is not
// routed, a rewrite_tag changes the tag the routes and the chunk see, a
// field operation changes the stored record.
func TestWriterProcessors(t *testing.T) {
	procs := []processors.Spec{
		{ID: "health", Type: "drop", When: &cond.Spec{Field: "log", Contains: sp("/healthz")}},
		{Type: "rewrite_tag", Match: "docker.**", When: &cond.Spec{Field: "log", Contains: sp("type=audit")}, Tag: "audit.{tag}"},
		{Type: "add", Match: "audit.**", Fields: []processors.Field{{Key: "host", Source: "hostname"}}},
	}
	routes := []config.Route{{Match: "audit.**", Outputs: []string{"audit"}}, {Match: "docker.**", Outputs: []string{"app"}}}
	r, qs, set := procRouter(t, routes, "", procs, "app", "audit")
	w := r.NewWriter()
	for _, l := range []string{"GET /healthz", "x type=audit", "y type=app"} {
		w.Add(&Event{Tag: []byte("docker.web"), Time: 1, Record: record("log", l)})
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := qs["app"].events(t); !reflect.DeepEqual(got, []string{"docker.web:y type=app"}) {
		t.Errorf("app: %q", got)
	}
	if got := qs["audit"].events(t); !reflect.DeepEqual(got, []string{"audit.docker.web:x type=audit"}) {
		t.Errorf("audit: %q", got)
	}
	wire.ForEachEntry(qs["audit"].chunks[0].entries, func(_ int64, rec []byte) error {
		if h, _ := wire.LookupString(rec, []byte("host")); string(h) != "node-1" {
			t.Errorf("host %q", h)
		}
		return nil
	})
	var b strings.Builder
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), `sluice_processor_dropped_total{processor="health"} 1`) {
		t.Errorf("metrics:\n%s", b.String())
	}
}

// TestWriterNoProcessorCost: a tag no processor matches costs no
// allocation and keeps the per-tag route cache.
func TestWriterNoProcessorCost(t *testing.T) {
	procs := []processors.Spec{{Type: "drop", Match: "noisy.**"}}
	r, _, _ := procRouter(t, []config.Route{{Match: "**", Outputs: []string{"o"}}}, "", procs, "o")
	w := r.NewWriter()
	ev := &Event{Tag: []byte("app.web"), Record: record("log", "x")}
	w.Add(ev)
	if n := testing.AllocsPerRun(1000, func() { w.Add(ev) }); n != 0 {
		t.Fatalf("%.1f allocs per Add", n)
	}
	if w.byField {
		t.Fatal("processors made routing per record")
	}
}

func TestDryRun(t *testing.T) {
	procs := []processors.Spec{
		{Type: "remove", Keys: []string{"pad"}},
		{Type: "rewrite_tag", Tag: "audit.{tag}", When: &cond.Spec{Field: "log", Contains: sp("type=audit")}, Match: "docker.**"},
	}
	routes := []config.Route{{Match: "audit.**", Outputs: []string{"audit", "archive"}, Continue: true}, {Match: "**", Outputs: []string{"archive"}}}
	r, _, _ := procRouter(t, routes, "dflt", procs, "audit", "archive", "dflt")
	o := r.DryRun([]byte("docker.web"), record("log", "x type=audit", "pad", "aaa"))
	var steps []string
	for _, s := range o.Steps {
		steps = append(steps, fmt.Sprintf("%s:%s", s.Processor, s.Tag))
	}
	if want := []string{"remove-1:docker.web", "rewrite_tag-2:audit.docker.web", "remove-1:audit.docker.web"}; !reflect.DeepEqual(steps, want) {
		t.Errorf("steps %q want %q", steps, want)
	}
	if !reflect.DeepEqual(o.Routes, []int{0, 1}) || !reflect.DeepEqual(o.Outputs, []string{"audit", "archive"}) || o.Default {
		t.Errorf("%+v", o)
	}
	o = r.DryRun([]byte("other"), record("log", "y"))
	if len(o.Steps) != 1 || !reflect.DeepEqual(o.Outputs, []string{"archive"}) {
		t.Errorf("%+v", o)
	}
}

// BenchmarkWriterAddProcessors: Add with no processor for the tag, with
// a when that is false, and with two field operations.
func BenchmarkWriterAddProcessors(b *testing.B) {
	rec := record("log", "2026-01-02 GET /api type=access "+strings.Repeat("x", 160), "stream", "stdout", "container_id", strings.Repeat("a", 64), "container_name", "web")
	for name, procs := range map[string][]processors.Spec{
		"none":            nil,
		"no_match":        {{Type: "drop", Match: "other.**"}},
		"drop_when_false": {{Type: "drop", When: &cond.Spec{Field: "log", Contains: sp("/healthz")}}},
		"add_remove":      {{Type: "add", Fields: []processors.Field{{Key: "host", Source: "hostname"}}}, {Type: "remove", Keys: []string{"container_id"}}},
	} {
		r, err := NewRouter([]config.Route{{Match: "app.*", Outputs: []string{"o"}}}, "", []OutputQueue{{ID: "o", Queue: discardQueue{}}}, nil, nil, WithProcessors(procs), WithHostname("n"))
		if err != nil {
			b.Fatal(err)
		}
		w := r.NewWriter()
		ev := &Event{Tag: []byte("app.web"), Time: 1700000000123456789, Record: rec}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(rec)))
			for i := 0; b.Loop(); i++ {
				w.Add(ev)
				if i%1000 == 0 {
					w.Flush(context.Background())
				}
			}
		})
	}
}

// TestThrottleNoisyNeighbour, in real time: a container writing 50,000
// lines/s next to one writing 100 lines/s, each read by its own goroutine
// (Writer), throttled at 1,000/s per container by one shared processor.
// The quiet container loses nothing and its events are stored as fast as
// without the noisy one (each within its goroutine's next 10 ms flush);
// the noisy one keeps about 1,000/s plus the burst, and the drops are
// counted per container.
func TestThrottleNoisyNeighbour(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 2 s of real time")
	}
	const run = 2 * time.Second
	procs := []processors.Spec{{ID: "tame", Type: "throttle", Per: "container", Rate: 1000, Burst: 1000}}
	routes := []config.Route{
		{Match: "**", Field: "container_name", Value: "noisy", Outputs: []string{"noisy"}},
		{Match: "**", Outputs: []string{"quiet"}},
	}
	r, qs, set := procRouter(t, routes, "", procs, "noisy", "quiet")
	var wg sync.WaitGroup
	var quietMaxLatency time.Duration
	writer := func(name string, rate int, lat *time.Duration) {
		w := r.NewWriter()
		start := time.Now()
		sent := 0
		var pending []time.Time // Add times not yet flushed
		for time.Since(start) < run {
			due := int(time.Since(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				w.Add(&Event{Tag: []byte("docker." + name), Time: time.Now().UnixNano(), Record: record("log", fmt.Sprint(sent), "container_name", name)})
				if lat != nil {
					pending = append(pending, time.Now())
				}
			}
			if err := w.Flush(context.Background()); err != nil {
				t.Error(err)
				return
			}
			for _, at := range pending {
				*lat = max(*lat, time.Since(at))
			}
			pending = pending[:0]
			time.Sleep(10 * time.Millisecond)
		}
	}
	wg.Go(func() { writer("noisy", 50_000, nil) })
	wg.Go(func() { writer("quiet", 100, &quietMaxLatency) })
	wg.Wait()

	count := func(q *memQueue) (n int) {
		for _, c := range q.chunks {
			n += c.count
		}
		return n
	}
	quiet, noisy := count(qs["quiet"]), count(qs["noisy"])
	if want := int(run.Seconds() * 100); quiet < want-2 {
		t.Errorf("quiet stored %d lines, wrote about %d", quiet, want)
	}
	if quietMaxLatency > 100*time.Millisecond {
		t.Errorf("quiet events waited up to %v for their flush", quietMaxLatency)
	}
	// 1,000/s for 2 s plus the burst of 1,000, give or take scheduling.
	if noisy < 2500 || noisy > 3300 {
		t.Errorf("noisy stored %d lines, want about 3000", noisy)
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	m := b.String()
	dropped := agentMetric(m, `sluice_processor_throttled_total{processor="tame",key="noisy"}`)
	if dropped < 90_000 || strings.Contains(m, `key="quiet"`) {
		t.Errorf("drops per container: noisy %v (want about 97,000), quiet listed: %v\n%s", dropped, strings.Contains(m, `key="quiet"`), m)
	}
	t.Logf("quiet: %d stored, max wait for its flush %v; noisy: %d stored, %v dropped", quiet, quietMaxLatency, noisy, dropped)
}

func agentMetric(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

package processors

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/internal/cond"
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/internal/wire"
)

func sp(s string) *string { return &s }

// fromJSON converts a JSON object to a msgpack record.
func fromJSON(t testing.TB, js string) []byte {
	t.Helper()
	var f record.Fields
	if !f.Parse([]byte(js), nil) {
		t.Fatalf("bad JSON %s", js)
	}
	return append(msgp.AppendMapHeader(nil, uint32(f.Len())), f.Pairs()...)
}

func toJSON(t testing.TB, rec []byte) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := msgp.UnmarshalAsJSON(&b, rec); err != nil {
		t.Fatalf("record %x: %v", rec, err)
	}
	return b.String()
}

func chain(t testing.TB, specs ...Spec) *Chain {
	t.Helper()
	c, err := New(specs, Options{Hostname: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t testing.TB, c *Chain, tag, js string) (string, string, bool) {
	t.Helper()
	r := c.NewRunner(nil)
	nt, rec, keep := r.Run(c.Select([]byte(tag)), []byte(tag), fromJSON(t, js))
	return string(nt), toJSON(t, rec), keep
}

const in = `{"log":"GET /x type=access","stream":"stdout","container_name":"web","kubernetes":{"namespace_name":"prod","labels":{"app":"web","tier":"fe"}},"n":1}`

func TestOps(t *testing.T) {
	for name, tc := range map[string]struct {
		spec Spec
		want string
	}{
		"add": {Spec{Type: "add", Fields: []Field{{Key: "env", Value: "prod"}, {Key: "host", Source: "hostname"}, {Key: "stream", Value: "x"}}},
			`{"log":"GET /x type=access","stream":"x","container_name":"web","kubernetes":{"namespace_name":"prod","labels":{"app":"web","tier":"fe"}},"n":1,"env":"prod","host":"node-1"}`},
		"rename": {Spec{Type: "rename", Fields: []Field{{Key: "log", To: "message"}, {Key: "absent", To: "x"}, {Key: "n", To: "stream"}}},
			`{"stream":1,"container_name":"web","kubernetes":{"namespace_name":"prod","labels":{"app":"web","tier":"fe"}},"message":"GET /x type=access"}`},
		"remove": {Spec{Type: "remove", Keys: []string{"kubernetes", "n", "absent"}},
			`{"log":"GET /x type=access","stream":"stdout","container_name":"web"}`},
		"keep": {Spec{Type: "keep", Keys: []string{"n", "log"}},
			`{"log":"GET /x type=access","n":1}`},
		"lift": {Spec{Type: "lift", Key: "kubernetes"},
			`{"log":"GET /x type=access","stream":"stdout","container_name":"web","n":1,"namespace_name":"prod","labels":{"app":"web","tier":"fe"}}`},
		"lift prefix": {Spec{Type: "lift", Key: "kubernetes", Prefix: "k8s_"},
			`{"log":"GET /x type=access","stream":"stdout","container_name":"web","n":1,"k8s_namespace_name":"prod","k8s_labels":{"app":"web","tier":"fe"}}`},
		"lift not a map": {Spec{Type: "lift", Key: "log"}, in},
		"nest": {Spec{Type: "nest", Keys: []string{"stream", "container_name", "absent"}, Key: "src"},
			`{"log":"GET /x type=access","kubernetes":{"namespace_name":"prod","labels":{"app":"web","tier":"fe"}},"n":1,"src":{"stream":"stdout","container_name":"web"}}`},
		"nest none": {Spec{Type: "nest", Keys: []string{"absent"}, Key: "src"}, in},
		"redact": {Spec{Type: "redact", Keys: []string{"log", "stream"}, Custom: []string{`type=\w+`}},
			`{"log":"GET /x [REDACTED]","stream":"stdout","container_name":"web","kubernetes":{"namespace_name":"prod","labels":{"app":"web","tier":"fe"}},"n":1}`},
		"when false": {Spec{Type: "remove", Keys: []string{"log"}, When: &cond.Spec{Field: "kubernetes.labels.app", Equals: sp("db")}}, in},
		"when true": {Spec{Type: "remove", Keys: []string{"log", "kubernetes"}, When: &cond.Spec{Field: "kubernetes.labels.app", Equals: sp("web")}},
			`{"stream":"stdout","container_name":"web","n":1}`},
		"match other tag": {Spec{Type: "remove", Keys: []string{"log"}, Match: "other.**"}, in},
	} {
		t.Run(name, func(t *testing.T) {
			_, got, keep := run(t, chain(t, tc.spec), "docker.web", in)
			if !keep || got != tc.want {
				t.Fatalf("got  %s (keep %v)\nwant %s", got, keep, tc.want)
			}
		})
	}
}

// TestLiftMerge: lifted members replace top-level keys of the same name
// and a lift followed by a nest round-trips.
func TestLiftMerge(t *testing.T) {
	c := chain(t,
		Spec{Type: "lift", Key: "m"},
		Spec{Type: "nest", Keys: []string{"a", "b"}, Key: "m"},
	)
	_, got, _ := run(t, c, "t", `{"a":0,"m":{"a":1,"b":2},"z":3}`)
	if want := `{"z":3,"m":{"a":1,"b":2}}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

// TestOrder: each processor sees what the previous ones left, a when
// included.
func TestOrder(t *testing.T) {
	c := chain(t,
		Spec{Type: "add", Fields: []Field{{Key: "level", Value: "debug"}}},
		Spec{Type: "drop", When: &cond.Spec{Field: "level", Equals: sp("debug")}, Match: "noisy.**"},
		Spec{Type: "rename", Fields: []Field{{Key: "level", To: "severity"}}},
	)
	if _, _, keep := run(t, c, "noisy.a", `{"log":"x"}`); keep {
		t.Fatal("not dropped")
	}
	if _, got, keep := run(t, c, "quiet.a", `{"log":"x"}`); !keep || got != `{"log":"x","severity":"debug"}` {
		t.Fatalf("got %s %v", got, keep)
	}
}

func TestDropCounted(t *testing.T) {
	set := metrics.NewSet()
	c, err := New([]Spec{{ID: "health", Type: "drop", When: &cond.Spec{Field: "log", Contains: sp("/healthz")}}}, Options{Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	r := c.NewRunner(nil)
	for i := range 10 {
		js := `{"log":"GET /api"}`
		if i%2 == 0 {
			js = `{"log":"GET /healthz"}`
		}
		r.Run(c.Select([]byte("t")), []byte("t"), fromJSON(t, js))
	}
	var b bytes.Buffer
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), `sluice_processor_dropped_total{processor="health"} 5`) {
		t.Fatalf("metrics:\n%s", b.String())
	}
}

func TestRewriteTag(t *testing.T) {
	c := chain(t,
		Spec{Type: "rewrite_tag", Match: "docker.**", Tag: "audit.{field:kubernetes.namespace_name}.{tag}", When: &cond.Spec{Field: "log", Contains: sp("type=access")}},
		Spec{Type: "add", Match: "audit.**", Fields: []Field{{Key: "audited", Value: "yes"}}},
	)
	tag, got, _ := run(t, c, "docker.web", in)
	if tag != "audit.prod.docker.web" || !strings.Contains(got, `"audited":"yes"`) {
		t.Fatalf("tag %s record %s", tag, got)
	}
	// Missing field renders unknown.
	tag, _, _ = run(t, c, "docker.web", `{"log":"type=access"}`)
	if tag != "audit.unknown.docker.web" {
		t.Fatalf("tag %s", tag)
	}
}

// TestRewriteLoop: a rewrite that keeps matching itself stops after
// MaxRewrites and is counted.
func TestRewriteLoop(t *testing.T) {
	set := metrics.NewSet()
	c, err := New([]Spec{
		{ID: "loop", Type: "rewrite_tag", Match: "a.**", Tag: "a.{tag}"},
		{ID: "mark", Type: "add", Fields: []Field{{Key: "seen", Value: "1"}}},
	}, Options{Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	r := c.NewRunner(nil)
	tag, rec, keep := r.Run(c.Select([]byte("a.b")), []byte("a.b"), fromJSON(t, `{"log":"x"}`))
	if want := strings.Repeat("a.", MaxRewrites+1) + "b"; string(tag) != want || !keep {
		t.Fatalf("tag %s want %s", tag, want)
	}
	if got := toJSON(t, rec); got != `{"log":"x","seen":"1"}` {
		t.Fatal(got)
	}
	var b bytes.Buffer
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), `sluice_processor_rewrite_loops_total{processor="loop"} 1`) {
		t.Fatalf("metrics:\n%s", b.String())
	}
	// A rewrite to the same tag does not restart.
	c2 := chain(t, Spec{Type: "rewrite_tag", Tag: "{tag}"}, Spec{Type: "add", Fields: []Field{{Key: "k", Value: "v"}}})
	if tag, got, _ := run(t, c2, "x", `{}`); tag != "x" || got != `{"k":"v"}` {
		t.Fatal(tag, got)
	}
}

func TestRedactBuiltins(t *testing.T) {
	c := chain(t, Spec{Type: "redact", Mask: "***"})
	for name, tc := range map[string]struct{ in, want string }{
		"email":         {"user bob.smith+x@mail.example.co.uk logged in.", "user *** logged in."},
		"email no tld":  {"a@b and x@localhost", "a@b and x@localhost"},
		"ipv4":          {"from 10.0.12.255:443 and 1.2.3.4.", "from ***:443 and ***."},
		"not ipv4":      {"v1.2.3.4.5 256.1.1.1 1.2.3", "v1.2.3.4.5 256.1.1.1 1.2.3"},
		"card":          {"card 4111 1111 1111 1111 ok, 4111-1111-1111-1111, 4111111111111111", "card *** ok, ***, ***"},
		"card bad luhn": {"order 4111111111111112 id 1234567890123", "order 4111111111111112 id 1234567890123"},
		"aws":           {"key=AKIAIOSFODNN7EXAMPLE,ASIAY34FZKBOKMUTVV7A", "key=***,***"},
		"aws embedded":  {"XAKIAIOSFODNN7EXAMPLE", "XAKIAIOSFODNN7EXAMPLE"},
		"bearer":        {"Authorization: Bearer abc.def-123_XYZ~+/= next", "Authorization: Bearer *** next"},
		"jwt":           {"t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk end", "t=*** end"},
		"nothing":       {"plain line", "plain line"},
	} {
		t.Run(name, func(t *testing.T) {
			_, got, _ := run(t, c, "t", fmt.Sprintf(`{"log":%q}`, tc.in))
			if want := fmt.Sprintf(`{"log":%q}`, tc.want); got != want {
				t.Fatalf("got %s want %s", got, want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		s    Spec
		want string
	}{
		"type":         {Spec{Type: "modify"}, `processor 1 (modify-1): unknown type "modify"`},
		"match":        {Spec{Type: "drop", Match: "a.{b"}, "match:"},
		"when":         {Spec{Type: "drop", When: &cond.Spec{Field: "log", Regex: sp("a(b")}}, "when: regex: at offset 1: error parsing regexp"},
		"add source":   {Spec{Type: "add", Fields: []Field{{Key: "h", Source: "env"}}}, `fields[0].source: unknown source "env"`},
		"rename":       {Spec{Type: "rename", Fields: []Field{{Key: "a"}}}, "fields[0]: rename needs key and to"},
		"keys":         {Spec{Type: "keep"}, "keys: at least one key is required"},
		"template":     {Spec{Type: "rewrite_tag", Tag: "a.{name}"}, `tag: unknown placeholder "{name}"`},
		"unclosed":     {Spec{Type: "rewrite_tag", Tag: "a.{tag"}, `tag: unclosed "{" at offset 2`},
		"throttle":     {Spec{Type: "throttle", Per: "pod", Rate: 1}, `per: unknown "pod"`},
		"rate":         {Spec{Type: "throttle"}, "rate: must be positive"},
		"pattern":      {Spec{Type: "redact", Patterns: []string{"ssn"}}, `patterns[0]: unknown pattern "ssn"`},
		"custom regex": {Spec{Type: "redact", Custom: []string{"ok", "x[1-"}}, "custom[1]: at offset 1: error parsing regexp"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New([]Spec{tc.s}, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v want %q", err, tc.want)
			}
		})
	}
}

// fakeClock is a throttle clock moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestThrottle: a container writing 50,000 lines/s next to one writing
// 100 lines/s, throttled at 1,000/s per container: the quiet one loses
// nothing, the noisy one gets its 1,000/s (plus the burst), and the drops
// are counted per container. Two goroutines (Runners) share the noisy
// container's budget.
func TestThrottle(t *testing.T) {
	set := metrics.NewSet()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	c, err := New([]Spec{{ID: "per-container", Type: "throttle", Rate: 1000, Burst: 1000}}, Options{Metrics: set, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	noisy := fromJSON(t, `{"log":"x","container_name":"noisy"}`)
	quiet := fromJSON(t, `{"log":"x","container_name":"quiet"}`)
	sel := c.Select([]byte("docker"))
	r1, r2 := c.NewRunner(nil), c.NewRunner(nil)
	var noisyKept, quietKept int
	// 10 s in 1 ms steps: 50 noisy lines per step (25 per goroutine), a
	// quiet line every 10 steps.
	for step := range 10_000 {
		clk.add(time.Millisecond)
		for i := range 50 {
			r := r1
			if i%2 == 1 {
				r = r2
			}
			if _, _, keep := r.Run(sel, []byte("docker"), noisy); keep {
				noisyKept++
			}
		}
		if step%10 == 0 {
			if _, _, keep := r1.Run(sel, []byte("docker"), quiet); keep {
				quietKept++
			}
		}
	}
	if quietKept != 1000 {
		t.Errorf("quiet kept %d of 1000", quietKept)
	}
	// 10 s at 1,000/s plus the initial burst of 1,000.
	if noisyKept < 10_900 || noisyKept > 11_100 {
		t.Errorf("noisy kept %d, want about 11000", noisyKept)
	}
	var b bytes.Buffer
	set.WritePrometheus(&b)
	m := b.String()
	want := fmt.Sprintf(`sluice_processor_throttled_total{processor="per-container",key="noisy"} %d`, 500_000-noisyKept)
	if !strings.Contains(m, want) || strings.Contains(m, `key="quiet"`) {
		t.Fatalf("want %s in\n%s", want, m)
	}
	if !strings.Contains(m, fmt.Sprintf(`sluice_processor_dropped_total{processor="per-container"} %d`, 500_000-noisyKept)) {
		t.Fatalf("total drops missing in\n%s", m)
	}
}

func TestThrottleSampleAndTag(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	c, err := New([]Spec{{Type: "throttle", Per: "tag", Rate: 10, Burst: 10, Sample: 100}}, Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	r := c.NewRunner(nil)
	rec := fromJSON(t, `{"log":"x","container_name":"c"}`)
	kept := map[string]int{}
	for range 1010 {
		for _, tag := range []string{"a", "b"} {
			if _, _, keep := r.Run(c.Select([]byte(tag)), []byte(tag), rec); keep {
				kept[tag]++
			}
		}
	}
	// Per tag: the burst of 10, then 1 in 100 of the 1000 over it.
	if kept["a"] != 20 || kept["b"] != 20 {
		t.Fatalf("kept %v", kept)
	}
}

// TestThrottleKubeKey: CRI records are keyed by namespace/pod/container.
func TestThrottleKubeKey(t *testing.T) {
	th, _ := newThrottle(&Spec{Rate: 1})
	rec := fromJSON(t, `{"log":"x","kubernetes":{"namespace_name":"ns","pod_name":"p","container_name":"c"}}`)
	if k := th.key(nil, []byte("tag"), rec); string(k) != "ns/p/c" {
		t.Fatalf("key %q", k)
	}
	if k := th.key(nil, []byte("tag"), fromJSON(t, `{"log":"x"}`)); string(k) != "tag" {
		t.Fatalf("key %q", k)
	}
}

// TestZeroAlloc: a warmed Runner allocates nothing per event, for
// conditions, field operations, built-in redaction and throttling.
func TestZeroAlloc(t *testing.T) {
	c := chain(t,
		Spec{Type: "drop", When: &cond.Spec{Field: "log", Contains: sp("healthz")}},
		Spec{Type: "add", Fields: []Field{{Key: "host", Source: "hostname"}}},
		Spec{Type: "rename", Fields: []Field{{Key: "n", To: "count"}}},
		Spec{Type: "lift", Key: "kubernetes", Prefix: "k_"},
		Spec{Type: "nest", Keys: []string{"stream", "container_name"}, Key: "src"},
		Spec{Type: "remove", Keys: []string{"k_labels"}},
		Spec{Type: "redact", Patterns: []string{"email", "ipv4", "credit_card", "aws_access_key", "bearer_token", "jwt"}},
		Spec{Type: "rewrite_tag", Tag: "x.{field:host}", When: &cond.Spec{Field: "host", Exists: new(bool)}},
		Spec{Type: "throttle", Rate: 1_000_000_000},
	)
	r := c.NewRunner(nil)
	tag := []byte("docker.web")
	sel := c.Select(tag)
	rec := fromJSON(t, `{"log":"GET /x from 10.1.2.3 by bob@example.com","stream":"stdout","container_name":"web","kubernetes":{"namespace_name":"prod","labels":{"app":"web"}},"n":1}`)
	r.Run(sel, tag, rec)
	if n := testing.AllocsPerRun(500, func() { r.Run(sel, tag, rec) }); n != 0 {
		t.Fatalf("%.1f allocs per event", n)
	}
}

func BenchmarkRun(b *testing.B) {
	rec := fromJSON(b, `{"log":"2026-01-02T10:00:00Z INFO GET /api/v1/orders type=access status=200 user=bob@example.com ip=10.1.2.3 pad=`+strings.Repeat("x", 100)+`","stream":"stdout","container_id":"`+strings.Repeat("a", 64)+`","container_name":"web-1"}`)
	tag := []byte("docker.web-1")
	for name, specs := range map[string][]Spec{
		"no_match":        {{Type: "drop", Match: "other.**"}},
		"drop_when_false": {{Type: "drop", When: &cond.Spec{Field: "log", Contains: sp("/healthz")}}},
		"add":             {{Type: "add", Fields: []Field{{Key: "host", Source: "hostname"}, {Key: "env", Value: "prod"}}}},
		"rename":          {{Type: "rename", Fields: []Field{{Key: "log", To: "message"}}}},
		"remove":          {{Type: "remove", Keys: []string{"container_id"}}},
		"keep":            {{Type: "keep", Keys: []string{"log", "container_name"}}},
		"nest":            {{Type: "nest", Keys: []string{"container_id", "container_name"}, Key: "container"}},
		"rewrite_tag":     {{Type: "rewrite_tag", Tag: "app.{field:container_name}"}},
		"throttle":        {{Type: "throttle", Rate: 1_000_000_000}},
		"redact_builtins": {{Type: "redact"}},
		"redact_email":    {{Type: "redact", Patterns: []string{"email"}}},
		"redact_regex":    {{Type: "redact", Custom: []string{`user=\w+`}}},
		"five_ops":        {{Type: "add", Fields: []Field{{Key: "host", Source: "hostname"}}}, {Type: "remove", Keys: []string{"container_id"}}, {Type: "rename", Fields: []Field{{Key: "log", To: "message"}}}, {Type: "nest", Keys: []string{"host", "container_name"}, Key: "src"}, {Type: "throttle", Rate: 1_000_000_000}},
	} {
		c := chain(b, specs...)
		r := c.NewRunner(nil)
		sel := c.Select(tag)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(rec)))
			for b.Loop() {
				if len(sel) > 0 {
					r.Run(sel, tag, rec)
				}
			}
		})
	}
}

// FuzzRun passes arbitrary bytes as the record through every processor
// type: no panic, and a record that was one well-formed msgpack value
// stays one.
func FuzzRun(f *testing.F) {
	f.Add(fromJSON(f, in))
	f.Add(fromJSON(f, `{"m":{"a":1,"b":{"c":"x@y.io"}},"log":"4111 1111 1111 1111 10.0.0.1 AKIAIOSFODNN7EXAMPLE"}`))
	f.Add([]byte{0x81, 0xa1, 'm', 0x81, 0xa1, 'a', 0xc0})
	c := chain(f,
		Spec{Type: "lift", Key: "m", Prefix: "m_"},
		Spec{Type: "add", Fields: []Field{{Key: "host", Source: "hostname"}}},
		Spec{Type: "rename", Fields: []Field{{Key: "m_a", To: "a"}}},
		Spec{Type: "nest", Keys: []string{"a", "host", "log"}, Key: "n"},
		Spec{Type: "lift", Key: "n"},
		Spec{Type: "redact"},
		Spec{Type: "remove", Keys: []string{"m_b"}},
		Spec{Type: "rewrite_tag", Tag: "t.{field:a}", When: &cond.Spec{Field: "a", Exists: new(bool)}},
		Spec{Type: "keep", Keys: []string{"a", "host", "log", "n", "stream"}},
		Spec{Type: "throttle", Rate: 1_000_000_000},
	)
	r := c.NewRunner(nil)
	f.Fuzz(func(t *testing.T, rec []byte) {
		rest, ok := wire.Skip(rec)
		valid := ok && len(rest) == 0
		_, out, _ := r.Run(c.Select([]byte("x")), []byte("x"), rec)
		if valid {
			if rest, ok := wire.Skip(out); !ok || len(rest) != 0 {
				t.Fatalf("in %x out %x: not one msgpack value", rec, out)
			}
		}
	})
}

// TestParse: the parse processor parses one field (per route, with match:)
// with an internal/parse parser: its fields join the record without
// replacing a key the record has; a value it rejects stays as it is and
// the record gains parse_error: <type>; a record without the field is
// left alone.
func TestParse(t *testing.T) {
	c := chain(t, Spec{Type: "parse", Match: "web.**", Key: "message", Parser: &parse.Config{Type: "nginx"}})
	line := `10.1.2.3 - - [07/Dec/2026:01:02:03 +0000] "POST /api HTTP/2.0" 201 17 "-" "k6/0.50"`
	_, got, keep := run(t, c, "web.a", fmt.Sprintf(`{"message":%q,"code":"mine"}`, line))
	want := fmt.Sprintf(`{"message":%q,"code":"mine","remote":"10.1.2.3","time":"07/Dec/2026:01:02:03 +0000","method":"POST","path":"/api","protocol":"HTTP/2.0","size":17,"agent":"k6/0.50"}`, line)
	if !keep || got != want {
		t.Fatalf("parsed\n got %s\nwant %s", got, want)
	}
	if _, got, _ := run(t, c, "web.a", `{"message":"not an access log"}`); got != `{"message":"not an access log","parse_error":"nginx"}` {
		t.Fatalf("rejected: %s", got)
	}
	for _, in := range []string{`{"log":"x"}`, `{"message":42}`} {
		if _, got, _ := run(t, c, "web.a", in); got != in {
			t.Fatalf("%s became %s", in, got)
		}
	}
	if _, got, _ := run(t, c, "api.a", fmt.Sprintf(`{"message":%q}`, line)); got != fmt.Sprintf(`{"message":%q}`, line) {
		t.Fatalf("match ignored: %s", got)
	}
	if _, err := New([]Spec{{Type: "parse"}}, Options{}); err == nil || !strings.Contains(err.Error(), "parser: required") {
		t.Fatalf("no parser: %v", err)
	}
	if _, err := New([]Spec{{Type: "parse", Parser: &parse.Config{Type: "regex", Pattern: "(?P<a"}}}, Options{}); err == nil || !strings.Contains(err.Error(), "parser: pattern") {
		t.Fatalf("bad regex: %v", err)
	}
}

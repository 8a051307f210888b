package elasticsearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

func testSink(t testing.TB, id string, c config.ElasticsearchOutput) *sink {
	t.Helper()
	c = withDefaults(c)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := newSink(id, &c, config.Delivery{}, nil, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(seq int, tag string, r []byte) *delivery.Event {
	return &delivery.Event{
		Tag: []byte(tag), Time: evTime(seq), Record: r,
		Entry: wire.AppendEntry(nil, evTime(seq), r),
		Chunk: buffer.ID{Segment: 1, Offset: 4096}, Index: seq,
	}
}

type line struct {
	action map[string]struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	}
	doc map[string]any
}

func lines(t testing.TB, body []byte) []line {
	t.Helper()
	if len(body) == 0 || body[len(body)-1] != '\n' {
		t.Fatalf("body does not end with a newline: %q", body)
	}
	ls := bytes.Split(body[:len(body)-1], []byte("\n"))
	if len(ls)%2 != 0 {
		t.Fatalf("odd number of lines: %q", body)
	}
	var out []line
	for i := 0; i < len(ls); i += 2 {
		var l line
		if err := json.Unmarshal(ls[i], &l.action); err != nil || len(l.action) != 1 {
			t.Fatalf("action line %q: %v", ls[i], err)
		}
		if err := json.Unmarshal(ls[i+1], &l.doc); err != nil {
			t.Fatalf("document line %q: %v", ls[i+1], err)
		}
		out = append(out, l)
	}
	return out
}

// TestEncodeDocuments: action line and document per event, the index from
// the event time (UTC), @timestamp with nanoseconds, stable ids that are
// deterministic and distinct.
func TestEncodeDocuments(t *testing.T) {
	s := testSink(t, "es", esConfig("http://127.0.0.1:9200"))
	e := s.NewEncoder().(*encoder)
	for i := range 3 {
		if err := e.Add(event(i, "app.web", rec(i, "web"))); err != nil {
			t.Fatal(err)
		}
	}
	ls := lines(t, e.body)
	if len(ls) != 3 || e.Len() != 3 || e.Bytes() != len(e.body) {
		t.Fatalf("%d lines, Len %d", len(ls), e.Len())
	}
	ids := map[string]bool{}
	for i, l := range ls {
		a, ok := l.action["create"]
		if !ok || a.Index != "sluice-2024.01.02" || len(a.ID) != idLen {
			t.Fatalf("action %d: %+v", i, l.action)
		}
		ids[a.ID] = true
		if l.doc["seq"] != float64(i) || l.doc["app"] != "web" {
			t.Fatalf("doc %d: %v", i, l.doc)
		}
	}
	if len(ids) != 3 {
		t.Fatalf("ids not distinct: %v", ids)
	}
	if ts := ls[1].doc["@timestamp"]; ts != "2024-01-02T03:04:05.001000007Z" {
		t.Fatalf("@timestamp %v", ts)
	}
	// Same event, same id; another output, chunk or entry: another id.
	id0 := ls[0].action["create"].ID
	again := s.NewEncoder().(*encoder)
	again.Add(event(0, "app.web", rec(0, "web")))
	if got := lines(t, again.body)[0].action["create"].ID; got != id0 {
		t.Fatalf("id not stable: %s vs %s", got, id0)
	}
	other := testSink(t, "es2", esConfig("http://127.0.0.1:9200")).NewEncoder().(*encoder)
	other.Add(event(0, "app.web", rec(0, "web")))
	ev := event(0, "app.web", rec(0, "web"))
	ev.Chunk.Offset++
	other.Add(ev)
	ev = event(0, "app.web", rec(0, "api"))
	other.Add(ev)
	for _, l := range lines(t, other.body) {
		if l.action["create"].ID == id0 {
			t.Fatalf("id %s reused", id0)
		}
	}
	e.Reset()
	if e.Len() != 0 || e.Bytes() != 0 {
		t.Fatal("Reset left events")
	}
}

// TestIndexTemplates: {tag}, {field:KEY} (also dotted), the hour, the
// sanitising of placeholder values, "unknown" for a missing value,
// op_type index without ids, data streams.
func TestIndexTemplates(t *testing.T) {
	nested := msgp.AppendMapHeader(nil, 3)
	nested = msgp.AppendString(msgp.AppendString(nested, "log"), "x")
	nested = msgp.AppendString(nested, "kubernetes")
	nested = msgp.AppendMapHeader(nested, 1)
	nested = msgp.AppendString(msgp.AppendString(nested, "namespace"), "Kube-System")
	nested = msgp.AppendInt(msgp.AppendString(nested, "code"), 503)

	for _, tc := range []struct {
		name   string
		cfg    func(*config.ElasticsearchOutput)
		tag    string
		rec    []byte
		action string
		index  string
		noID   bool
	}{
		{"default", nil, "app.web", rec(0, "web"), "create", "sluice-2024.01.02", false},
		{"tag and field", func(c *config.ElasticsearchOutput) { c.Index = "logs-{tag}-{field:app}-%Y.%m.%d.%H" },
			"App/Web", rec(0, "Shop Front"), "create", "logs-app_web-shop_front-2024.01.02.03", false},
		{"nested, number, missing", func(c *config.ElasticsearchOutput) {
			c.Index = "k-{field:kubernetes.namespace}-{field:code}-{field:nope}"
		},
			"t", nested, "create", "k-kube-system-503-unknown", false},
		{"op_type index", func(c *config.ElasticsearchOutput) { c.OpType = "index" },
			"t", rec(0, "web"), "index", "sluice-2024.01.02", true},
		{"id_mode none", func(c *config.ElasticsearchOutput) { c.IDMode = "none"; c.Index = "fixed" },
			"t", rec(0, "web"), "create", "fixed", true},
		{"data stream", func(c *config.ElasticsearchOutput) { c.Index = ""; c.DataStream = "logs-{tag}-default" },
			"app.web", rec(0, "web"), "create", "logs-app.web-default", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := esConfig("http://127.0.0.1:9200")
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			e := testSink(t, "es", c).NewEncoder().(*encoder)
			// Twice: the second one comes from the prefix cache.
			for range 2 {
				if err := e.Add(event(0, tc.tag, tc.rec)); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range lines(t, e.body) {
				a, ok := l.action[tc.action]
				if !ok || a.Index != tc.index || (a.ID == "") != tc.noID {
					t.Fatalf("action %+v, want %s into %s (no id: %v)", l.action, tc.action, tc.index, tc.noID)
				}
			}
		})
	}
}

// TestEncodeHourChange: the cached target follows the event time.
func TestEncodeHourChange(t *testing.T) {
	c := esConfig("http://127.0.0.1:9200")
	c.Index = "h-%Y%m%d%H"
	e := testSink(t, "es", c).NewEncoder().(*encoder)
	ev := event(0, "t", rec(0, "web"))
	e.Add(ev)
	ev.Time += 3600e9
	e.Add(ev)
	ev.Time -= 2 * 86400e9
	e.Add(ev)
	var got []string
	for _, l := range lines(t, e.body) {
		got = append(got, l.action["create"].Index)
	}
	if strings.Join(got, " ") != "h-2024010203 h-2024010204 h-2023123104" {
		t.Fatalf("indices %v", got)
	}
}

// TestEncodeLimits: ErrFull at max_bulk_events and before max_bulk_bytes;
// an event alone over max_bulk_bytes is rejected too_large; an
// undecodable record is rejected alone.
func TestEncodeLimits(t *testing.T) {
	c := esConfig("http://127.0.0.1:9200")
	c.MaxBulkEvents = 3
	e := testSink(t, "es", c).NewEncoder().(*encoder)
	for i := range 3 {
		if err := e.Add(event(i, "t", rec(i, "web"))); err != nil {
			t.Fatal(err)
		}
	}
	if !e.Full() {
		t.Fatal("not full at max_bulk_events")
	}

	c = esConfig("http://127.0.0.1:9200")
	c.MaxBulkBytes = 2048
	e = testSink(t, "es", c).NewEncoder().(*encoder)
	n := 0
	for {
		err := e.Add(event(n, "t", rec(n, "web")))
		if errors.Is(err, delivery.ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 || len(e.body) > 2048 || e.Len() != n || len(lines(t, e.body)) != n {
		t.Fatalf("%d events in %d bytes", n, len(e.body))
	}

	e.Reset()
	big := msgp.AppendMapHeader(nil, 1)
	big = msgp.AppendString(msgp.AppendString(big, "log"), strings.Repeat("y", 3000))
	var rej *delivery.RejectError
	if err := e.Add(event(0, "t", big)); !errors.As(err, &rej) || rej.Reason != "too_large" {
		t.Fatalf("big event: %v", err)
	}
	if err := e.Add(event(0, "t", []byte{0x93, 1, 2, 3})); !errors.As(err, &rej) || rej.Reason != "undecodable" {
		t.Fatalf("undecodable event: %v", err)
	}
	if e.Len() != 0 || len(e.body) != 0 {
		t.Fatalf("rejected events left bytes: %q", e.body)
	}
}

// TestEncodeAllocs: no allocation per event after warm-up.
func TestEncodeAllocs(t *testing.T) {
	for _, idx := range []string{"sluice-%Y.%m.%d", "logs-{tag}-{field:app}"} {
		c := esConfig("http://127.0.0.1:9200")
		c.Index = idx
		e := testSink(t, "es", c).NewEncoder().(*encoder)
		evs := make([]*delivery.Event, 100)
		for i := range evs {
			evs[i] = event(i, "app.web", rec(i, "web"))
		}
		add := func() {
			e.Reset()
			for _, ev := range evs {
				if err := e.Add(ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		add()
		if a := testing.AllocsPerRun(20, add); a != 0 {
			t.Errorf("%s: %.1f allocs per 100 events", idx, a)
		}
	}
}

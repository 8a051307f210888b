package docker

import (
	"reflect"
	"testing"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// TestParserNginx: with parser nginx the access log's fields join the
// record, the event time is the line's [time_local], the tag can use a
// parsed field, and a line the parser rejects keeps its raw log with
// parse_error: nginx and is counted, never dropped.
func TestParserNginx(t *testing.T) {
	h := newHarness(t)
	path := h.container(idA, "/web", nil)
	access := `203.0.113.7 - alice [07/Dec/2026:01:02:03 +0100] "GET /cart?id=1 HTTP/1.1" 404 153 "-" "curl/8.5.0"`
	tailtest.AppendFile(t, path, jl(access+"\n", "stdout")+jl("nginx: worker process started\n", "stderr"))
	cfg := testCfg(h.root)
	cfg.Parser = &config.Parser{Type: "nginx"}
	no := false
	cfg.IncludeLabels = &no
	cfg.Tag = "web.{field:code}"
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want0 := map[string]any{
		"log": access, "stream": "stdout", "container_id": idA, "container_name": "web",
		"remote": "203.0.113.7", "user": "alice", "method": "GET", "path": "/cart?id=1", "protocol": "HTTP/1.1",
		"code": int64(404), "size": int64(153), "agent": "curl/8.5.0",
	}
	if !reflect.DeepEqual(evs[0].Record, want0) {
		t.Fatalf("record\n got %v\nwant %v", evs[0].Record, want0)
	}
	if evs[0].Tag != "web.404" || evs[0].Time != mustTime(t, "2026-12-07T00:02:03Z") {
		t.Fatalf("tag %s time %v", evs[0].Tag, evs[0].Time)
	}
	want1 := map[string]any{
		"log": "nginx: worker process started", "stream": "stderr", "container_id": idA, "container_name": "web",
		"parse_error": "nginx",
	}
	if !reflect.DeepEqual(evs[1].Record, want1) || evs[1].Tag != "web.unknown" {
		t.Fatalf("rejected line: %s %v", evs[1].Tag, evs[1].Record)
	}
	if n := h.set.GetOrCreateCounter(`sluice_input_payload_parse_failures_total{input="dk",parser="nginx"}`).Get(); n != 1 {
		t.Fatalf("parse failures counted %d, want 1", n)
	}
}

// TestTagLabelBeforeField is issue 12.7's safe form of routing by log type:
// the tag takes the operator's container label, and the payload's field
// (which any process in any container can write) only for a container
// without the label. A container labelled "app" cannot claim "audit".
func TestTagLabelBeforeField(t *testing.T) {
	h := newHarness(t)
	labelled := h.container(idA, "/shop", map[string]string{"logging.sluice.dev/type": "app"})
	plain := h.container(idB, "/legacy", nil)
	tailtest.AppendFile(t, labelled, jl(`{"log_type":"audit","msg":"forged"}`+"\n", "stdout"))
	tailtest.AppendFile(t, plain, jl(`{"log_type":"audit","msg":"legacy audit"}`+"\n", "stdout"))
	cfg := testCfg(h.root)
	cfg.ParseJSON = true
	cfg.Tag = "{label:logging.sluice.dev/type|field:log_type}.{name}"
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for _, e := range evs {
		tags[e.Tag] = true
	}
	if !tags["app.shop"] || !tags["audit.legacy"] || len(tags) != 2 {
		t.Fatalf("tags %v, want app.shop (the label wins over the forged field) and audit.legacy (the field as fallback)", tags)
	}
}

package cri

import (
	"reflect"
	"testing"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// TestParserKlog: a klog payload's header becomes fields and the event
// time (in time_zone, the year from the clock), the parsed fields do not
// overwrite the record's own keys, and a line klog rejects keeps its raw
// log with parse_error: klog, counted.
func TestParserKlog(t *testing.T) {
	h := newHarness(t)
	path := h.container("ns", "pod", uidA, "ctl")
	line := `I1207 01:52:16.123456    1234 controller.go:42] "Reconciled" obj="default/web"`
	tailtest.AppendFile(t, path, cl(line+"\n", "stderr")+cl("plain text\n", "stdout"))
	cfg := testCfg(h.root)
	cfg.Parser = &config.Parser{Type: "klog", TimeZone: "UTC"}
	cfg.Tag = "{field:severity}.{container}"
	must(t, pump(t, h.input(cfg)))
	evs := h.q.All()
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	rec := evs[0].Record
	if rec["log"] != line || rec["severity"] != "I" || rec["source"] != "controller.go:42" || rec["pid"] != int64(1234) ||
		!reflect.DeepEqual(rec["kubernetes"], k8s("ns", "pod", uidA, "ctl")) {
		t.Fatalf("record %+v", rec)
	}
	if evs[0].Tag != "I.ctl" {
		t.Fatalf("tag %s", evs[0].Tag)
	}
	if tm := evs[0].Time; tm == mustTime(t, t0) {
		t.Fatalf("event time is the CRI time, not the klog header's")
	}
	if r := evs[1].Record; r["parse_error"] != "klog" || r["log"] != "plain text" || evs[1].Tag != "unknown.ctl" {
		t.Fatalf("rejected line %s %+v", evs[1].Tag, r)
	}
	if n := h.set.GetOrCreateCounter(`sluice_input_payload_parse_failures_total{input="cri",parser="klog"}`).Get(); n != 1 {
		t.Fatalf("failures counted %d", n)
	}
}

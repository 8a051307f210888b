package cri

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

const uidA = "0b5c8e2a-1111-2222-3333-444455556666"

func k8s(ns, pod, uid, container string) map[string]any {
	return map[string]any{"namespace_name": ns, "pod_name": pod, "pod_id": uid, "container_name": container}
}

// TestRecordLayoutAndTag: the record is the docker input's {log, stream}
// plus Fluent Bit's kubernetes map, the time is the line's (in UTC), and
// every placeholder renders from the path.
func TestRecordLayoutAndTag(t *testing.T) {
	h := newHarness(t)
	path := h.container("shop", "web-7d9f8b6c5-x2x4z", uidA, "nginx")
	tailtest.AppendFile(t, path,
		"2024-01-02T03:04:05.123456789Z stdout F hello <world>\n"+
			"2024-01-02T12:04:06.5+09:00 stderr F oops\n")
	cfg := testCfg(h.root)
	cfg.Tag = "k.{namespace}.{pod}.{container}.{stream}.{pod_id}"
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(2)
	must(t, stop())
	kube := k8s("shop", "web-7d9f8b6c5-x2x4z", uidA, "nginx")
	want := []tailtest.Event{
		{Tag: "k.shop.web-7d9f8b6c5-x2x4z.nginx.stdout." + uidA, Time: mustTime(t, "2024-01-02T03:04:05.123456789Z"),
			Record: map[string]any{"log": "hello <world>", "stream": "stdout", "kubernetes": kube}},
		{Tag: "k.shop.web-7d9f8b6c5-x2x4z.nginx.stderr." + uidA, Time: mustTime(t, "2024-01-02T03:04:06.5Z"),
			Record: map[string]any{"log": "oops", "stream": "stderr", "kubernetes": kube}},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("got  %+v\nwant %+v", evs, want)
	}
	if n := h.counter("sluice_input_lines_total"); n != 2 {
		t.Fatalf("lines_total %d", n)
	}
}

func TestDefaultTag(t *testing.T) {
	h := newHarness(t)
	tailtest.AppendFile(t, h.container("shop", "web", uidA, "nginx"), cl("x\n", "stdout"))
	must(t, pump(t, h.input(testCfg(h.root))))
	if evs := h.q.All(); len(evs) != 1 || evs[0].Tag != "kube.shop.web.nginx" {
		t.Fatalf("events %+v", evs)
	}
}

// TestPartialJoin: P pieces are joined per stream up to their F, with the
// first piece's time, while the other stream's lines interleave; a joined
// line over max_line_bytes is cut and counted; a dangling P is emitted
// after partial_flush_timeout.
func TestPartialJoin(t *testing.T) {
	h := newHarness(t)
	path := h.container("ns", "pod", uidA, "app")
	big := strings.Repeat("b", 16384)
	data := "2024-01-02T03:04:05.1Z stdout P first-\n" +
		"2024-01-02T03:04:05.2Z stderr P err-a \n" +
		"2024-01-02T03:04:05.3Z stdout F second\n" +
		"2024-01-02T03:04:05.4Z stderr F err-b\n" +
		"2024-01-02T03:04:06Z stdout P " + big + "\n" +
		"2024-01-02T03:04:06Z stdout P " + big + "\n" +
		"2024-01-02T03:04:06Z stdout F end\n" +
		"2024-01-02T03:04:07Z stdout P " + big + "\n" + // over max: cut
		"2024-01-02T03:04:07Z stdout P " + big + "\n" +
		"2024-01-02T03:04:07Z stdout F tail\n" +
		"2024-01-02T03:04:08Z stderr F \n" + // an empty line
		"2024-01-02T03:04:09Z stderr P dangling\n"
	tailtest.AppendFile(t, path, data)
	cfg := testCfg(h.root)
	cfg.MaxLineBytes = 20000
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(6)
	must(t, stop())
	type got struct{ log, stream, time string }
	want := []got{
		{"first-second", "stdout", "2024-01-02T03:04:05.1Z"},
		{"err-a err-b", "stderr", "2024-01-02T03:04:05.2Z"},
		{big + big + "end", "stdout", "2024-01-02T03:04:06Z"},
		{(big + big)[:20000], "stdout", "2024-01-02T03:04:07Z"},
		{"", "stderr", "2024-01-02T03:04:08Z"},
		{"dangling", "stderr", "2024-01-02T03:04:09Z"},
	}
	// cfg.MaxLineBytes 20000 < 2 x 16384 + 3: the third is cut as well.
	want[2].log = want[2].log[:20000]
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, w := range want {
		e := evs[i]
		if e.Log() != w.log || e.Record["stream"] != w.stream || e.Time != mustTime(t, w.time) {
			t.Errorf("event %d: log %q stream %v time %d, want %+v", i, tailtest.ClipS(e.Log()), e.Record["stream"], e.Time, tailtest.ClipS(w.log))
		}
	}
	if n := h.counter("sluice_input_truncated_lines_total"); n != 2 {
		t.Errorf("truncated %d, want 2", n)
	}
	if n := h.counter("sluice_input_partial_joins_total"); n != 4 {
		t.Errorf("joins %d, want 4", n)
	}
}

// TestJoinedLineHoldsOffset: while a P group waits for its F, the
// committed offset stays at the group's start.
func TestJoinedLineHoldsOffset(t *testing.T) {
	h := newHarness(t)
	path := h.container("ns", "pod", uidA, "app")
	first := cl("done\n", "stdout")
	tailtest.AppendFile(t, path, first+cl("piece-1 ", "stdout")+cl("piece-2 ", "stdout"))
	in := h.input(testCfg(h.root))
	must(t, pump(t, in))
	must(t, in.t.Checkpoint())
	if off, _ := h.offsetOf(path); off != int64(len(first)) {
		t.Fatalf("offset %d, want %d (the start of the pending group)", off, len(first))
	}
	tailtest.AppendFile(t, path, cl("end\n", "stdout"))
	must(t, pump(t, in))
	must(t, in.t.Checkpoint())
	tailtest.EqualStrings(t, h.q.Logs(), []string{"done", "piece-1 piece-2 end"})
	st, _ := os.Stat(path)
	if off, _ := h.offsetOf(path); off != st.Size() {
		t.Fatalf("offset %d, want %d", off, st.Size())
	}
}

func TestMalformedLinesEmittedRaw(t *testing.T) {
	h := newHarness(t)
	path := h.container("ns", "pod", uidA, "app")
	bad := []string{"garbage", "2024-01-02T03:04:05Z stdin F x", "2024-99-02T03:04:05Z stdout F x", `{"log":"json-file\n","stream":"stdout"}`}
	tailtest.AppendFile(t, path, cl("ok1\n", "stdout")+bad[0]+"\n"+bad[1]+"\n\n"+cl("ok2\n", "stdout")+bad[2]+"\n"+bad[3]+"\n"+cl("ok3\n", "stdout"))
	in := h.input(testCfg(h.root))
	must(t, pump(t, in))
	tailtest.EqualStrings(t, h.q.Logs(), []string{"ok1", bad[0], bad[1], "ok2", bad[2], bad[3], "ok3"})
	evs := h.q.All()
	if evs[1].Record["stream"] != "" || evs[1].Time == 0 || evs[1].Tag != "kube.ns.pod.app" {
		t.Fatalf("malformed record %+v", evs[1])
	}
	if n := h.counter("sluice_input_parse_errors_total"); n != 4 {
		t.Fatalf("parse errors %d", n)
	}
}

// TestLongPhysicalLine: one 3 MiB physical line (longer than the read
// buffer; CRI-O or containerd with splitting off) keeps its header and
// max_line_bytes of content.
func TestLongPhysicalLine(t *testing.T) {
	h := newHarness(t)
	path := h.container("ns", "pod", uidA, "app")
	body := strings.Repeat("0123456789é", 3<<20/12)
	tailtest.AppendFile(t, path, cl("before\n", "stdout")+"2024-05-06T07:08:09Z stderr F "+body+"\n"+cl("after\n", "stdout"))
	cfg := testCfg(h.root)
	cfg.MaxLineBytes = 1 << 20
	must(t, pump(t, h.input(cfg)))
	evs := h.q.All()
	if len(evs) != 3 || evs[0].Log() != "before" || evs[2].Log() != "after" {
		t.Fatalf("%d events", len(evs))
	}
	long := evs[1]
	if len(long.Log()) > 1<<20 || len(long.Log()) < 1<<20-3 || !strings.HasPrefix(body, long.Log()) ||
		long.Record["stream"] != "stderr" || long.Time != mustTime(t, "2024-05-06T07:08:09Z") {
		t.Fatalf("long line: %d bytes, stream %v, time %d", len(long.Log()), long.Record["stream"], long.Time)
	}
	if h.counter("sluice_input_truncated_lines_total") != 1 || h.counter("sluice_input_parse_errors_total") != 0 {
		t.Fatal("counters")
	}
}

// TestParseJSONAndFieldTag: parse_json merges a JSON payload's fields
// (not over log, stream, kubernetes); {field:KEY} works with or without it.
func TestParseJSONAndFieldTag(t *testing.T) {
	for _, parseJSON := range []bool{true, false} {
		h := newHarness(t)
		path := h.container("ns", "pod", uidA, "app")
		tailtest.AppendFile(t, path, cl(`{"level":"warn","n":3,"log":"inner","kubernetes":"x"}`+"\n", "stdout")+cl("plain\n", "stdout"))
		cfg := testCfg(h.root)
		cfg.ParseJSON = parseJSON
		cfg.Tag = "{field:level}.{namespace}"
		must(t, pump(t, h.input(cfg)))
		evs := h.q.All()
		if len(evs) != 2 || evs[0].Tag != "warn.ns" || evs[1].Tag != "unknown.ns" {
			t.Fatalf("parse_json %v: %+v", parseJSON, evs)
		}
		rec := evs[0].Record
		if rec["log"] != `{"level":"warn","n":3,"log":"inner","kubernetes":"x"}` || !reflect.DeepEqual(rec["kubernetes"], k8s("ns", "pod", uidA, "app")) {
			t.Fatalf("record %+v", rec)
		}
		if parseJSON && (rec["level"] != "warn" || rec["n"] != int64(3)) {
			t.Fatalf("fields not merged: %+v", rec)
		}
		if !parseJSON && len(rec) != 3 {
			t.Fatalf("fields merged without parse_json: %+v", rec)
		}
	}
}

// TestNamespaceFilterAndNewPods: pods of new namespaces and containers are
// followed while running; excluded namespaces are never read.
func TestNamespaceFilterAndNewPods(t *testing.T) {
	h := newHarness(t)
	tailtest.AppendFile(t, h.container("shop", "web", uidA, "nginx"), cl("a0\n", "stdout"))
	tailtest.AppendFile(t, h.container("kube-system", "coredns", "u2", "coredns"), cl("skip\n", "stdout"))
	cfg := testCfg(h.root)
	cfg.ExcludeNamespaces = []string{"kube-*"}
	stop := tailtest.Start(t, h.input(cfg))
	h.waitEvents(1)
	tailtest.AppendFile(t, h.container("shop", "web", uidA, "sidecar"), cl("s0\n", "stdout"))
	tailtest.AppendFile(t, h.container("kube-public", "x", "u3", "c"), cl("skip\n", "stdout"))
	tailtest.AppendFile(t, h.container("billing", "api", "u4", "api"), cl("b0\n", "stderr"))
	h.waitEvents(3)
	time.Sleep(100 * time.Millisecond)
	must(t, stop())
	byTag := h.q.LogsBy(func(e tailtest.Event) string { return e.Tag })
	want := map[string][]string{"kube.shop.web.nginx": {"a0"}, "kube.shop.web.sidecar": {"s0"}, "kube.billing.api.api": {"b0"}}
	if !reflect.DeepEqual(byTag, want) {
		t.Fatalf("got %v", byTag)
	}
}

func TestNewErrors(t *testing.T) {
	h := newHarness(t)
	r := tailtest.NewRouter(t, h.q)
	for name, cfg := range map[string]config.CRIInput{
		"unknown placeholder": {Tag: "kube.{name}"},
		"label":               {Tag: "kube.{label:app}"},
		"tag":                 {Tag: "{tag}"},
	} {
		if _, err := New("cri", cfg, h.dataDir, r, nil, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New("", config.CRIInput{}, h.dataDir, r, nil, nil); err == nil {
		t.Error("empty id accepted")
	}
	in, err := New("cri", config.CRIInput{Root: filepath.Join(h.root, "missing")}, h.dataDir, r, nil, nil)
	if err != nil || in == nil {
		t.Fatalf("defaults: %v", err)
	}
}

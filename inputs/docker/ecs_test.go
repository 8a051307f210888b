package docker

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
)

// ecsConfigV2 is a config.v2.json as Docker writes it for a container the
// ECS agent started (trimmed of fields the input does not read; the labels
// are those the agent sets, formats.md §3.1).
const ecsConfigV2 = `{"StreamConfig":{},"State":{"Running":true,"Pid":4242,"StartedAt":"2024-01-02T03:04:00.1Z"},
"ID":"%ID%","Created":"2024-01-02T03:03:59.9Z","Path":"nginx","Args":["-g","daemon off;"],
"Config":{"Hostname":"ip-10-0-1-23","Env":["PATH=/usr/sbin:/usr/bin"],"Image":"nginx:1.27",
 "Labels":{"com.amazonaws.ecs.cluster":"prod-cluster",
  "com.amazonaws.ecs.container-name":"nginx",
  "com.amazonaws.ecs.task-arn":"arn:aws:ecs:eu-west-1:123456789012:task/prod-cluster/0f9e8d7c6b5a49384756abcdef012345",
  "com.amazonaws.ecs.task-definition-family":"web",
  "com.amazonaws.ecs.task-definition-version":"3",
  "maintainer":"NGINX Docker Maintainers"}},
"Image":"sha256:5163d1e1e8c2","Name":"/ecs-web-3-nginx-e8a2b1c3d4e5f6a7b801","RestartCount":0,
"Driver":"overlay2","HostnamePath":"/var/lib/docker/containers/%ID%/hostname",
"LogPath":"/var/lib/docker/containers/%ID%/%ID%-json.log"}`

// TestECSLabels: the ECS agent's com.amazonaws.ecs.* labels become the
// record's "ecs" map (no API call), with or without include_labels; tags
// read them as labels; a payload field "ecs" does not overwrite it; a
// container without them has no "ecs".
func TestECSLabels(t *testing.T) {
	h := newHarness(t)
	dir := filepath.Join(h.root, idA)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.v2.json"), []byte(strings.ReplaceAll(ecsConfigV2, "%ID%", idA)), 0o600); err != nil {
		t.Fatal(err)
	}
	tailtest.AppendFile(t, filepath.Join(dir, idA+"-json.log"), jl(`{"msg":"GET /","ecs":"payload"}`+"\n", "stdout"))
	plain := h.container(idB, "/plain", map[string]string{"app": "x"})
	tailtest.AppendFile(t, plain, jl("plain\n", "stdout"))

	cfg := testCfg(h.root)
	cfg.ParseJSON = true
	cfg.Tag = "ecs.{label:com.amazonaws.ecs.task-definition-family}.{label:com.amazonaws.ecs.task-definition-version}.{label:com.amazonaws.ecs.container-name}"
	no := false
	cfg.IncludeLabels = &no
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byID := map[string]tailtest.Event{}
	for _, e := range evs {
		byID[e.Record["container_id"].(string)] = e
	}
	e := byID[idA]
	want := map[string]any{
		"cluster":        "prod-cluster",
		"task_arn":       "arn:aws:ecs:eu-west-1:123456789012:task/prod-cluster/0f9e8d7c6b5a49384756abcdef012345",
		"task_family":    "web",
		"task_revision":  "3",
		"container_name": "nginx",
	}
	if got := e.Record["ecs"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("ecs %v, want %v", got, want)
	}
	if e.Tag != "ecs.web.3.nginx" || e.Record["container_name"] != "ecs-web-3-nginx-e8a2b1c3d4e5f6a7b801" || e.Record["labels"] != nil {
		t.Fatalf("tag %q, record %v", e.Tag, e.Record)
	}
	if e.Record["msg"] != "GET /" {
		t.Fatalf("payload fields not merged: %v", e.Record)
	}
	if p := byID[idB]; p.Record["ecs"] != nil || p.Tag != "ecs.unknown.unknown.unknown" {
		t.Fatalf("plain container: tag %q, record %v", p.Tag, p.Record)
	}
}

// TestECSPartialLabels: only the labels present are in "ecs".
func TestECSPartialLabels(t *testing.T) {
	c := newContainer(&Input{labels: true}, idA, "/r/"+idA)
	c.labels = []string{"com.amazonaws.ecs.cluster", "c1", "com.amazonaws.ecs.task-definition-version", "7", "z", "1"}
	c.build(true)
	if c.nFixed != 4 { // container_id, container_name, labels, ecs
		t.Fatalf("nFixed %d", c.nFixed)
	}
	var js bytes.Buffer
	if _, err := msgp.UnmarshalAsJSON(&js, append(msgp.AppendMapHeader(nil, uint32(c.nFixed)), c.fixed...)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"ecs":{"cluster":"c1","task_revision":"7"}`) {
		t.Fatalf("fixed fields %s", js.String())
	}
	c.labels = []string{"app", "x"}
	c.build(true)
	if c.nFixed != 3 {
		t.Fatalf("without ECS labels nFixed %d", c.nFixed)
	}
}

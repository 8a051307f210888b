package cri

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/cri/crigen"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
	"github.com/sluice-agent/sluice/internal/kube/kubetest"
)

// standIn starts the API stand-in for one test.
func standIn(t testing.TB) *kubetest.Server {
	t.Helper()
	s, err := kubetest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// kubeCfg is testCfg with the kubernetes section pointed at the stand-in
// (node node-a, fast retries are the kube package's defaults scaled by
// the stand-in's speed).
func kubeCfg(root string, s *kubetest.Server, wait time.Duration) config.CRIInput {
	cfg := testCfg(root)
	k := config.DefaultCRIKubernetes()
	k.APIServer, k.NodeName, k.MetadataWait = s.URL(), "node-a", wait
	k.TokenFile = "/dev/null"
	cfg.Kubernetes = &k
	return cfg
}

// kpod is a pod of node-a in the stand-in, matching a crigen container.
func kpod(c *crigen.Container, labels, annotations map[string]string) kubetest.Pod {
	return kubetest.Pod{
		Namespace: c.Namespace(), Name: c.Pod(), UID: c.UID(), Node: "node-a", IP: "10.1.2.3",
		Labels: labels, Annotations: annotations,
		Owner:      &kubetest.Owner{Kind: "ReplicaSet", Name: "web-7d9f8b6c5", UID: "rs-uid"},
		Containers: []kubetest.Container{{Name: c.Name(), Image: "nginx:1.27", ImageID: "docker.io/library/nginx@sha256:feed"}},
	}
}

func newGen(t testing.TB, root, ns, pod, name string) *crigen.Container {
	t.Helper()
	c, err := crigen.New(root, crigen.Options{Namespace: ns, Pod: pod, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func write(t testing.TB, c *crigen.Container, n int) {
	t.Helper()
	if err := c.Write(n); err != nil {
		t.Fatal(err)
	}
}

// seqOf is the crigen sequence number of an event's payload.
func seqOf(t testing.TB, e tailtest.Event) (src string, seq int64) {
	t.Helper()
	var p struct {
		Src string `json:"src"`
		Seq int64  `json:"seq"`
	}
	if err := json.Unmarshal([]byte(e.Log()), &p); err != nil {
		t.Fatalf("payload %q: %v", tailtest.ClipS(e.Log()), err)
	}
	return p.Src, p.Seq
}

func kubeMap(e tailtest.Event) map[string]any {
	m, _ := e.Record["kubernetes"].(map[string]any)
	return m
}

// TestKubeMetadata: with the kubernetes section, records carry Fluent
// Bit's kubernetes map filled from the API (labels, annotations, host,
// pod_ip, container_image, container_hash) plus owner (the Deployment, by
// the ReplicaSet's name) and kubernetes_namespace.labels; the tag renders
// {label:KEY} and {annotation:KEY}; ownerReferences only when asked for.
func TestKubeMetadata(t *testing.T) {
	s := standIn(t)
	h := newHarness(t)
	g := newGen(t, h.root, "shop", "web-7d9f8b6c5-x2x4z", "nginx")
	s.AddNamespace(kubetest.Namespace{Name: "shop", Labels: map[string]string{"team": "payments"}})
	s.AddPod(kpod(g, map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5"},
		map[string]string{"logging.sluice.dev/type": "access"}))
	write(t, g, 3)
	cfg := kubeCfg(h.root, s, 10*time.Second)
	cfg.Tag = "kube.{annotation:logging.sluice.dev/type}.{label:app}.{namespace}.{label:none}"
	cfg.Kubernetes.OwnerReferences = true
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(3)
	must(t, stop())
	want := map[string]any{
		"namespace_name": "shop", "pod_name": "web-7d9f8b6c5-x2x4z", "pod_id": g.UID(), "container_name": "nginx",
		"host": "node-a", "pod_ip": "10.1.2.3", "container_image": "nginx:1.27",
		"container_hash": "docker.io/library/nginx@sha256:feed",
		"labels":         map[string]any{"app": "web", "pod-template-hash": "7d9f8b6c5"},
		"annotations":    map[string]any{"logging.sluice.dev/type": "access"},
		"owner":          map[string]any{"kind": "Deployment", "name": "web"},
		"ownerReferences": []any{map[string]any{
			"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5", "uid": "rs-uid", "controller": true,
		}},
	}
	for i, e := range evs {
		if got := kubeMap(e); !reflect.DeepEqual(got, want) {
			t.Fatalf("event %d kubernetes\n got %v\nwant %v", i, got, want)
		}
		if ns := e.Record["kubernetes_namespace"]; !reflect.DeepEqual(ns, map[string]any{
			"labels": map[string]any{"team": "payments", "kubernetes.io/metadata.name": "shop"}}) {
			t.Fatalf("kubernetes_namespace %v", ns)
		}
		if e.Tag != "kube.access.web.shop.unknown" {
			t.Fatalf("tag %q", e.Tag)
		}
		if _, seq := seqOf(t, e); seq != int64(i) {
			t.Fatalf("event %d has seq %d", i, seq)
		}
	}

	// Labels, annotations and namespace labels can be left out.
	h2 := newHarness(t)
	g2 := newGen(t, h2.root, "shop", "web-7d9f8b6c5-x2x4z", "nginx")
	write(t, g2, 1)
	cfg = kubeCfg(h2.root, s, 10*time.Second)
	f := false
	cfg.Kubernetes.IncludeLabels, cfg.Kubernetes.IncludeAnnotations, cfg.Kubernetes.NamespaceLabels = &f, &f, &f
	stop = tailtest.Start(t, h2.input(cfg))
	evs = h2.waitEvents(1)
	must(t, stop())
	k := kubeMap(evs[0])
	if _, ok := k["labels"]; ok || k["annotations"] != nil || k["ownerReferences"] != nil || evs[0].Record["kubernetes_namespace"] != nil {
		t.Fatalf("left-out fields present: %v", evs[0].Record)
	}
	if k["owner"] == nil || k["container_image"] != "nginx:1.27" {
		t.Fatalf("kubernetes %v", k)
	}
}

// TestKubeExcludeAnnotation: a pod annotated sluice.dev/exclude: "true" is
// not read; sluice.dev/exclude-<container> leaves out one container.
func TestKubeExcludeAnnotation(t *testing.T) {
	s := standIn(t)
	h := newHarness(t)
	quiet := newGen(t, h.root, "shop", "quiet", "app")
	app := newGen(t, h.root, "shop", "web", "app")
	side := newGen(t, h.root, "shop", "web", "sidecar")
	s.AddPod(kpod(quiet, nil, map[string]string{"sluice.dev/exclude": "true"}))
	wp := kpod(app, nil, map[string]string{"sluice.dev/exclude-sidecar": "true", "sluice.dev/exclude": "false"})
	wp.Containers = append(wp.Containers, kubetest.Container{Name: "sidecar", Image: "envoy"})
	s.AddPod(wp)
	for _, c := range []*crigen.Container{quiet, app, side} {
		write(t, c, 5)
	}
	stop := tailtest.Start(t, h.input(kubeCfg(h.root, s, 10*time.Second)))
	h.waitEvents(5)
	time.Sleep(300 * time.Millisecond) // several polls: nothing else comes
	must(t, stop())
	for _, e := range h.q.All() {
		if src, _ := seqOf(t, e); src != app.Src() {
			t.Fatalf("event of an excluded source %s", src)
		}
	}
	if n := len(h.q.All()); n != 5 {
		t.Fatalf("%d events, want 5", n)
	}
}

// TestKubeUnreachable: the API is down at start: after metadata_wait the
// lines flow with the path's metadata (and host); once it is up, later
// lines are enriched; down again, lines keep flowing with the last
// metadata known; a label changed meanwhile shows once it is back. Every
// line arrives exactly once, in order.
func TestKubeUnreachable(t *testing.T) {
	s := standIn(t)
	h := newHarness(t)
	g := newGen(t, h.root, "shop", "web", "app")
	s.AddPod(kpod(g, map[string]string{"app": "web", "v": "1"}, nil))
	s.Stop()
	write(t, g, 10)
	cfg := kubeCfg(h.root, s, 200*time.Millisecond)
	cfg.Tag = "kube.{label:v}"
	t0 := time.Now()
	stop := tailtest.Start(t, h.input(cfg))
	evs := h.waitEvents(10)
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("first lines after %v with the API down", d)
	}
	for _, e := range evs {
		k := kubeMap(e)
		if k["labels"] != nil || k["host"] != "node-a" || k["pod_name"] != "web" || e.Tag != "kube.unknown" {
			t.Fatalf("unenriched event %v tag %s", k, e.Tag)
		}
	}

	must(t, s.Start())
	// Write until a line comes out enriched (the client retries with
	// back-off; nothing is held meanwhile).
	tailtest.WaitFor(t, "enriched lines", func() bool {
		write(t, g, 1)
		time.Sleep(20 * time.Millisecond)
		all := h.q.All()
		return kubeMap(all[len(all)-1])["labels"] != nil
	})
	s.Stop()
	pod := kpod(g, map[string]string{"app": "web", "v": "2"}, nil)
	s.AddPod(pod)
	write(t, g, 10)
	n := int(g.Seq())
	evs = h.waitEvents(n)
	if last := evs[len(evs)-1]; last.Tag != "kube.1" || kubeMap(last)["labels"] == nil {
		t.Fatalf("with the API down again: tag %s, kubernetes %v", last.Tag, kubeMap(last))
	}
	must(t, s.Start())
	tailtest.WaitFor(t, "new label", func() bool {
		write(t, g, 1)
		time.Sleep(20 * time.Millisecond)
		all := h.q.All()
		return all[len(all)-1].Tag == "kube.2"
	})
	n = int(g.Seq())
	evs = h.waitEvents(n)
	must(t, stop())
	if len(evs) != n {
		t.Fatalf("%d events for %d lines", len(evs), n)
	}
	for i, e := range evs {
		if _, seq := seqOf(t, e); seq != int64(i) {
			t.Fatalf("event %d has seq %d: lost or duplicated lines", i, seq)
		}
	}
}

// TestKubeLatePod: a pod whose logs appear before the API knows it waits
// for its metadata (at most metadata_wait), so its first lines are
// enriched; the other pods are read meanwhile. The API is asked once (a
// list and a watch per resource), never per file or per line.
func TestKubeLatePod(t *testing.T) {
	s := standIn(t)
	h := newHarness(t)
	early := newGen(t, h.root, "shop", "early", "app")
	s.AddPod(kpod(early, map[string]string{"app": "early"}, nil))
	write(t, early, 1)
	stop := tailtest.Start(t, h.input(kubeCfg(h.root, s, 5*time.Second)))
	h.waitEvents(1)
	late := newGen(t, h.root, "shop", "late", "app")
	write(t, late, 3)
	time.Sleep(300 * time.Millisecond) // its lines wait...
	write(t, early, 2)                 // ...the other pod's do not
	evs := h.waitEvents(3)
	time.Sleep(100 * time.Millisecond)
	if n := len(h.q.All()); n != 3 {
		t.Fatalf("%d events before the late pod is known, want the early pod's 3", n)
	}
	for _, e := range evs {
		if src, _ := seqOf(t, e); src != early.Src() {
			t.Fatalf("a line of %s was read before its pod was known", src)
		}
	}
	known := time.Now()
	s.AddPod(kpod(late, map[string]string{"app": "late"}, nil))
	evs = h.waitEvents(6)
	if d := time.Since(known); d > 2*time.Second {
		t.Errorf("late pod read %v after the API knew it", d)
	}
	for _, e := range evs[3:] {
		l, _ := kubeMap(e)["labels"].(map[string]any)
		if src, _ := seqOf(t, e); src != late.Src() || l["app"] != "late" {
			t.Fatalf("late pod line %s not enriched: %v", src, kubeMap(e))
		}
	}
	// Many more lines and files: still no request per file or line.
	for i := range 5 {
		p := newGen(t, h.root, "shop", fmt.Sprintf("more-%d", i), "app")
		s.AddPod(kpod(p, nil, nil))
		write(t, p, 50)
	}
	write(t, late, 200)
	h.waitEvents(6 + 200 + 250)
	must(t, stop())
	for _, r := range s.Requests() {
		if !strings.HasPrefix(r, "GET /api/v1/pods?") && !strings.HasPrefix(r, "GET /api/v1/namespaces?") {
			t.Errorf("request %s", r)
		}
	}
	if n := len(s.Requests()); n > 4 {
		t.Errorf("%d requests, want a list and a watch per resource: %v", n, s.Requests())
	}
}

// TestKubeUnknownPodWait: a pod the API never lists (a static pod, or the
// API lagging) waits metadata_wait, not longer, then its lines are read
// with the path's metadata; a pod that turns out excluded by its
// annotation once known is never read.
func TestKubeUnknownPodWait(t *testing.T) {
	s := standIn(t)
	h := newHarness(t)
	stop := tailtest.Start(t, h.input(kubeCfg(h.root, s, 700*time.Millisecond)))
	time.Sleep(200 * time.Millisecond) // listed: the cache is synced and knows none
	ghost := newGen(t, h.root, "shop", "ghost", "app")
	quiet := newGen(t, h.root, "shop", "quiet", "app")
	t0 := time.Now()
	write(t, ghost, 4)
	write(t, quiet, 4)
	s.AddPod(kpod(quiet, nil, map[string]string{"sluice.dev/exclude": "true"}))
	evs := h.waitEvents(4)
	if d := time.Since(t0); d < 500*time.Millisecond || d > 5*time.Second {
		t.Errorf("an unknown pod's lines read after %v, want about metadata_wait (700ms)", d)
	}
	time.Sleep(300 * time.Millisecond) // several rounds: nothing of the excluded pod
	write(t, quiet, 4)
	time.Sleep(300 * time.Millisecond)
	must(t, stop())
	if n := len(h.q.All()); n != 4 {
		t.Fatalf("%d events, want ghost's 4", n)
	}
	for i, e := range evs {
		k := kubeMap(e)
		if src, seq := seqOf(t, e); src != ghost.Src() || seq != int64(i) || k["labels"] != nil || k["pod_name"] != "ghost" || k["host"] != "node-a" {
			t.Fatalf("event %d: %s seq %d kubernetes %v", i, src, seq, k)
		}
	}
}

// TestKubeConfig: the kubernetes section is checked when the input is
// created; {label:KEY} needs it.
func TestKubeConfig(t *testing.T) {
	h := newHarness(t)
	s := standIn(t)
	cfg := kubeCfg(h.root, s, 0)
	cfg.Kubernetes.NodeName = ""
	t.Setenv("NODE_NAME", "")
	if _, err := New("cri", cfg, h.dataDir, tailtest.NewRouter(t, h.q), nil, nil); err == nil || !strings.Contains(err.Error(), "no node name") {
		t.Fatalf("no node name: %v", err)
	}
	t.Setenv("NODE_NAME", "node-from-env")
	in, err := New("cri", cfg, h.dataDir, tailtest.NewRouter(t, h.q), nil, nil)
	if err != nil || in.kube.node != "node-from-env" {
		t.Fatalf("NODE_NAME: %v %+v", err, in)
	}
	in.t.Close()
	plain := testCfg(h.root)
	plain.Tag = "k.{label:app}"
	if _, err := New("cri", plain, h.dataDir, tailtest.NewRouter(t, h.q), nil, nil); err == nil {
		t.Fatal("{label:KEY} accepted without the kubernetes section")
	}
	off := kubeCfg(h.root, s, 0)
	off.Kubernetes.Enabled = &[]bool{false}[0]
	off.Tag = "k.{annotation:x}"
	if _, err := New("cri", off, h.dataDir, tailtest.NewRouter(t, h.q), nil, nil); err == nil {
		t.Fatal("{annotation:KEY} accepted with the section disabled")
	}
}

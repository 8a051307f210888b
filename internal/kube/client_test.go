package kube

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/internal/kube/kubetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStandIn(t *testing.T) *kubetest.Server {
	t.Helper()
	s, err := kubetest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func testConfig(s *kubetest.Server) Config {
	return Config{
		APIServer: s.URL(), NodeName: "node-a", Namespaces: true,
		TokenFile: os.DevNull, CAFile: "", // no token; plain http
		RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Getenv: func(string) string { return "" },
	}
}

// start runs a client until the test ends.
func start(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func webPod(name, node string) kubetest.Pod {
	return kubetest.Pod{
		Namespace: "shop", Name: name, UID: "uid-" + name, Node: node, IP: "10.1.0.7",
		Labels:      map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5"},
		Annotations: map[string]string{"logging.sluice.dev/type": "access"},
		Owner:       &kubetest.Owner{Kind: "ReplicaSet", Name: "web-7d9f8b6c5"},
		Containers: []kubetest.Container{
			{Name: "nginx", Image: "nginx:1.27", ImageID: "docker.io/library/nginx@sha256:abc", ContainerID: "containerd://0123abcd"},
		},
	}
}

// TestListWatch: the first list fills the cache with the node's pods only
// (decoded into Pod: labels, annotations, owner resolved to the
// Deployment, containers, IP) and the namespaces; watch events then keep
// it current; Gen moves on each change; a deleted pod stays readable.
func TestListWatch(t *testing.T) {
	s := newStandIn(t)
	s.AddNamespace(kubetest.Namespace{Name: "shop", Labels: map[string]string{"team": "payments"}})
	s.AddPod(webPod("web-a", "node-a"))
	s.AddPod(webPod("web-b", "node-b"))
	c := start(t, testConfig(s))
	if !c.WaitSynced(t.Context(), 10*time.Second) {
		t.Fatal("not synced")
	}
	p := c.Pod("uid-web-a")
	want := &Pod{
		UID: "uid-web-a", Namespace: "shop", Name: "web-a", NodeName: "node-a", IP: "10.1.0.7",
		Labels:      map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5"},
		Annotations: map[string]string{"logging.sluice.dev/type": "access"},
		Owner:       Owner{Kind: "Deployment", Name: "web"},
		OwnerReferences: []OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8b6c5",
			UID: "uid-replicaset-web-7d9f8b6c5", Controller: true}},
		Containers: []Container{{Name: "nginx", Image: "nginx:1.27", ImageID: "docker.io/library/nginx@sha256:abc", ContainerID: "0123abcd"}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("pod\n got %+v\nwant %+v", p, want)
	}
	if c.Pod("uid-web-b") != nil {
		t.Fatal("a pod of another node is cached")
	}
	if ns := c.Namespace("shop"); ns == nil || ns.Labels["team"] != "payments" {
		t.Fatalf("namespace %+v", ns)
	}

	g := c.Gen()
	s.AddPod(webPod("web-c", "node-a"))
	waitFor(t, "added pod", func() bool { return c.Pod("uid-web-c") != nil })
	if c.Gen() == g {
		t.Error("Gen did not move on ADDED")
	}
	// A status-only change (phase) is not a metadata change.
	g = c.Gen()
	old := c.Pod("uid-web-c")
	st := webPod("web-c", "node-a")
	st.Phase = "Succeeded"
	s.AddPod(st)
	mod := webPod("web-a", "node-a")
	mod.Labels = map[string]string{"app": "web", "version": "2"}
	s.AddPod(mod) // a marker after the status change
	waitFor(t, "modified pod", func() bool { return c.Pod("uid-web-a").Labels["version"] == "2" })
	if c.Pod("uid-web-c") != old {
		t.Error("a status-only change replaced the cached pod")
	}
	if c.Gen() != g+1 {
		t.Errorf("Gen moved by %d, want 1", c.Gen()-g)
	}
	s.DeletePod("shop", "web-c")
	s.AddNamespace(kubetest.Namespace{Name: "shop", Labels: map[string]string{"team": "checkout"}})
	waitFor(t, "namespace change", func() bool { return c.Namespace("shop").Labels["team"] == "checkout" })
	if c.Pod("uid-web-c") == nil {
		t.Error("a deleted pod is gone before DeletedTTL")
	}
	c.mu.RLock()
	deleted := !c.pods["uid-web-c"].deleted.IsZero()
	c.mu.RUnlock()
	if !deleted {
		t.Error("deleted pod not marked")
	}

	// One list and watches per resource, always with the node's selector;
	// nothing per pod.
	for _, r := range s.Requests() {
		switch {
		case strings.HasPrefix(r, "GET /api/v1/pods?") && strings.Contains(r, "fieldSelector=spec.nodeName%3Dnode-a"):
		case strings.HasPrefix(r, "GET /api/v1/namespaces?"):
		default:
			t.Errorf("unexpected request %s", r)
		}
	}
}

// TestGC: pods deleted more than DeletedTTL ago are forgotten.
func TestGC(t *testing.T) {
	c, err := New(Config{APIServer: "http://127.0.0.1:1", NodeName: "n", DeletedTTL: time.Minute, TokenFile: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.pods["a"] = &podEntry{pod: &Pod{UID: "a"}, deleted: now.Add(-2 * time.Minute)}
	c.pods["b"] = &podEntry{pod: &Pod{UID: "b"}, deleted: now.Add(-30 * time.Second)}
	c.pods["c"] = &podEntry{pod: &Pod{UID: "c"}}
	c.gcLocked(now)
	if c.Pod("a") != nil || c.Pod("b") == nil || c.Pod("c") == nil {
		t.Fatalf("after gc: %v", c.pods)
	}
}

// TestStaticPodMirror: a static pod's log directory carries the kubelet's
// config hash as its uid; the API holds its mirror pod under another uid
// with the hash in kubernetes.io/config.mirror. Pod(hash) finds the mirror,
// from the list and from a watch event; once the mirror is gone for
// DeletedTTL the hash is forgotten too.
func TestStaticPodMirror(t *testing.T) {
	s := newStandIn(t)
	etcd := kubetest.Pod{Namespace: "kube-system", Name: "etcd-node-a", UID: "mirror-uid-1", Node: "node-a",
		Annotations: map[string]string{mirrorAnnotation: "0f1e2d3c4b5a", "kubernetes.io/config.source": "file"},
		Containers:  []kubetest.Container{{Name: "etcd", Image: "registry.k8s.io/etcd:3.5.15-0"}}}
	s.AddPod(etcd)
	c := start(t, testConfig(s))
	if !c.WaitSynced(context.Background(), 10*time.Second) {
		t.Fatal("not synced")
	}
	if p := c.Pod("0f1e2d3c4b5a"); p == nil || p.Name != "etcd-node-a" || p.UID != "mirror-uid-1" {
		t.Fatalf("Pod(config hash) = %+v", p)
	}
	api := etcd
	api.Name, api.UID, api.Annotations = "kube-apiserver-node-a", "mirror-uid-2", map[string]string{mirrorAnnotation: "99aa88bb"}
	s.AddPod(api)
	waitFor(t, "watched mirror", func() bool { p := c.Pod("99aa88bb"); return p != nil && p.Name == "kube-apiserver-node-a" })

	g, err := New(Config{APIServer: "http://127.0.0.1:1", NodeName: "n", DeletedTTL: time.Minute, TokenFile: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	g.putPod(&Pod{UID: "m", Annotations: map[string]string{mirrorAnnotation: "h"}})
	g.pods["m"].deleted = now.Add(-2 * time.Minute)
	g.gcLocked(now)
	if g.Pod("h") != nil || len(g.mirrors) != 0 {
		t.Fatalf("after gc: %v %v", g.pods, g.mirrors)
	}
}

// TestUnreachableThenRelist: with the API server down the client does
// not sync (WaitSynced is bounded) and retries; when it comes up the
// cache fills. Stopped again, changed and compacted meanwhile, the
// re-watch from the old resourceVersion gets 410 and the client lists
// again: the cache ends up exact (a pod deleted while it was away is
// marked deleted).
func TestUnreachableThenRelist(t *testing.T) {
	s := newStandIn(t)
	s.AddPod(webPod("web-a", "node-a"))
	s.Stop()
	cfg := testConfig(s)
	set := metrics.NewSet()
	cfg.Metrics = set
	c := start(t, cfg)
	t0 := time.Now()
	if c.WaitSynced(t.Context(), 100*time.Millisecond) {
		t.Fatal("synced with the server down")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("WaitSynced took %v", d)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if !c.WaitSynced(t.Context(), 10*time.Second) || c.Pod("uid-web-a") == nil {
		t.Fatal("not synced after the server came up")
	}
	waitFor(t, "watch", func() bool { return set.GetOrCreateCounter(`sluice_kube_watches_total{resource="pods"}`).Get() > 0 })

	s.Stop()
	s.AddPod(webPod("web-b", "node-a"))
	s.DeletePod("shop", "web-a")
	s.Compact()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "relist", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		e := c.pods["uid-web-a"]
		return c.pods["uid-web-b"] != nil && e != nil && !e.deleted.IsZero()
	})
	if n := set.GetOrCreateCounter(`sluice_kube_resource_version_expired_total{resource="pods"}`).Get(); n == 0 {
		t.Error("no 410 counted")
	}
	if n := set.GetOrCreateCounter(`sluice_kube_errors_total{resource="pods"}`).Get(); n == 0 {
		t.Error("no error counted while the server was down")
	}
	var relist bool
	for _, r := range s.Requests() {
		relist = relist || strings.HasPrefix(r, "GET /api/v1/pods?") && !strings.Contains(r, "watch=") && !strings.Contains(r, "resourceVersion=0")
	}
	if !relist {
		t.Error("no consistent relist after 410")
	}
}

// TestBookmarks: bookmarks advance the resourceVersion a re-watch starts
// from.
func TestBookmarks(t *testing.T) {
	s := newStandIn(t)
	s.SetBookmarkInterval(20 * time.Millisecond)
	s.AddPod(webPod("web-a", "node-a"))
	cfg := testConfig(s)
	cfg.Namespaces = false
	c := start(t, cfg)
	if !c.WaitSynced(t.Context(), 10*time.Second) {
		t.Fatal("not synced")
	}
	rv := s.AddPod(webPod("web-x", "node-b")) // not ours: only a bookmark tells the client
	time.Sleep(100 * time.Millisecond)
	s.Stop()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	want := "resourceVersion=" + strconv.FormatInt(rv, 10)
	waitFor(t, "re-watch from the bookmark's version", func() bool {
		for _, r := range s.Requests() {
			if strings.Contains(r, "watch=1") && strings.Contains(r, want) {
				return true
			}
		}
		return false
	})
}

// TestTokenRotation: the token file is read again (every TokenReload and
// after a 401), so a rotated service account token is picked up.
func TestTokenRotation(t *testing.T) {
	s := newStandIn(t)
	s.SetToken("tok-1")
	s.AddPod(webPod("web-a", "node-a"))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(s)
	cfg.TokenFile = tokenFile
	cfg.TokenReload = time.Hour // only a 401 makes it read again
	c := start(t, cfg)
	if !c.WaitSynced(t.Context(), 10*time.Second) {
		t.Fatal("not synced with the token")
	}
	// Rotate: the server accepts only the new token; connections drop.
	s.SetToken("tok-2")
	if err := os.WriteFile(tokenFile, []byte("tok-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.AddPod(webPod("web-b", "node-a"))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod seen with the rotated token", func() bool { return c.Pod("uid-web-b") != nil })
}

// TestInClusterTLS: without api_server the client uses
// KUBERNETES_SERVICE_HOST/PORT over https, verifies the server against the
// CA file and sends the token file's bearer token.
func TestInClusterTLS(t *testing.T) {
	s := newStandIn(t)
	s.SetToken("sa-token")
	s.AddPod(webPod("web-a", "node-a"))
	target, _ := url.Parse(s.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	tlsSrv := httptest.NewTLSServer(proxy)
	// Closed after the client stops (cleanups run last first): Close waits
	// for the proxied watch to end.
	t.Cleanup(tlsSrv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(tlsSrv.URL, "https://"))
	env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
	cfg := Config{NodeName: "node-a", TokenFile: token, CAFile: ca, Getenv: func(k string) string { return env[k] },
		RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
	c := start(t, cfg)
	if !c.WaitSynced(t.Context(), 10*time.Second) || c.Pod("uid-web-a") == nil {
		t.Fatal("not synced in-cluster")
	}
	if c.base.String() != "https://"+net.JoinHostPort(host, port) {
		t.Errorf("base %s", c.base)
	}

	// Without the CA the certificate is refused.
	bad := cfg
	bad.CAFile = filepath.Join(dir, "missing.crt")
	if _, err := New(bad); err == nil {
		t.Error("a configured CA file that is missing is not an error")
	}
}

func TestConfigErrors(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{APIServer: "http://x"}, "empty node name"},
		{Config{NodeName: "n", Getenv: noEnv}, "not running in a Kubernetes pod"},
		{Config{NodeName: "n", APIServer: "ftp://x"}, "want http(s)"},
		{Config{NodeName: "n", APIServer: "http://x", CAFile: os.DevNull}, "no PEM certificate"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestAcquireShares: inputs with the same settings share one client (one
// list and one watch per agent); the last release stops it.
func TestAcquireShares(t *testing.T) {
	s := newStandIn(t)
	s.AddPod(webPod("web-a", "node-a"))
	cfg := testConfig(s)
	cfg.Namespaces = false
	c1, rel1, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2, rel2, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 {
		t.Fatal("two clients for the same settings")
	}
	if !c1.WaitSynced(t.Context(), 10*time.Second) {
		t.Fatal("not synced")
	}
	rel1()
	rel1() // idempotent
	time.Sleep(50 * time.Millisecond)
	lists := 0
	for _, r := range s.Requests() {
		if !strings.Contains(r, "watch=") {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("%d lists, want 1", lists)
	}
	rel2()
	c3, rel3, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rel3()
	if c3 == c1 {
		t.Error("a stopped client was reused")
	}
}

func TestResolveOwner(t *testing.T) {
	rs := func(name string) []OwnerReference {
		return []OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, Controller: true}}
	}
	for _, tc := range []struct {
		refs   []OwnerReference
		labels map[string]string
		want   Owner
	}{
		{nil, nil, Owner{}},
		{rs("web-7d9f8b6c5"), map[string]string{"pod-template-hash": "7d9f8b6c5"}, Owner{"Deployment", "web"}},
		{rs("my-app-v2-5b7c9d"), nil, Owner{"Deployment", "my-app-v2"}},
		{rs("web-7d9f8b6c5"), map[string]string{"pod-template-hash": "other"}, Owner{"ReplicaSet", "web-7d9f8b6c5"}},
		{rs("standalone"), nil, Owner{"ReplicaSet", "standalone"}},
		{rs("web-abc1"), nil, Owner{"ReplicaSet", "web-abc1"}}, // 'a' and '1' are not in the hash alphabet
		{[]OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: true}}, nil, Owner{"StatefulSet", "db"}},
		{[]OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", Controller: true}}, nil, Owner{"DaemonSet", "agent"}},
		{[]OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "backup-28937460", Controller: true}}, nil, Owner{"Job", "backup-28937460"}},
		{[]OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-a", Controller: true}}, nil, Owner{"Node", "node-a"}},
		{[]OwnerReference{{APIVersion: "x.io/v1", Kind: "ReplicaSet", Name: "web-7d9f8", Controller: true}}, nil, Owner{"ReplicaSet", "web-7d9f8"}},
		// No controller reference: the first.
		{[]OwnerReference{{Kind: "ConfigMap", Name: "a"}, {Kind: "Secret", Name: "b"}}, nil, Owner{"ConfigMap", "a"}},
	} {
		if got := ResolveOwner(tc.refs, tc.labels); got != tc.want {
			t.Errorf("%+v %v: got %+v, want %+v", tc.refs, tc.labels, got, tc.want)
		}
	}
}

// TestHTTPErrors: 403 (RBAC) and 500 are retried with back-off and counted;
// events of the cache (none yet) do not block anything.
func TestHTTPErrors(t *testing.T) {
	s := newStandIn(t)
	s.SetFailure(http.StatusForbidden)
	cfg := testConfig(s)
	set := metrics.NewSet()
	cfg.Metrics = set
	c := start(t, cfg)
	waitFor(t, "errors counted", func() bool {
		return set.GetOrCreateCounter(`sluice_kube_errors_total{resource="pods"}`).Get() >= 3
	})
	if c.WaitSynced(t.Context(), 0) {
		t.Fatal("synced while failing")
	}
	s.SetFailure(0)
	if !c.WaitSynced(t.Context(), 10*time.Second) {
		t.Fatal("not synced after the failure ended")
	}
}

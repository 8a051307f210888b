package kubetest_test

// The stand-in is driven here by the real client-go (typed clientset,
// reflector and informer, k8s.io/client-go v0.37.2, a test-only
// dependency): if client-go decodes what it serves and its informers sync
// and follow it, the stand-in speaks the API server's protocol closely
// enough for the agent's own client to be tested against it.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-agent/sluice/internal/kube/kubetest"
)

func newServer(t *testing.T) *kubetest.Server {
	t.Helper()
	s, err := kubetest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func clientset(t *testing.T, s *kubetest.Server, token string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: s.URL(), BearerToken: token, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func webPod(name, node string) kubetest.Pod {
	return kubetest.Pod{
		Namespace: "shop", Name: name, UID: "uid-" + name, Node: node, IP: "10.1.0.7",
		Labels:      map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5"},
		Annotations: map[string]string{"logging.sluice.dev/type": "access"},
		Owner:       &kubetest.Owner{Kind: "ReplicaSet", Name: "web-7d9f8b6c5"},
		Containers:  []kubetest.Container{{Name: "nginx", Image: "nginx:1.27"}},
	}
}

// TestClientGoListGet: a typed List honours the field selector and paging
// (limit, continue), a Get returns the object, and every served object
// decodes strictly (no field unknown to k8s.io/api) into core/v1 types.
func TestClientGoListGet(t *testing.T) {
	s := newServer(t)
	s.AddNamespace(kubetest.Namespace{Name: "shop", Labels: map[string]string{"team": "payments"}})
	s.AddPod(webPod("web-a", "node-a"))
	s.AddPod(webPod("web-b", "node-a"))
	s.AddPod(webPod("web-c", "node-b"))
	cs := clientset(t, s, "")
	ctx := t.Context()

	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.ResourceVersion != strconv.FormatInt(s.ResourceVersion(), 10) {
		t.Fatalf("list: %d items, rv %q", len(list.Items), list.ResourceVersion)
	}
	p := list.Items[0]
	if p.Name != "web-a" || p.Spec.NodeName != "node-a" || p.Labels["app"] != "web" || p.Status.PodIP != "10.1.0.7" ||
		len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "ReplicaSet" || p.OwnerReferences[0].Controller == nil ||
		len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].Image != "nginx:1.27" ||
		!strings.HasPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://") || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("pod decoded as %+v", p)
	}

	// Paging, as the reflector does for consistent lists.
	page, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a", Limit: 1})
	if err != nil || len(page.Items) != 1 || page.Continue == "" {
		t.Fatalf("page 1: %v %+v", err, page.ListMeta)
	}
	page2, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a", Limit: 1, Continue: page.Continue})
	if err != nil || len(page2.Items) != 1 || page2.Items[0].Name != "web-b" || page2.Continue != "" {
		t.Fatalf("page 2: %v %+v", err, page2)
	}
	// An expired continue token is 410 Expired.
	s.AddPod(webPod("web-d", "node-c"))
	s.Compact()
	_, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a", Limit: 1, Continue: page.Continue})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("expired continue: %v", err)
	}

	// Namespaced list and get.
	got, err := cs.CoreV1().Pods("shop").Get(ctx, "web-c", metav1.GetOptions{})
	if err != nil || got.Spec.NodeName != "node-b" || got.Kind != "Pod" && got.Kind != "" {
		t.Fatalf("get: %v %+v", err, got)
	}
	if _, err := cs.CoreV1().Pods("shop").Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || ns.Labels["team"] != "payments" || ns.Labels["kubernetes.io/metadata.name"] != "shop" {
		t.Fatalf("namespace: %v %+v", err, ns)
	}
	// A field the API server does not index is refused with 400.
	_, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.hostname=x"})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("bad field selector: %v", err)
	}

	// Strict decoding of the raw bodies into k8s.io/api types.
	strict := func(path string, into any) {
		t.Helper()
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		dec := json.NewDecoder(&buf)
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Fatalf("%s: strict decode: %v\n%s", path, err, buf.String())
		}
	}
	strict("/api/v1/pods", &corev1.PodList{})
	strict("/api/v1/namespaces", &corev1.NamespaceList{})
	strict("/api/v1/namespaces/shop/pods/web-a", &corev1.Pod{})
}

// TestClientGoWatch: a typed Watch from a list's resourceVersion gets
// ADDED, MODIFIED and DELETED as the field selector sees them (a pod of
// another node never shows), BOOKMARKs when asked for, and a watch from a
// compacted resourceVersion gets an ERROR event with a 410 Status.
func TestClientGoWatch(t *testing.T) {
	s := newServer(t)
	s.SetBookmarkInterval(50 * time.Millisecond)
	s.AddPod(webPod("web-a", "node-a"))
	cs := clientset(t, s, "")
	ctx := t.Context()
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{
		FieldSelector: "spec.nodeName=node-a", ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	s.AddPod(webPod("web-x", "node-b")) // not ours
	s.AddPod(webPod("web-b", "node-a"))
	mod := webPod("web-a", "node-a")
	mod.Labels = map[string]string{"app": "web", "version": "2"}
	s.AddPod(mod)
	s.DeletePod("shop", "web-b")

	type seen struct {
		typ  watch.EventType
		name string
	}
	var got []seen
	bookmarks := 0
	timeout := time.After(10 * time.Second)
	for len(got) < 3 || bookmarks == 0 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed early")
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				t.Fatalf("event %s object %T", ev.Type, ev.Object)
			}
			if ev.Type == watch.Bookmark {
				if p.ResourceVersion == "" {
					t.Fatal("bookmark without resourceVersion")
				}
				bookmarks++
				continue
			}
			if p.Name == "web-a" && p.Labels["version"] != "2" {
				t.Errorf("modified pod labels %v", p.Labels)
			}
			got = append(got, seen{ev.Type, p.Name})
		case <-timeout:
			t.Fatalf("timeout; got %v, %d bookmarks", got, bookmarks)
		}
	}
	want := []seen{{watch.Added, "web-b"}, {watch.Modified, "web-a"}, {watch.Deleted, "web-b"}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}

	s.Compact()
	s.AddPod(webPod("web-c", "node-a"))
	w2, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a", ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	select {
	case ev := <-w2.ResultChan():
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != http.StatusGone || !apierrors.IsResourceExpired(apierrors.FromObject(st)) {
			t.Fatalf("too old watch: %s %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ERROR event")
	}
}

// TestClientGoInformer: client-go's shared informers (reflector with
// watch-list, the default since 1.35, or list+watch) sync pods of one
// node and namespaces, follow changes, survive the stand-in being stopped
// and started again, and authenticate with the bearer token.
func TestClientGoInformer(t *testing.T) {
	s := newServer(t)
	s.SetToken("tok-1")
	s.AddNamespace(kubetest.Namespace{Name: "shop", Labels: map[string]string{"team": "payments"}})
	s.AddPod(webPod("web-a", "node-a"))
	s.AddPod(webPod("web-z", "node-z"))
	if _, err := clientset(t, s, "wrong").CoreV1().Pods("").List(t.Context(), metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Fatalf("wrong token: %v", err)
	}
	cs := clientset(t, s, "tok-1")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "spec.nodeName=node-a"
	}))
	podInf := f.Core().V1().Pods().Informer()
	var mu sync.Mutex
	updates := map[string]int{}
	_, _ = podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, n any) {
			mu.Lock()
			updates[n.(*corev1.Pod).Name]++
			mu.Unlock()
		},
	})
	nsf := informers.NewSharedInformerFactory(cs, 0)
	nsInf := nsf.Core().V1().Namespaces().Informer()
	f.Start(ctx.Done())
	nsf.Start(ctx.Done())
	defer f.Shutdown()
	defer nsf.Shutdown()
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), podInf.HasSynced, nsInf.HasSynced) {
		t.Fatal("informers did not sync")
	}
	lister := f.Core().V1().Pods().Lister()
	waitFor(t, "synced pods", func() bool {
		all, _ := lister.List(labels.Everything())
		return len(all) == 1 && all[0].Name == "web-a"
	})
	if _, ok, _ := nsInf.GetStore().GetByKey("shop"); !ok {
		t.Fatal("namespace not in the informer's store")
	}
	mod := webPod("web-a", "node-a")
	mod.Labels = map[string]string{"app": "web", "tier": "front"}
	s.AddPod(mod)
	waitFor(t, "modified pod", func() bool {
		p, err := lister.Pods("shop").Get("web-a")
		return err == nil && p.Labels["tier"] == "front"
	})

	// The API server goes away; changes made meanwhile are seen after it
	// returns (re-watch from the last resourceVersion, or relist).
	s.Stop()
	time.Sleep(200 * time.Millisecond)
	s.AddPod(webPod("web-b", "node-a"))
	s.DeletePod("shop", "web-a")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "changes made while stopped", func() bool {
		all, _ := lister.List(labels.Everything())
		return len(all) == 1 && all[0].Name == "web-b"
	})
	for _, r := range s.Requests() {
		if strings.Contains(r, "/pods?") && strings.Contains(r, "watch=") && !strings.Contains(r, "fieldSelector=spec.nodeName%3Dnode-a") {
			t.Errorf("pod request without the node's field selector: %s", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if updates["web-a"] == 0 {
		t.Error("no update event for web-a")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

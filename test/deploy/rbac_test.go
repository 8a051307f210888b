package deploy

import (
	"context"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/kube"
	"github.com/sluice-agent/sluice/internal/kube/kubetest"
)

// TestRBACMatchesAgentRequests: the ClusterRole of the manifests (wantRules,
// checked there) grants what the agent's client really asks the API for,
// observed on the API stand-in: the resources are exactly the ones it
// requests (pods and namespaces), every request is allowed, the verbs it
// uses (list and watch) are granted, and the only verb granted beyond them
// is get.
func TestRBACMatchesAgentRequests(t *testing.T) {
	s, err := kubetest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddNamespace(kubetest.Namespace{Name: "shop"})
	s.AddPod(kubetest.Pod{Namespace: "shop", Name: "web", Node: "node-1", Containers: []kubetest.Container{{Name: "app", Image: "x"}}})
	c, err := kube.New(kube.Config{APIServer: s.URL(), NodeName: "node-1", Namespaces: true, TokenFile: os.DevNull,
		RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	if !c.WaitSynced(ctx, 10*time.Second) {
		t.Fatal("not synced")
	}
	// A reconnect and a 410 relist: every kind of request the client makes.
	s.Stop()
	s.AddPod(kubetest.Pod{Namespace: "shop", Name: "web-2", Node: "node-1"})
	s.Compact()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Pod("uid-shop-web-2") == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	used := map[string]map[string]bool{} // resource -> verbs
	for _, r := range s.Requests() {
		method, uri, _ := strings.Cut(r, " ")
		u, err := url.Parse(uri)
		if err != nil || method != "GET" {
			t.Fatalf("request %s", r)
		}
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(parts) != 3 || parts[0] != "api" || parts[1] != "v1" {
			t.Fatalf("request %s is not a cluster-wide list or watch of a core/v1 resource", r)
		}
		verb := "list"
		if w := u.Query().Get("watch"); w == "1" || w == "true" {
			verb = "watch"
		}
		if used[parts[2]] == nil {
			used[parts[2]] = map[string]bool{}
		}
		used[parts[2]][verb] = true
	}
	rule := wantRules[0]
	var resources []string
	for res, verbs := range used {
		resources = append(resources, res)
		for v := range verbs {
			if !slices.Contains(rule.Verbs, v) {
				t.Errorf("%s %s is not granted", v, res)
			}
		}
		if !verbs["list"] || !verbs["watch"] {
			t.Errorf("%s: verbs used %v, want list and watch", res, verbs)
		}
	}
	slices.Sort(resources)
	if !slices.Equal(resources, rule.Resources) {
		t.Errorf("resources requested %v, granted %v", resources, rule.Resources)
	}
	for _, v := range rule.Verbs {
		if v != "get" && v != "list" && v != "watch" {
			t.Errorf("verb %s granted", v)
		}
	}
	if len(wantRules) != 1 || !slices.Equal(rule.APIGroups, []string{""}) {
		t.Errorf("rules %+v", wantRules)
	}
}

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/inputs/cri/crigen"
	"github.com/sluice-agent/sluice/internal/kube/kubetest"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// Mode cri with -kube: the same workload (the same files, tag, routes,
// outputs and receivers) with the cri input's kubernetes section on,
// pointed at an in-process Kubernetes API stand-in (internal/kube/kubetest,
// bearer token, HTTP on 127.0.0.1) that serves the pods of the generated
// tree on node bench-node (labels, annotations, a ReplicaSet owner
// resolved to its Deployment, container image and image ID, pod IP) and
// the namespace with its labels. Every record then carries the
// kubernetes map (namespace_name, pod_name, pod_id, container_name, host,
// pod_ip, container_image, container_hash, labels, annotations, owner)
// and kubernetes_namespace.labels: at -payload 200 a record grows from
// 341 to about 930 bytes, which the disk queues and the forward outputs
// carry too.
//
// Without -kube the receivers check that no record carries a pod label;
// with it, that every record carries its pod's
// logging.sluice.dev/type label (each receiver gets one pod's lines). The
// check is the same bytes.Contains per record in both cases, so both
// variants cost the bench process the same. The stand-in runs in the
// bench process: its CPU (one list and one watch per run) is not the
// agent's.

const (
	benchNode      = "bench-node"
	benchTypeLabel = "logging.sluice.dev/type"
	benchToken     = "bench-service-account-token"
	benchHash      = "5d8f7c9b4" // the pods' pod-template-hash
)

// criKube is the stand-in of mode cri's -kube.
type criKube struct {
	api       *kubetest.Server
	tokenFile string
}

// criCheck counts, per run, the records carrying a pod label.
type criCheck struct {
	kube     bool
	labelled atomic.Int64
	total    atomic.Int64
}

// startKube starts the stand-in with the pods of the containers prepare
// generated.
func (c *criMode) startKube(dir string) error {
	api, err := kubetest.New()
	if err != nil {
		return err
	}
	api.SetToken(benchToken)
	k := &criKube{api: api, tokenFile: filepath.Join(dir, "kube-token")}
	if err := os.WriteFile(k.tokenFile, []byte(benchToken+"\n"), 0o600); err != nil {
		api.Close()
		return err
	}
	api.AddNamespace(kubetest.Namespace{Name: "bench", Labels: map[string]string{"team": "observability", "env": "bench"}})
	for i, ct := range c.conts {
		api.AddPod(benchPod(ct, i))
	}
	c.kube = k
	return nil
}

// benchPod is the stand-in's pod for one generated container: a
// Deployment's pod, as most pods are.
func benchPod(ct *crigen.Container, i int) kubetest.Pod {
	lt := ct.Name()
	image := "registry.example/bench/" + lt + ":1.0." + strconv.Itoa(i)
	return kubetest.Pod{
		Namespace: ct.Namespace(), Name: ct.Pod(), UID: ct.UID(), Node: benchNode,
		IP: net.IPv4(10, 244, 1, byte(10+i)).String(),
		Labels: map[string]string{
			"app": "bench-" + lt, "app.kubernetes.io/name": "bench", "app.kubernetes.io/component": lt,
			"pod-template-hash": benchHash, benchTypeLabel: lt,
		},
		Annotations: map[string]string{
			"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z", "prometheus.io/scrape": "false",
		},
		Owner:      &kubetest.Owner{Kind: "ReplicaSet", Name: "bench-" + lt + "-" + benchHash},
		Containers: []kubetest.Container{{Name: lt, Image: image, ImageID: image + "@sha256:" + fmt.Sprintf("%064x", i+1)}},
	}
}

// kubeYAML is the cri input's kubernetes section.
func (c *criMode) kubeYAML() string {
	return fmt.Sprintf("    kubernetes:\n      api_server: %q\n      node_name: %s\n      token_file: %q\n",
		c.kube.api.URL(), benchNode, c.kube.tokenFile)
}

// codec returns the receivers' codec of one run: keys as receiver.Wire's
// default, and the pod-label check.
func (c *criMode) codec() receiver.Codec {
	c.check = &criCheck{kube: c.kube != nil}
	key := msgp.AppendString(nil, benchTypeLabel)
	chk := c.check
	return receiver.Wire{OnEvent: func(b *receiver.Batch, ns int64, rec []byte) {
		if src, seq, ok := receiver.RecordKey(rec); ok {
			b.Add(src, seq, ns)
		} else {
			b.AddUnkeyed()
		}
		chk.total.Add(1)
		if bytes.Contains(rec, key) {
			chk.labelled.Add(1)
		}
	}}
}

// verify checks the run's records: all enriched with -kube, none without.
func (c *criMode) verify() error {
	chk := c.check
	n, l := chk.total.Load(), chk.labelled.Load()
	switch {
	case chk.kube && l != n:
		return fmt.Errorf("-kube: %d of %d records carry no pod label", n-l, n)
	case !chk.kube && l != 0:
		return fmt.Errorf("%d records carry a pod label without -kube", l)
	}
	return nil
}

// closeKube stops the stand-in.
func (c *criMode) closeKube() {
	if c.kube != nil {
		c.kube.api.Close()
	}
}

// Package kube keeps the Kubernetes metadata of the pods of one node (and
// of the namespaces) in a local cache, fed by one list and one watch per
// resource: GET /api/v1/pods?fieldSelector=spec.nodeName=<node>, then
// ?watch=1&resourceVersion=<rv>&allowWatchBookmarks=true, and the same for
// /api/v1/namespaces. The cri input asks the cache, never the API server:
// no request per record, per file or per pod.
//
// # Why raw net/http and not client-go
//
// client-go's informers are the ecosystem's standard way to do this, and
// the protocol this package speaks is the one they speak (list with
// resourceVersion=0 then pages, watch from the list's resourceVersion,
// bookmarks, 410 Gone to list again, back-off). What they cost is binary
// size: the typed clientset and informers add +20 to +22 MiB to the agent
// (client-go v0.37.2; client-go/rest with only a core/v1 scheme still
// +7.3 MiB), against +0.1 MiB for net/http and encoding/json into the
// minimal structs below (shared/reference/deps.md, measured on the agent
// skeleton: 14.7 MiB stripped with every other dependency; measured on
// the agent itself, linking this package into the cri input added 88 KiB,
// 14,205,193 to 14,295,305 bytes stripped, and no k8s.io module). A per-node
// agent runs on every node of every cluster, so its size and memory are
// paid N times; it needs two read-only resources, a handful of fields and
// no writes, retries of mutations, leader election or generated listers.
// client-go is a test-only dependency here: kubetest_test.go drives the
// API stand-in with the real clientset and informers, which is what shows
// that the stand-in, and therefore this client tested against it, speak
// the API server's protocol.
//
// # Protocol
//
//   - List: first from the watch cache (resourceVersion=0, what informers
//     do: cheap for the API server with one agent per node), in pages of
//     PageSize (limit, continue; an expired continue token lists again
//     from the start). A list after 410 is a consistent read (no
//     resourceVersion).
//   - Watch from the list's resourceVersion, with allowWatchBookmarks and
//     a random timeoutSeconds in [WatchTimeout, 2 x WatchTimeout]. The
//     resourceVersion of every event and bookmark is kept; a watch that
//     ends (timeout, connection lost) is started again from it. 410 Gone,
//     as an HTTP status or as an ERROR event (what the watch cache sends),
//     lists again. Any other error backs off (full jitter between
//     RetryInitial and RetryMax, reset once a watch is open) and retries;
//     the cache keeps what it has meanwhile, so events still flow.
//   - Objects are decoded with encoding/json into minimal structs (name,
//     namespace, uid, labels, annotations, ownerReferences, nodeName,
//     podIP, init/regular/ephemeral containers' name and image, their
//     statuses' imageID and containerID). Unknown fields are ignored, so
//     any API server version decodes.
//
// # Authentication
//
// In a pod: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
// the service account's CA (ca.crt) and bearer token. The token file is
// read again every TokenReload (1 minute, as client-go does) and after a
// 401: bound service account tokens expire (one hour by default) and the
// kubelet rewrites the file. Config.APIServer replaces the in-cluster URL
// (tests, or an agent outside the cluster); the token and CA files are
// then used if they exist.
//
// # Cache
//
// Pods are keyed by uid (the <namespace>_<pod>_<uid> directory of their
// logs gives it), namespaces by name. A cached *Pod or *Namespace is
// immutable: a change stores a new one, and Gen moves. A MODIFIED event
// that changes nothing the agent uses (most are status updates) keeps the
// old pointer and does not move Gen. A deleted pod stays readable for
// DeletedTTL (lines read after its deletion are still enriched). Lookups
// take a read lock; Gen is one atomic load, so a consumer can check it per
// event and look up only when it moved.
//
// # Owner
//
// Owner is the pod's workload: its controller reference, with a
// ReplicaSet named <deployment>-<pod-template-hash> resolved to the
// Deployment by that naming convention (the Deployment controller names
// its ReplicaSets so and copies the hash into the pod's labels), without
// reading the ReplicaSet: no extra request, no RBAC on replicasets; see
// ResolveOwner. StatefulSet, DaemonSet, Job (and any other kind) are taken
// as they are. Fluent Bit (ownerReferences, with owner_references on) and
// Vector (pod_owner "ReplicaSet/<name>") report the raw reference, which
// Pod.OwnerReferences keeps too.
//
// # Sharing
//
// Acquire returns one running Client per distinct settings, shared by
// every input of the process: one list and one watch per agent.
//
// # RBAC
//
// get, list and watch on pods; the same on namespaces when
// Config.Namespaces is set. Nothing else (deploy/kubernetes).
//
// # Metrics
//
// sluice_kube_lists_total, sluice_kube_watches_total,
// sluice_kube_watch_events_total, sluice_kube_errors_total and
// sluice_kube_resource_version_expired_total, with the label
// resource="pods" or "namespaces".
package kube

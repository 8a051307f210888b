package kube

import (
	"maps"
	"slices"
	"strings"
)

// Pod is the part of a pod the agent uses. A *Pod in the cache is never
// modified: a change stores a new one, so a reader may keep it.
type Pod struct {
	UID       string
	Namespace string
	Name      string
	NodeName  string // spec.nodeName
	IP        string // status.podIP ("" until the pod has one)
	// Labels and Annotations are the pod's (nil when it has none); they
	// must not be modified.
	Labels      map[string]string
	Annotations map[string]string
	// Owner is the workload the pod belongs to: its controller reference,
	// with a ReplicaSet named <deployment>-<pod-template-hash> resolved to
	// its Deployment (see ResolveOwner). Zero for a bare pod.
	Owner Owner
	// OwnerReferences are metadata.ownerReferences as they are.
	OwnerReferences []OwnerReference
	// Containers are the pod's init, regular and ephemeral containers by
	// name, with their status where the pod has one.
	Containers []Container
}

// Owner names the workload of a pod.
type Owner struct {
	Kind string // Deployment, StatefulSet, DaemonSet, Job, ReplicaSet, Node, ...
	Name string
}

// OwnerReference is one entry of metadata.ownerReferences.
type OwnerReference struct {
	APIVersion string
	Kind       string
	Name       string
	UID        string
	Controller bool
}

// Container is one container of a pod.
type Container struct {
	Name        string
	Image       string // spec image, or the status's when the spec has none
	ImageID     string // status imageID ("" until it ran)
	ContainerID string // status containerID without the runtime prefix ("containerd://")
}

// Container returns the container called name, or nil.
func (p *Pod) Container(name string) *Container {
	if p == nil {
		return nil
	}
	for i := range p.Containers {
		if p.Containers[i].Name == name {
			return &p.Containers[i]
		}
	}
	return nil
}

// Namespace is the part of a namespace the agent uses. Like a *Pod, a
// *Namespace in the cache is never modified.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// equal reports whether two pods carry the same metadata (a status change
// that leaves every field the agent uses alone is not a change).
func (p *Pod) equal(q *Pod) bool {
	return p.UID == q.UID && p.Namespace == q.Namespace && p.Name == q.Name && p.NodeName == q.NodeName &&
		p.IP == q.IP && p.Owner == q.Owner && maps.Equal(p.Labels, q.Labels) &&
		maps.Equal(p.Annotations, q.Annotations) && slices.Equal(p.OwnerReferences, q.OwnerReferences) &&
		slices.Equal(p.Containers, q.Containers)
}

func (n *Namespace) equal(m *Namespace) bool {
	return n.Name == m.Name && maps.Equal(n.Labels, m.Labels) && maps.Equal(n.Annotations, m.Annotations)
}

// The JSON the API server sends, decoded into only the fields used. An
// unknown field is ignored (encoding/json), so newer servers decode too.

type objectMeta struct {
	Name            string               `json:"name"`
	Namespace       string               `json:"namespace"`
	UID             string               `json:"uid"`
	ResourceVersion string               `json:"resourceVersion"`
	Labels          map[string]string    `json:"labels"`
	Annotations     map[string]string    `json:"annotations"`
	OwnerReferences []ownerReferenceJSON `json:"ownerReferences"`
}

type ownerReferenceJSON struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller *bool  `json:"controller"`
}

type listMeta struct {
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue"`
}

type containerJSON struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

type containerStatusJSON struct {
	Name        string `json:"name"`
	Image       string `json:"image"`
	ImageID     string `json:"imageID"`
	ContainerID string `json:"containerID"`
}

type podJSON struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		NodeName            string          `json:"nodeName"`
		InitContainers      []containerJSON `json:"initContainers"`
		Containers          []containerJSON `json:"containers"`
		EphemeralContainers []containerJSON `json:"ephemeralContainers"`
	} `json:"spec"`
	Status struct {
		PodIP                      string                `json:"podIP"`
		InitContainerStatuses      []containerStatusJSON `json:"initContainerStatuses"`
		ContainerStatuses          []containerStatusJSON `json:"containerStatuses"`
		EphemeralContainerStatuses []containerStatusJSON `json:"ephemeralContainerStatuses"`
	} `json:"status"`
}

type namespaceJSON struct {
	Metadata objectMeta `json:"metadata"`
}

func (p *podJSON) meta() *objectMeta       { return &p.Metadata }
func (n *namespaceJSON) meta() *objectMeta { return &n.Metadata }

// status is a metav1.Status: the body of an error response and the object
// of a watch ERROR event.
type status struct {
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

// pod converts the decoded JSON.
func (j *podJSON) pod() *Pod {
	m := &j.Metadata
	p := &Pod{
		UID: m.UID, Namespace: m.Namespace, Name: m.Name, NodeName: j.Spec.NodeName, IP: j.Status.PodIP,
		Labels: nilIfEmpty(m.Labels), Annotations: nilIfEmpty(m.Annotations),
	}
	for _, r := range m.OwnerReferences {
		p.OwnerReferences = append(p.OwnerReferences, OwnerReference{
			APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, UID: r.UID, Controller: r.Controller != nil && *r.Controller,
		})
	}
	p.Owner = ResolveOwner(p.OwnerReferences, p.Labels)
	add := func(specs []containerJSON, sts []containerStatusJSON) {
		for _, c := range specs {
			p.Containers = append(p.Containers, Container{Name: c.Name, Image: c.Image})
		}
		for _, s := range sts {
			c := p.Container(s.Name)
			if c == nil {
				p.Containers = append(p.Containers, Container{Name: s.Name})
				c = &p.Containers[len(p.Containers)-1]
			}
			if c.Image == "" {
				c.Image = s.Image
			}
			c.ImageID = s.ImageID
			c.ContainerID = trimRuntime(s.ContainerID)
		}
	}
	add(j.Spec.InitContainers, j.Status.InitContainerStatuses)
	add(j.Spec.Containers, j.Status.ContainerStatuses)
	add(j.Spec.EphemeralContainers, j.Status.EphemeralContainerStatuses)
	return p
}

func (j *namespaceJSON) namespace() *Namespace {
	return &Namespace{Name: j.Metadata.Name, Labels: nilIfEmpty(j.Metadata.Labels), Annotations: nilIfEmpty(j.Metadata.Annotations)}
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// trimRuntime drops the "<runtime>://" prefix of a container id.
func trimRuntime(id string) string {
	if _, after, ok := strings.Cut(id, "://"); ok {
		return after
	}
	return id
}

// ResolveOwner returns the workload of a pod from its owner references:
// the controller reference (the first reference if none is marked), and
// for a ReplicaSet named <deployment>-<hash> the Deployment. The hash is
// the pod's pod-template-hash label when it has one (the Deployment
// controller names its ReplicaSets <deployment>-<pod-template-hash> and
// copies the hash into the pods' labels); without the label, a last
// "-"-separated segment made of the characters of rand.SafeEncodeString
// (bcdfghjklmnpqrstvwxz2456789), 1 to 10 long, is taken as the hash. This
// is a naming convention, not an API lookup (no ReplicaSet is read, so no
// RBAC on replicasets is needed): a ReplicaSet created by hand with such a
// name is reported as a Deployment. StatefulSet, DaemonSet, Job and every
// other kind are reported as they are.
func ResolveOwner(refs []OwnerReference, labels map[string]string) Owner {
	var ref *OwnerReference
	for i := range refs {
		if refs[i].Controller {
			ref = &refs[i]
			break
		}
	}
	if ref == nil && len(refs) > 0 {
		ref = &refs[0]
	}
	if ref == nil {
		return Owner{}
	}
	o := Owner{Kind: ref.Kind, Name: ref.Name}
	if ref.Kind != "ReplicaSet" || (ref.APIVersion != "" && !strings.HasPrefix(ref.APIVersion, "apps/")) {
		return o
	}
	if h := labels["pod-template-hash"]; h != "" {
		if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok && d != "" {
			return Owner{Kind: "Deployment", Name: d}
		}
		return o
	}
	i := strings.LastIndexByte(ref.Name, '-')
	if i <= 0 || !safeHash(ref.Name[i+1:]) {
		return o
	}
	return Owner{Kind: "Deployment", Name: ref.Name[:i]}
}

// safeHash reports whether s could be a pod-template-hash: 1 to 10
// characters of k8s.io/apimachinery's rand.SafeEncodeString alphabet.
func safeHash(s string) bool {
	if len(s) == 0 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", rune(s[i])) {
			return false
		}
	}
	return true
}

// Package deploy tests the deployment files in deploy/: the Kubernetes
// manifests and the Helm chart (every object decoded strictly into the
// k8s.io/api types, the agent.yml they carry validated by the agent's own
// config package, the RBAC rules checked against the requests the agent
// really makes) and the ECS task definitions (decoded strictly into the
// aws-sdk-go-v2 ECS types, their agent config validated).
package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-agent/sluice/config"
)

const repo = "../.."

// manifest is the objects of one set of manifests, by kind.
type manifest struct {
	name           string
	namespaces     []*corev1.Namespace
	serviceAccount *corev1.ServiceAccount
	clusterRole    *rbacv1.ClusterRole
	binding        *rbacv1.ClusterRoleBinding
	configMap      *corev1.ConfigMap
	daemonSet      *appsv1.DaemonSet
}

// newObject returns an empty object of a kind the manifests may hold; any
// other kind fails the test.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, true
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, true
	}
	return nil, false
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode decodes every document of the YAML streams strictly: YAML to JSON
// (duplicate keys fail) and JSON into the k8s.io/api type of its kind with
// unknown fields failing (sigs.k8s.io/yaml UnmarshalStrict).
func decode(t *testing.T, name string, streams map[string]string) *manifest {
	t.Helper()
	m := &manifest{name: name}
	files := slices.Sorted(func(yield func(string) bool) {
		for f := range streams {
			if !yield(f) {
				return
			}
		}
	})
	for _, file := range files {
		for i, doc := range docSep.Split(streams[file], -1) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %s document %d: %v", name, file, i, err)
			}
			if tm.Kind == "" && tm.APIVersion == "" {
				if strings.TrimSpace(stripComments(doc)) != "" {
					t.Fatalf("%s: %s document %d has no kind:\n%s", name, file, i, doc)
				}
				continue
			}
			obj, ok := newObject(tm.APIVersion, tm.Kind)
			if !ok {
				t.Fatalf("%s: %s: unexpected object %s %s", name, file, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %s: %s: strict decode: %v", name, file, tm.Kind, err)
			}
			dup := func(set bool) {
				if set {
					t.Fatalf("%s: two %s objects", name, tm.Kind)
				}
			}
			switch o := obj.(type) {
			case *corev1.Namespace:
				m.namespaces = append(m.namespaces, o)
			case *corev1.ServiceAccount:
				dup(m.serviceAccount != nil)
				m.serviceAccount = o
			case *corev1.ConfigMap:
				dup(m.configMap != nil)
				m.configMap = o
			case *rbacv1.ClusterRole:
				dup(m.clusterRole != nil)
				m.clusterRole = o
			case *rbacv1.ClusterRoleBinding:
				dup(m.binding != nil)
				m.binding = o
			case *appsv1.DaemonSet:
				dup(m.daemonSet != nil)
				m.daemonSet = o
			}
		}
	}
	if m.serviceAccount == nil || m.clusterRole == nil || m.binding == nil || m.configMap == nil || m.daemonSet == nil {
		t.Fatalf("%s: missing objects: %+v", name, m)
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if s := strings.TrimSpace(l); s != "" && !strings.HasPrefix(s, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// wantRules is what the agent's pod cache needs (internal/kube: a list and
// a watch of pods and of namespaces; get for parity with Fluent Bit's role,
// see TestRBACMatchesAgentRequests), nothing more.
var wantRules = []rbacv1.PolicyRule{{
	APIGroups: []string{""},
	Resources: []string{"namespaces", "pods"},
	Verbs:     []string{"get", "list", "watch"},
}}

// check runs every check on one set of manifests and returns the agent
// config its ConfigMap holds.
func (m *manifest) check(t *testing.T) *config.Config {
	t.Helper()
	ds, sa := m.daemonSet, m.serviceAccount
	ns := ds.Namespace
	if ns == "" || sa.Namespace != ns || m.configMap.Namespace != ns {
		t.Errorf("%s: namespaces: daemonset %q, serviceaccount %q, configmap %q", m.name, ns, sa.Namespace, m.configMap.Namespace)
	}
	if len(m.namespaces) > 0 && !slices.ContainsFunc(m.namespaces, func(n *corev1.Namespace) bool { return n.Name == ns }) {
		t.Errorf("%s: the Namespace object is not the DaemonSet's namespace %q", m.name, ns)
	}

	// RBAC: exactly get, list, watch on pods and namespaces, bound to the
	// DaemonSet's service account.
	if !reflect.DeepEqual(m.clusterRole.Rules, wantRules) {
		t.Errorf("%s: ClusterRole rules %+v, want %+v", m.name, m.clusterRole.Rules, wantRules)
	}
	b := m.binding
	if b.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: m.clusterRole.Name}) {
		t.Errorf("%s: roleRef %+v", m.name, b.RoleRef)
	}
	if !reflect.DeepEqual(b.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}}) {
		t.Errorf("%s: subjects %+v", m.name, b.Subjects)
	}

	// DaemonSet.
	spec := &ds.Spec.Template.Spec
	if ds.Spec.Selector == nil || len(ds.Spec.Selector.MatchLabels) == 0 {
		t.Fatalf("%s: no selector", m.name)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the template's labels", m.name, k, v)
		}
	}
	if spec.ServiceAccountName != sa.Name {
		t.Errorf("%s: serviceAccountName %q, want %q", m.name, spec.ServiceAccountName, sa.Name)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: host namespaces shared", m.name)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("%s: %d containers", m.name, len(spec.Containers))
	}
	c := &spec.Containers[0]

	// NODE_NAME from the downward API.
	var nodeEnv *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "NODE_NAME" {
			nodeEnv = &c.Env[i]
		}
	}
	if nodeEnv == nil || nodeEnv.ValueFrom == nil || nodeEnv.ValueFrom.FieldRef == nil || nodeEnv.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("%s: NODE_NAME is not the downward API's spec.nodeName: %+v", m.name, nodeEnv)
	}

	// Volumes: what each mount is.
	vols := map[string]*corev1.Volume{}
	for i := range spec.Volumes {
		vols[spec.Volumes[i].Name] = &spec.Volumes[i]
	}
	mounts := map[string]corev1.VolumeMount{} // by mount path
	for _, vm := range c.VolumeMounts {
		if vols[vm.Name] == nil {
			t.Errorf("%s: mount %s of an undefined volume %s", m.name, vm.MountPath, vm.Name)
		}
		mounts[vm.MountPath] = vm
	}
	hostPath := func(mountPath string) (*corev1.HostPathVolumeSource, corev1.VolumeMount) {
		vm, ok := mounts[mountPath]
		if !ok || vols[vm.Name] == nil || vols[vm.Name].HostPath == nil {
			t.Errorf("%s: no hostPath mounted at %s", m.name, mountPath)
			return &corev1.HostPathVolumeSource{}, vm
		}
		return vols[vm.Name].HostPath, vm
	}

	// The agent config: the ConfigMap's agent.yml at the --config path.
	cfgPath := ""
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			cfgPath = c.Args[i+1]
		}
	}
	if cfgPath == "" {
		t.Fatalf("%s: no --config in args %v", m.name, c.Args)
	}
	cm, ok := mounts[filepath.Dir(cfgPath)]
	if !ok || vols[cm.Name].ConfigMap == nil || vols[cm.Name].ConfigMap.Name != m.configMap.Name || !cm.ReadOnly {
		t.Fatalf("%s: %s is not the ConfigMap %s mounted read-only", m.name, filepath.Dir(cfgPath), m.configMap.Name)
	}
	data, ok := m.configMap.Data[filepath.Base(cfgPath)]
	if !ok {
		t.Fatalf("%s: ConfigMap has no key %s", m.name, filepath.Base(cfgPath))
	}
	cfg := validateAgentConfig(t, m.name+" agent.yml", data, map[string]string{"NODE_NAME": "node-1"})

	// One cri input, its root the read-only hostPath of the pod logs, with
	// Kubernetes metadata; data_dir on a writable hostPath.
	var cri *config.CRIInput
	for _, in := range cfg.Inputs {
		if in.CRI != nil {
			cri = in.CRI
		}
	}
	if cri == nil || !cri.Kubernetes.On() {
		t.Fatalf("%s: no cri input with kubernetes metadata", m.name)
	}
	if hp, vm := hostPath(cri.Root); hp.Path != cri.Root || !vm.ReadOnly {
		t.Errorf("%s: %s: hostPath %q read-only %v, want the same path read-only", m.name, cri.Root, hp.Path, vm.ReadOnly)
	}
	if !slices.Contains(cri.ExcludeNamespaces, ns) {
		t.Errorf("%s: the agent's own namespace %s is not excluded: %v", m.name, ns, cri.ExcludeNamespaces)
	}
	if hp, vm := hostPath(cfg.DataDir); hp.Path == "" || vm.ReadOnly || hp.Type == nil || *hp.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("%s: data_dir %s: hostPath %+v read-only %v", m.name, cfg.DataDir, hp, vm.ReadOnly)
	}
	if len(vols) != len(c.VolumeMounts) {
		t.Errorf("%s: %d volumes for %d mounts", m.name, len(vols), len(c.VolumeMounts))
	}

	// Probes on the metrics address: liveness /healthz, readiness /readyz.
	_, port, err := net.SplitHostPort(cfg.MetricsAddr)
	if err != nil {
		t.Fatalf("%s: metrics_addr %q: %v", m.name, cfg.MetricsAddr, err)
	}
	if host, _, _ := net.SplitHostPort(cfg.MetricsAddr); host != "0.0.0.0" && host != "" {
		t.Errorf("%s: metrics_addr %s: the kubelet probes the pod IP", m.name, cfg.MetricsAddr)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for what, pp := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
		p := pp.probe
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != pp.path {
			t.Errorf("%s: %s probe %+v is not an HTTP GET of %s", m.name, what, p, pp.path)
			continue
		}
		got := p.HTTPGet.Port.IntVal
		if p.HTTPGet.Port.StrVal != "" {
			got = ports[p.HTTPGet.Port.StrVal]
		}
		if fmt.Sprint(got) != port {
			t.Errorf("%s: %s probe port %v (%d), metrics_addr port %s", m.name, what, p.HTTPGet.Port.String(), got, port)
		}
	}

	// Termination grace above the agent's shutdown grace.
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= cfg.ShutdownGrace {
		t.Errorf("%s: terminationGracePeriodSeconds %v not above shutdown_grace %s", m.name, g, cfg.ShutdownGrace)
	}

	// Requests and a memory limit.
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v: want cpu and memory requests and a memory limit", m.name, r)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool { return true }) {
		t.Errorf("%s: no tolerations", m.name)
	}

	// Least privilege: not privileged, no escalation, read-only root
	// filesystem, every capability dropped but DAC_READ_SEARCH.
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("%s: no container securityContext", m.name)
	}
	if sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: securityContext %+v", m.name, sc)
	}
	if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"DAC_READ_SEARCH"}) {
		t.Errorf("%s: capabilities %+v, want drop ALL, add DAC_READ_SEARCH only", m.name, sc.Capabilities)
	}
	if ps := spec.SecurityContext; ps == nil || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: no RuntimeDefault seccomp profile", m.name)
	}
	return cfg
}

// validateAgentConfig parses and validates an agent.yml as `agent
// validate` does (config.Load: decode, defaults, every check), with env as
// the environment, and fails on errors and warnings.
func validateAgentConfig(t *testing.T, name, data string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.ParseWithEnv([]byte(data), name, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("%s does not validate:\n%v\n%s", name, err, data)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: Validate: %v", name, err)
	}
	if w := cfg.Warnings(); len(w) > 0 {
		t.Errorf("%s: warnings %v", name, w)
	}
	return cfg
}

// TestKubernetesManifests: deploy/kubernetes/*.yaml.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repo, "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	streams := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		streams[filepath.Base(f)] = string(b)
	}
	m := decode(t, "deploy/kubernetes", streams)
	if len(m.namespaces) != 1 {
		t.Errorf("%d Namespace objects, want 1", len(m.namespaces))
	}
	cfg := m.check(t)
	// The shipped config routes by the log-type annotation.
	var routed bool
	for _, r := range cfg.Routes {
		routed = routed || strings.Contains(r.Match, "kube.audit.")
	}
	if !routed || cfg.Inputs[0].CRI.Tag != "kube.{annotation:logging.sluice.dev/type}.{namespace}.{pod}.{container}" {
		t.Errorf("routes %+v, tag %q", cfg.Routes, cfg.Inputs[0].CRI.Tag)
	}
}

// TestStrictDecodeRejects: the strict decoding used above does fail on an
// unknown or misspelled field and on a duplicate key.
func TestStrictDecodeRejects(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: b, imagePullPolicy: Always, readinesProbe: {}}]\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\nrules: [{apiGroup: [''], resources: [pods], verbs: [get]}]\n",
	} {
		var tm metav1.TypeMeta
		_ = yaml.Unmarshal([]byte(doc), &tm)
		obj, _ := newObject(tm.APIVersion, tm.Kind)
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err == nil {
			t.Errorf("accepted:\n%s", doc)
		}
	}
}

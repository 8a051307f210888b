package deploy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"

	corev1 "k8s.io/api/core/v1"
)

var chartDir = filepath.Join(repo, "deploy", "helm", "sluice")

// render renders the chart as `helm template` does (Helm's own loader and
// engine, helm.sh/helm/v4, a test-only dependency) with the values file
// (none: the defaults) into release sluice of namespace logging.
func render(t *testing.T, valuesFile string) map[string]string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	vals := map[string]any{}
	if valuesFile != "" {
		if vals, err = common.ReadValuesFile(valuesFile); err != nil {
			t.Fatal(err)
		}
	}
	top, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "sluice", Namespace: "logging", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, top)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	docs := map[string]string{}
	for name, s := range out {
		if strings.HasSuffix(name, ".yaml") && strings.TrimSpace(s) != "" {
			docs[name] = s
		}
	}
	return docs
}

// TestHelmChartDefaults: the chart with its default values renders the
// manifests' objects (no Namespace: Helm's --create-namespace makes it),
// all strictly decodable and passing the same checks.
func TestHelmChartDefaults(t *testing.T) {
	m := decode(t, "helm defaults", render(t, ""))
	cfg := m.check(t)
	if m.daemonSet.Namespace != "logging" || m.daemonSet.Name != "sluice" {
		t.Errorf("daemonset %s/%s", m.daemonSet.Namespace, m.daemonSet.Name)
	}
	if len(cfg.Outputs) != 1 || cfg.Outputs[0].ID != "aggregator" || cfg.DefaultOutput != "aggregator" {
		t.Errorf("outputs %+v default %q", cfg.Outputs, cfg.DefaultOutput)
	}
	c := m.daemonSet.Spec.Template.Spec.Containers[0]
	if c.Image != "sluice:dev" || *m.daemonSet.Spec.Template.Spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("image %s, grace %d", c.Image, *m.daemonSet.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
	if m.daemonSet.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no config checksum annotation")
	}
}

// TestHelmChartExamples: every values file in the chart's examples/
// renders objects that pass the checks, with the values applied: outputs,
// routes, resources, tolerations, node selector, shutdown grace.
func TestHelmChartExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example values: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m := decode(t, "helm "+filepath.Base(f), render(t, f))
			cfg := m.check(t)
			if filepath.Base(f) != "audit-routes.yaml" {
				return
			}
			spec := m.daemonSet.Spec.Template.Spec
			c := spec.Containers[0]
			var ids []string
			for _, o := range cfg.Outputs {
				ids = append(ids, o.ID)
			}
			if !slices.Equal(ids, []string{"apps", "audit"}) || cfg.DefaultOutput != "apps" ||
				len(cfg.Routes) != 1 || cfg.Routes[0].Match != "kube.audit.**" || !slices.Equal(cfg.Routes[0].Outputs, []string{"audit"}) {
				t.Errorf("outputs %v, default %q, routes %+v", ids, cfg.DefaultOutput, cfg.Routes)
			}
			if cfg.Outputs[0].Forward == nil || len(cfg.Outputs[0].Forward.Servers) != 2 || !cfg.Outputs[0].Forward.Servers[1].Standby {
				t.Errorf("apps output %+v", cfg.Outputs[0].Forward)
			}
			if c.Image != "registry.example.com/sluice:1.4.0" || c.Resources.Limits.Memory().String() != "1Gi" ||
				c.Resources.Limits.Cpu().String() != "1" {
				t.Errorf("image %s, limits %v", c.Image, c.Resources.Limits)
			}
			if len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "dedicated" || spec.Tolerations[0].Effect != corev1.TaintEffectNoSchedule ||
				spec.NodeSelector["kubernetes.io/os"] != "linux" {
				t.Errorf("tolerations %+v, nodeSelector %v", spec.Tolerations, spec.NodeSelector)
			}
			if *spec.TerminationGracePeriodSeconds != 55 || cfg.ShutdownGrace.Seconds() != 45 {
				t.Errorf("grace %d, shutdown_grace %s", *spec.TerminationGracePeriodSeconds, cfg.ShutdownGrace)
			}
			cri := cfg.Inputs[0].CRI
			if !slices.Equal(cri.ExcludeNamespaces, []string{"kube-system", "logging"}) || !cri.Kubernetes.OwnerReferences ||
				cri.Kubernetes.MetadataWait.Seconds() != 5 || cfg.LogLevel != "debug" {
				t.Errorf("cri %+v kubernetes %+v", cri, cri.Kubernetes)
			}
			if m.daemonSet.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
				t.Errorf("pod annotations %v", m.daemonSet.Spec.Template.Annotations)
			}
		})
	}
}

// TestHelmChartNoOutputs: values without outputs fail to render, with a
// message.
func TestHelmChartNoOutputs(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := util.ToRenderValues(ch, map[string]any{"outputs": nil}, common.ReleaseOptions{Name: "sluice", Namespace: "logging"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, top); err == nil || !strings.Contains(err.Error(), "at least one output") {
		t.Fatalf("render without outputs: %v", err)
	}
}

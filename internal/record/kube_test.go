package record

import (
	"strings"
	"testing"
)

// kubeValues renders the Kubernetes placeholders of a CRI log path.
type kubeValues struct{}

func (kubeValues) AppendValue(dst []byte, k Kind, key []byte) []byte {
	switch k {
	case Namespace:
		return append(dst, "prod"...)
	case Pod:
		return append(dst, "web-7d9f"...)
	case PodID:
		return append(dst, "0b5c-uid"...)
	case Container:
		return append(dst, "nginx"...)
	case Stream:
		return append(dst, "stderr"...)
	case Label:
		if string(key) == "app" {
			return append(dst, "shop"...)
		}
	}
	return dst
}

// TestCompileAllowKube: AllowKube swaps the container placeholders for the
// Kubernetes ones; without it they are unknown.
func TestCompileAllowKube(t *testing.T) {
	tpl, err := Compile("kube.{namespace}.{pod}.{pod_id}.{container}.{stream}.{label:app}.{field:x}", AllowKube)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tpl.Render(nil, kubeValues{})); got != "kube.prod.web-7d9f.0b5c-uid.nginx.stderr.shop.unknown" {
		t.Fatalf("rendered %q", got)
	}
	for _, k := range []Kind{Namespace, Pod, PodID, Container, Stream, Label, Field} {
		if !tpl.Uses(k) {
			t.Errorf("Uses(%d) false", k)
		}
	}
	if tpl.Uses(Name) || tpl.Uses(ID) {
		t.Error("uses container kinds")
	}
	for _, bad := range []string{"{name}", "{id}", "{short_id}"} {
		_, err := Compile(bad, AllowKube)
		if err == nil || !strings.Contains(err.Error(), "(want {namespace}, {pod}, {pod_id}, {container}, {stream}") {
			t.Errorf("%s with AllowKube: error %v", bad, err)
		}
	}
	for _, bad := range []string{"{namespace}", "{pod}", "{pod_id}", "{container}"} {
		if _, err := Compile(bad, 0); err == nil || !strings.Contains(err.Error(), "unknown placeholder") {
			t.Errorf("%s without AllowKube: error %v", bad, err)
		}
	}
	if _, err := Compile("{tag}", AllowKube); err == nil || !strings.Contains(err.Error(), "{tag} is not available") {
		t.Errorf("{tag} with AllowKube only: error %v", err)
	}
	if _, err := Compile("{tag}.{pod}", AllowKube|AllowTag); err != nil {
		t.Errorf("AllowKube|AllowTag: %v", err)
	}
	var dst []byte
	if n := testing.AllocsPerRun(100, func() { dst = tpl.Render(dst[:0], kubeValues{}) }); n != 0 {
		t.Fatalf("Render allocates %v", n)
	}
}

// TestCompileAnnotation: {annotation:KEY} is a placeholder of AllowKube
// only.
func TestCompileAnnotation(t *testing.T) {
	tpl, err := Compile("k.{annotation:logging.sluice.dev/type}.{label:app}", AllowKube)
	if err != nil {
		t.Fatal(err)
	}
	if !tpl.Uses(Annotation) || !tpl.Uses(Label) {
		t.Error("Uses(Annotation/Label) false")
	}
	if got := string(tpl.Render(nil, kubeValues{})); got != "k.unknown.shop" {
		t.Fatalf("rendered %q", got)
	}
	if _, err := Compile("{annotation:x}", 0); err == nil || !strings.Contains(err.Error(), "unknown placeholder") {
		t.Errorf("{annotation:x} without AllowKube: %v", err)
	}
	if _, err := Compile("{annotation:}", AllowKube); err == nil {
		t.Error("{annotation:} with an empty key accepted")
	}
}

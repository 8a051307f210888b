package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCRIDefaults(t *testing.T) {
	c, err := ParseWithEnv([]byte("inputs: [{id: pods, type: cri}]\noutputs: [{id: o, type: stdout}]\n"), "c.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultCRIInput()
	if got := c.Inputs[0].CRI; got == nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("cri section %s, want %s", spew(got), spew(want))
	}
	if want.Root != "/var/log/pods" || want.Tag != "kube.{namespace}.{pod}.{container}" || want.MaxLineBytes != 1<<20 ||
		want.PollInterval != time.Second || want.CheckpointInterval != time.Second || !*want.ReadFromHead ||
		want.PartialFlushTimeout != 5*time.Second || want.ParseJSON || want.IncludeNamespaces != nil || want.ExcludeNamespaces != nil {
		t.Errorf("defaults: %s", spew(want))
	}
	*DefaultCRIInput().ReadFromHead = false
	if !*DefaultCRIInput().ReadFromHead {
		t.Error("DefaultCRIInput shares its pointers")
	}
	if in := (Input{Type: "cri", CRI: &want}); in.Spec() != any(&want) {
		t.Error("Spec does not return the cri section")
	}
}

func TestCRIEveryKey(t *testing.T) {
	doc := `inputs:
  - id: pods
    type: cri
    root: /mnt/pods
    tag: "k.{namespace}.{pod}.{pod_id}.{container}.{stream}.{field:level}"
    parse_json: false
    parser:
      type: regex
      pattern: '^(?P<t>\S+) (?P<level>\w+) (?P<n>\d+)'
      types: [{field: n, type: int}]
      time_key: t
      time_layout: rfc3339
      time_zone: UTC
      keep_time_key: true
    multiline:
      rules: [java]
      custom: [{name: x, start: '^START', continue: '^ '}]
      flush_timeout: 3s
      max_bytes: 64KiB
      max_lines: 100
    max_line_bytes: 256KiB
    poll_interval: 2s
    checkpoint_interval: 500ms
    read_from_head: false
    partial_flush_timeout: 3s
    rotate_wait: 8s
    max_open_files: 100
    include_namespaces: [team-*, prod]
    exclude_namespaces: ["*-secret"]
    kubernetes:
      enabled: true
      api_server: https://10.0.0.1:6443
      node_name: node-7
      token_file: /run/token
      ca_file: /run/ca.crt
      metadata_wait: 5s
      include_labels: false
      include_annotations: false
      namespace_labels: false
      owner_references: true
      exclude_annotation: example.com/no-logs
outputs: [{id: o, type: stdout}]
`
	c, err := ParseWithEnv([]byte(doc), "c.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := CRIInput{
		Root: "/mnt/pods", Tag: "k.{namespace}.{pod}.{pod_id}.{container}.{stream}.{field:level}",
		Parser: &Parser{Type: "regex", Pattern: `^(?P<t>\S+) (?P<level>\w+) (?P<n>\d+)`,
			Types: []ParserType{{Field: "n", Type: "int"}}, TimeKey: "t", TimeLayout: "rfc3339", TimeZone: "UTC", KeepTimeKey: true},
		Multiline: &Multiline{Rules: []string{"java"}, Custom: []MultilineRule{{Name: "x", Start: "^START", Continue: "^ "}},
			FlushTimeout: 3 * time.Second, MaxBytes: 64 << 10, MaxLines: 100},
		MaxLineBytes: 256 << 10, PollInterval: 2 * time.Second, CheckpointInterval: 500 * time.Millisecond,
		ReadFromHead: ptr(false), PartialFlushTimeout: 3 * time.Second, RotateWait: 8 * time.Second, MaxOpenFiles: 100,
		IncludeNamespaces: []string{"team-*", "prod"}, ExcludeNamespaces: []string{"*-secret"},
		Kubernetes: &CRIKubernetes{
			Enabled: ptr(true), APIServer: "https://10.0.0.1:6443", NodeName: "node-7", TokenFile: "/run/token",
			CAFile: "/run/ca.crt", MetadataWait: 5 * time.Second, IncludeLabels: ptr(false),
			IncludeAnnotations: ptr(false), NamespaceLabels: ptr(false), OwnerReferences: true,
			ExcludeAnnotation: "example.com/no-logs",
		},
	}
	if got := c.Inputs[0].CRI; !reflect.DeepEqual(*got, want) {
		t.Fatalf("got %s\nwant %s", spew(got), spew(want))
	}
	// Every key of the type is above (the agent's types listing agrees).
	for _, ty := range Types() {
		if ty.Name != "cri" {
			continue
		}
		for _, o := range ty.Options() {
			// "kubernetes.enabled" is "enabled:" two levels deeper.
			key, indent := o.Key, "    "
			if i := strings.LastIndexByte(key, '.'); i >= 0 {
				key, indent = key[i+1:], indent+strings.Repeat("  ", strings.Count(o.Key, "."))
			}
			covered := strings.Contains(doc, "\n"+indent+key+":")
			if strings.Contains(o.Key, "[]") { // list items are written in flow style
				covered = strings.Contains(doc, "{"+key+":") || strings.Contains(doc, ", "+key+":")
			}
			if !covered {
				t.Errorf("option %s not covered", o.Key)
			}
		}
	}
}

func TestCRIErrors(t *testing.T) {
	doc := `inputs:
  - id: a
    type: cri
    root: ""
    tag: "kube.{name}"
  - id: b
    type: cri
    tag: "kube.{label:app}"
    max_line_bytes: 0
  - id: c
    type: cri
    tag: "{tag}.x"
    include_namespaces: ["[a-"]
    exclude_namespaces: [ok, ""]
    poll_interval: -1s
outputs: [{id: o, type: stdout}]
`
	_, err := ParseWithEnv([]byte(doc), "c.yml", nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, m := range []string{
		`c.yml:4: inputs[0].cri.root: must not be empty`,
		`c.yml:5: inputs[0].cri.tag: tag template "kube.{name}": unknown placeholder {name} (want {namespace}, {pod}, {pod_id}, {container}, {stream}, {label:KEY}, {annotation:KEY} or {field:KEY})`,
		`c.yml:8: inputs[1].cri.tag: placeholders "{label:KEY}" and "{annotation:KEY}" need the Kubernetes metadata`,
		`c.yml:9: inputs[1].cri.max_line_bytes: must be positive, got 0`,
		`c.yml:12: inputs[2].cri.tag: tag template "{tag}.x": {tag} is not available here`,
		`c.yml:13: inputs[2].cri.include_namespaces[0]: invalid pattern "[a-"`,
		`c.yml:14: inputs[2].cri.exclude_namespaces[1]: empty pattern`,
		`c.yml:15: inputs[2].cri.poll_interval: must be positive, got -1s`,
	} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("missing error\n  %s\ngot:\n%v", m, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 8 {
		t.Errorf("%d problems, want 8:\n%v", n, err)
	}
}

// TestCRIKubernetes: a kubernetes section gets its defaults for the keys
// it does not set; {label:KEY} and {annotation:KEY} need it on; its
// values are checked.
func TestCRIKubernetes(t *testing.T) {
	doc := `inputs:
  - id: a
    type: cri
    tag: "kube.{label:app}.{annotation:logging.sluice.dev/type}"
    kubernetes: {}
  - id: b
    type: cri
    kubernetes:
      enabled: ${KUBE_ON:-false}
      metadata_wait: 0s
outputs: [{id: o, type: stdout}]
`
	c, err := ParseWithEnv([]byte(doc), "c.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultCRIKubernetes()
	if got := c.Inputs[0].CRI.Kubernetes; !reflect.DeepEqual(*got, def) || !got.On() {
		t.Errorf("defaults: %s", spew(got))
	}
	if def.MetadataWait != 2*time.Second || def.ExcludeAnnotation != "sluice.dev/exclude" || !*def.IncludeLabels ||
		!*def.IncludeAnnotations || !*def.NamespaceLabels || def.OwnerReferences || def.APIServer != "" || def.NodeName != "" {
		t.Errorf("DefaultCRIKubernetes %s", spew(def))
	}
	b := c.Inputs[1].CRI.Kubernetes
	if b.On() || b.MetadataWait != 0 {
		t.Errorf("explicit values: %s", spew(b))
	}
	if (*CRIKubernetes)(nil).On() || !(&CRIKubernetes{}).On() {
		t.Error("On: nil is off, a section without enabled is on")
	}

	bad := `inputs:
  - id: a
    type: cri
    tag: "kube.{annotation:x}"
    kubernetes:
      enabled: false
  - id: b
    type: cri
    kubernetes:
      api_server: "10.0.0.1:6443"
      metadata_wait: -1s
outputs: [{id: o, type: stdout}]
`
	_, err = ParseWithEnv([]byte(bad), "c.yml", nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, m := range []string{
		`c.yml:4: inputs[0].cri.tag: placeholders "{label:KEY}" and "{annotation:KEY}" need the Kubernetes metadata`,
		`c.yml:10: inputs[1].cri.kubernetes.api_server: invalid URL "10.0.0.1:6443" (want http(s)://host[:port])`,
		`c.yml:11: inputs[1].cri.kubernetes.metadata_wait: must not be negative, got -1s`,
	} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("missing error\n  %s\ngot:\n%v", m, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("%d problems, want 3:\n%v", n, err)
	}
}

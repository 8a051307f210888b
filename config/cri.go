package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"time"

	"github.com/sluice-agent/sluice/internal/record"
)

// CRIInput tails the Kubernetes container logs the kubelet and the CRI
// runtime (containerd, CRI-O) write:
// <root>/<namespace>_<pod>_<uid>/<container>/<restart>.log.
type CRIInput struct {
	// Root is the kubelet's pod logs directory (KubeletConfiguration
	// podLogsDir). Default /var/log/pods.
	Root string `yaml:"root"`
	// Tag is a template for each event's tag. Placeholders: {namespace},
	// {pod}, {pod_id} (the pod's uid), {container}, {stream},
	// {field:KEY} (a field of the JSON payload), and with kubernetes
	// metadata {label:KEY} (a pod label) and {annotation:KEY} (a pod
	// annotation). A placeholder without a value renders as "unknown".
	// Default "kube.{namespace}.{pod}.{container}".
	Tag string `yaml:"tag"`
	// ParseJSON parses a log payload that is a JSON object into record fields.
	ParseJSON bool `yaml:"parse_json"`
	// Parser parses the log payload into record fields (its keys below);
	// parse_json: true is parser {type: json}.
	Parser *Parser `yaml:"parser"`
	// Multiline joins the lines of one message (a stack trace) per stream.
	Multiline *Multiline `yaml:"multiline"`
	// MaxLineBytes truncates longer (joined) lines; the rest is skipped and
	// counted. Default 1 MiB.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// PollInterval paces discovery's fallback: new pods, containers and
	// rotated files are picked up at once through inotify, and the root is
	// also rescanned every 10 x PollInterval (every PollInterval while some
	// directory could not be watched). Default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// CheckpointInterval is how often offsets are committed. Default 1s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// ReadFromHead reads files found at first start from the beginning.
	// Default true (an agent must not lose what was logged before it started).
	ReadFromHead *bool `yaml:"read_from_head"`
	// PartialFlushTimeout emits a dangling partial (P) line after this long.
	// Default 5s.
	PartialFlushTimeout time.Duration `yaml:"partial_flush_timeout"`
	// RotateWait is how long a rotated file is still read for lines the
	// runtime writes through its old descriptor, while the new file has no
	// data yet (as Fluent Bit's rotate_wait). Default 5s.
	RotateWait time.Duration `yaml:"rotate_wait"`
	// MaxOpenFiles caps the log files this input holds open at once; idle
	// ones are closed and reopened when they change. 0 (the default): the
	// process budget, the soft RLIMIT_NOFILE minus a reserve, shared by
	// every file input.
	MaxOpenFiles int `yaml:"max_open_files"`
	// IncludeNamespaces, if set, reads only the pods of namespaces matching
	// one of these patterns (path.Match syntax: "team-*", "prod").
	IncludeNamespaces []string `yaml:"include_namespaces"`
	// ExcludeNamespaces leaves out the pods of namespaces matching one of
	// these patterns (it wins over IncludeNamespaces).
	ExcludeNamespaces []string `yaml:"exclude_namespaces"`
	// Kubernetes enriches records with pod metadata from the API server
	// (one list+watch of the node's pods per agent). Absent: path
	// metadata only, no API access.
	Kubernetes *CRIKubernetes `yaml:"kubernetes"`
}

// CRIKubernetes is the kubernetes section of a cri input: pod metadata
// (labels, annotations, owner, image, node, namespace labels) from a
// watch of the pods of the agent's node.
type CRIKubernetes struct {
	// Enabled turns the metadata on. Default true when the section is
	// present (false: the section is kept but unused, e.g. from an env
	// variable).
	Enabled *bool `yaml:"enabled"`
	// APIServer is the API server's URL. Default: in-cluster
	// (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with the
	// service account's token and CA).
	APIServer string `yaml:"api_server"`
	// NodeName is the node whose pods are watched. Default: the NODE_NAME
	// environment variable (the DaemonSet sets it from spec.nodeName).
	NodeName string `yaml:"node_name"`
	// TokenFile replaces the service account's token file
	// (/var/run/secrets/kubernetes.io/serviceaccount/token).
	TokenFile string `yaml:"token_file"`
	// CAFile replaces the service account's CA file
	// (/var/run/secrets/kubernetes.io/serviceaccount/ca.crt).
	CAFile string `yaml:"ca_file"`
	// MetadataWait is how long the lines of a pod the API cache does not
	// know yet wait for its metadata, per pod (at start, until the first
	// list, as for a pod created later); the other pods are read
	// meanwhile. After it they are shipped with the path's metadata and
	// later lines are enriched. 0: no wait. Default 2s.
	MetadataWait time.Duration `yaml:"metadata_wait"`
	// IncludeLabels adds kubernetes.labels. Default true.
	IncludeLabels *bool `yaml:"include_labels"`
	// IncludeAnnotations adds kubernetes.annotations. Default true.
	IncludeAnnotations *bool `yaml:"include_annotations"`
	// NamespaceLabels adds kubernetes_namespace.labels (and watches the
	// namespaces, which needs list and watch on them). Default true.
	NamespaceLabels *bool `yaml:"namespace_labels"`
	// OwnerReferences adds kubernetes.ownerReferences, the pod's raw
	// owner references (Fluent Bit's owner_references). Default false;
	// kubernetes.owner, the resolved workload, is always there.
	OwnerReferences bool `yaml:"owner_references"`
	// ExcludeAnnotation: a pod with this annotation set to "true" is not
	// read (nor one of its containers with <annotation>-<container>).
	// Empty: no exclusion by annotation. Default "sluice.dev/exclude".
	ExcludeAnnotation string `yaml:"exclude_annotation"`
}

// DefaultCRIKubernetes returns a CRIKubernetes with every default applied.
func DefaultCRIKubernetes() CRIKubernetes {
	return CRIKubernetes{
		Enabled:            ptr(true),
		MetadataWait:       2 * time.Second,
		IncludeLabels:      ptr(true),
		IncludeAnnotations: ptr(true),
		NamespaceLabels:    ptr(true),
		ExcludeAnnotation:  "sluice.dev/exclude",
	}
}

// On reports whether the section enables the metadata (present, Enabled
// not false).
func (k *CRIKubernetes) On() bool { return k != nil && (k.Enabled == nil || *k.Enabled) }

// decoded applies the kubernetes section's defaults to the keys the file
// did not set.
func (c *CRIInput) decoded(set func(key string) bool) {
	k := c.Kubernetes
	if k == nil {
		return
	}
	def := DefaultCRIKubernetes()
	if !set("kubernetes.enabled") {
		k.Enabled = def.Enabled
	}
	if !set("kubernetes.metadata_wait") {
		k.MetadataWait = def.MetadataWait
	}
	if !set("kubernetes.include_labels") {
		k.IncludeLabels = def.IncludeLabels
	}
	if !set("kubernetes.include_annotations") {
		k.IncludeAnnotations = def.IncludeAnnotations
	}
	if !set("kubernetes.namespace_labels") {
		k.NamespaceLabels = def.NamespaceLabels
	}
	if !set("kubernetes.exclude_annotation") {
		k.ExcludeAnnotation = def.ExcludeAnnotation
	}
}

// DefaultCRIInput returns a CRIInput with every default applied.
func DefaultCRIInput() CRIInput {
	return CRIInput{
		Root:                "/var/log/pods",
		Tag:                 "kube.{namespace}.{pod}.{container}",
		MaxLineBytes:        1 << 20,
		PollInterval:        time.Second,
		CheckpointInterval:  time.Second,
		ReadFromHead:        ptr(true),
		PartialFlushTimeout: 5 * time.Second,
		RotateWait:          5 * time.Second,
	}
}

func (c *CRIInput) setDefaults() { *c = DefaultCRIInput() }

func (c *CRIInput) check(v *checker, p string) {
	if c.Root == "" {
		v.errorf(p+".root", "must not be empty")
	}
	if c.Tag == "" {
		v.errorf(p+".tag", "must not be empty")
	} else if _, err := CompileCRITag(c.Tag, c.Kubernetes.On()); err != nil {
		v.invalid(p+".tag", c.Tag, "tag template", err)
	}
	if k := c.Kubernetes; k.On() {
		kp := p + ".kubernetes"
		if k.APIServer != "" {
			if u, err := url.Parse(k.APIServer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.errorf(kp+".api_server", "invalid URL %s (want http(s)://host[:port])", v.q(kp+".api_server", k.APIServer))
			}
		}
		if k.MetadataWait < 0 {
			v.errorf(kp+".metadata_wait", "must not be negative, got %s", k.MetadataWait)
		}
	}
	v.positiveInt(p+".max_line_bytes", c.MaxLineBytes)
	v.positive(p+".poll_interval", c.PollInterval)
	v.positive(p+".checkpoint_interval", c.CheckpointInterval)
	v.positive(p+".partial_flush_timeout", c.PartialFlushTimeout)
	v.positive(p+".rotate_wait", c.RotateWait)
	v.checkParser(p, c.Parser, c.ParseJSON)
	v.checkMultiline(p, c.Multiline, c.MaxLineBytes)
	if c.MaxOpenFiles < 0 {
		v.errorf(p+".max_open_files", "must not be negative, got %d", c.MaxOpenFiles)
	}
	for _, l := range []struct {
		key  string
		pats []string
	}{{"include_namespaces", c.IncludeNamespaces}, {"exclude_namespaces", c.ExcludeNamespaces}} {
		for i, pat := range l.pats {
			if err := checkNamespacePattern(pat); err != nil {
				v.errorf(p+"."+l.key+"["+strconv.Itoa(i)+"]", "%v", err)
			}
		}
	}
}

// CompileCRITag compiles a cri input's tag template: the Kubernetes
// placeholders (record.AllowKube). {label:KEY} (a pod label) and
// {annotation:KEY} (a pod annotation) need the Kubernetes metadata (kube:
// the input's kubernetes section is on).
func CompileCRITag(s string, kube bool) (*record.Template, error) {
	tpl, err := record.Compile(s, record.AllowKube)
	if err != nil {
		return nil, err
	}
	if !kube && (tpl.Uses(record.Label) || tpl.Uses(record.Annotation)) {
		return nil, errors.New(`placeholders "{label:KEY}" and "{annotation:KEY}" need the Kubernetes metadata (set the input's kubernetes section; without it use {namespace}, {pod}, {pod_id}, {container}, {stream} or {field:KEY})`)
	}
	return tpl, nil
}

// checkNamespacePattern checks one include_namespaces/exclude_namespaces
// pattern.
func checkNamespacePattern(pat string) error {
	if pat == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(pat, ""); err != nil {
		return fmt.Errorf("invalid pattern %q (path.Match syntax: *, ?, [a-z])", pat)
	}
	return nil
}

package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/internal/kube"
	"github.com/sluice-agent/sluice/internal/multiline"
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

// Defaults for zero config values (the config loader applies the same).
const (
	DefaultRoot                = "/var/log/pods"
	DefaultTag                 = "kube.{namespace}.{pod}.{container}"
	DefaultMaxLineBytes        = 1 << 20
	DefaultPollInterval        = time.Second
	DefaultCheckpointInterval  = time.Second
	DefaultPartialFlushTimeout = 5 * time.Second
)

// ErrRunTwice is returned by a second call to Run.
var ErrRunTwice = tail.ErrRunTwice

// Input tails Kubernetes CRI container logs. Create it with New and call
// Run once; it is not reusable after Run returns.
type Input struct {
	t       *tail.Tail
	tpl     *record.Template
	include []string
	exclude []string
	log     *slog.Logger
	kube    kubeSettings

	// Record building, on the tail's reader goroutine.
	parser  parser
	layout  layout
	payload *parse.Payload // parser (or parse_json) and {field:KEY} lookups
	tv      tagValues
	rec     []byte
	tagBuf  []byte
	ev      pipeline.Event
}

// kubeSettings are the kubernetes section's, resolved.
type kubeSettings struct {
	on                                       bool
	cfg                                      kube.Config
	node                                     string
	wait                                     time.Duration
	labels, annotations, nsLabels, ownerRefs bool
	exclude                                  string // the exclusion annotation ("": none)

	// client is the shared cache, set by Run before the tail starts (so
	// the reader goroutine sees it); nil before and without the section.
	client *kube.Client
	// warned: a hold ran out before the cache's first list (logged once).
	warned bool
}

// New returns a cri input. State lives in <dataDir>/inputs/<id>/. Zero
// values in cfg mean the documented defaults, except in cfg.Kubernetes,
// whose values are taken as they are (config.DefaultCRIKubernetes has its
// defaults; nil pointers there mean true). log may be nil (discard), set
// may be nil (a private set).
func New(id string, cfg config.CRIInput, dataDir string, r *pipeline.Router, log *slog.Logger, set *metrics.Set) (*Input, error) {
	if id == "" {
		return nil, errors.New("cri input: empty id")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	in := &Input{
		include: cfg.IncludeNamespaces,
		exclude: cfg.ExcludeNamespaces,
		log:     log,
	}
	in.layout.in = in
	var err error
	if in.payload, err = parse.NewPayload(id, cfg.Parser.ParseConfig(), cfg.ParseJSON, set); err != nil {
		return nil, fmt.Errorf("cri input %s: %w", id, err)
	}
	if err = in.kube.setup(cfg.Kubernetes, log, set); err != nil {
		return nil, fmt.Errorf("cri input %s: kubernetes: %w", id, err)
	}
	if in.tpl, err = config.CompileCRITag(orDefault(cfg.Tag, DefaultTag), in.kube.on); err != nil {
		return nil, fmt.Errorf("cri input %s: %w", id, err)
	}
	maxLine := orDefault(cfg.MaxLineBytes, DefaultMaxLineBytes)
	in.t, err = tail.New(tail.Config{
		ID:                  id,
		Root:                orDefault(cfg.Root, DefaultRoot),
		DataDir:             dataDir,
		MaxLineBytes:        maxLine,
		PollInterval:        orDefault(cfg.PollInterval, DefaultPollInterval),
		CheckpointInterval:  orDefault(cfg.CheckpointInterval, DefaultCheckpointInterval),
		PartialFlushTimeout: orDefault(cfg.PartialFlushTimeout, DefaultPartialFlushTimeout),
		RotateWait:          cfg.RotateWait, // 0: tail.DefaultRotateWait
		MaxOpenFiles:        cfg.MaxOpenFiles,
		StartAtEnd:          cfg.ReadFromHead != nil && !*cfg.ReadFromHead,
		Multiline:           multilineConfig(cfg.Multiline, maxLine),
		Format:              &in.parser,
		Layout:              &in.layout,
		Log:                 log, // the agent labels it input=<id>
		Metrics:             set,
	}, r)
	if err != nil {
		return nil, fmt.Errorf("cri input %s: %w", id, err)
	}
	return in, nil
}

// setup resolves the kubernetes section; the client is checked (URL,
// node, CA file) but not started.
func (k *kubeSettings) setup(c *config.CRIKubernetes, log *slog.Logger, set *metrics.Set) error {
	if !c.On() {
		return nil
	}
	isTrue := func(b *bool) bool { return b == nil || *b }
	*k = kubeSettings{
		on: true, node: c.NodeName, wait: c.MetadataWait, exclude: c.ExcludeAnnotation,
		labels: isTrue(c.IncludeLabels), annotations: isTrue(c.IncludeAnnotations),
		nsLabels: isTrue(c.NamespaceLabels), ownerRefs: c.OwnerReferences,
	}
	if k.node == "" {
		k.node = os.Getenv("NODE_NAME")
	}
	if k.node == "" {
		return errors.New("no node name: set node_name, or NODE_NAME from the downward API (fieldRef spec.nodeName)")
	}
	k.cfg = kube.Config{
		APIServer: c.APIServer, NodeName: k.node, Namespaces: k.nsLabels,
		TokenFile: c.TokenFile, CAFile: c.CAFile,
		Log: log.With("component", "kube"), Metrics: set,
	}
	_, err := kube.New(k.cfg) // the settings' errors now, not at Run
	return err
}

// multilineConfig is the joiners' configuration of the multiline section
// (nil: none), max_bytes defaulting to min(1 MiB, max_line_bytes).
func multilineConfig(m *config.Multiline, maxLine int) *multiline.Config {
	if m == nil {
		return nil
	}
	c := m.JoinerConfig()
	if c.MaxBytes == 0 {
		c.MaxBytes = min(multiline.DefaultMaxBytes, maxLine)
	}
	return &c
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run tails files until ctx is cancelled, then flushes what was read,
// syncs the queues, writes the final checkpoint and returns. It returns
// only after every goroutine it started has exited. The error is nil
// unless the final flush or checkpoint failed (the lines concerned are then
// read again at the next start).
//
// With the kubernetes section, Run first joins the agent's shared pod
// cache (kube.Acquire: one list+watch per agent). It does not wait for it:
// each pod the cache does not know yet waits for its metadata (container.Hold),
// at start as for a pod created later.
func (in *Input) Run(ctx context.Context) error {
	if k := &in.kube; k.on && k.client == nil {
		c, release, err := kube.Acquire(k.cfg)
		if err != nil {
			return fmt.Errorf("cri input: kubernetes: %w", err)
		}
		defer release()
		k.client = c
	}
	return in.t.Run(ctx)
}

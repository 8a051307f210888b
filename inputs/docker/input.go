package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/internal/multiline"
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

// Defaults for zero config values (the config loader applies the same).
const (
	DefaultRoot                = "/var/lib/docker/containers"
	DefaultTag                 = "docker.{name}"
	DefaultMaxLineBytes        = 1 << 20
	DefaultPollInterval        = time.Second
	DefaultCheckpointInterval  = time.Second
	DefaultPartialFlushTimeout = 5 * time.Second
)

// ErrRunTwice is returned by a second call to Run.
var ErrRunTwice = tail.ErrRunTwice

// Input tails Docker json-file logs. Create it with New and call Run once;
// it is not reusable after Run returns.
type Input struct {
	t      *tail.Tail
	labels bool
	tpl    *record.Template
	self   string // the agent's own container id, never read ("": none)

	// Record building, on the tail's reader goroutine.
	parser  parser
	payload *parse.Payload // parser (or parse_json) and {field:KEY} lookups
	tv      tagValues
	rec     []byte
	tagBuf  []byte
	ev      pipeline.Event
}

// New returns a docker input. State lives in <dataDir>/inputs/<id>/. Zero
// values in cfg mean the documented defaults. log may be nil (discard), set
// may be nil (a private set).
func New(id string, cfg config.DockerInput, dataDir string, r *pipeline.Router, log *slog.Logger, set *metrics.Set) (*Input, error) {
	if id == "" {
		return nil, errors.New("docker input: empty id")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := &Input{
		labels: cfg.IncludeLabels == nil || *cfg.IncludeLabels,
	}
	var err error
	if in.payload, err = parse.NewPayload(id, cfg.Parser.ParseConfig(), cfg.ParseJSON, set); err != nil {
		return nil, fmt.Errorf("docker input %s: %w", id, err)
	}
	if in.self = selfContainerID(); in.self != "" {
		log.Info("not reading the agent's own container", "container_id", in.self, "override", EnvSelfContainerID)
	}
	tag := orDefault(cfg.Tag, DefaultTag)
	if in.tpl, err = record.Compile(tag, 0); err != nil {
		return nil, fmt.Errorf("docker input %s: %w", id, err)
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
		Layout:              layout{in},
		Log:                 log, // the agent labels it input=<id>
		Metrics:             set,
	}, r)
	if err != nil {
		return nil, fmt.Errorf("docker input %s: %w", id, err)
	}
	return in, nil
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
func (in *Input) Run(ctx context.Context) error { return in.t.Run(ctx) }

package agent

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/inputs/cri"
	"github.com/sluice-agent/sluice/inputs/docker"
	fwdin "github.com/sluice-agent/sluice/inputs/forward"
	"github.com/sluice-agent/sluice/outputs/cloudwatchlogs"
	"github.com/sluice-agent/sluice/outputs/elasticsearch"
	"github.com/sluice-agent/sluice/outputs/file"
	"github.com/sluice-agent/sluice/outputs/firehose"
	fwdout "github.com/sluice-agent/sluice/outputs/forward"
	"github.com/sluice-agent/sluice/outputs/kafka"
	"github.com/sluice-agent/sluice/outputs/kinesis"
	s3out "github.com/sluice-agent/sluice/outputs/s3"
	"github.com/sluice-agent/sluice/outputs/stdout"
	"github.com/sluice-agent/sluice/pipeline"
)

// runner is what every input, output and buffer is.
type runner interface {
	Run(ctx context.Context) error
}

// env is what a constructor gets besides its type's settings. Every
// component gets a metrics set of its own.
type env struct {
	id      string
	dataDir string
	log     *slog.Logger // already has the component's id
	metrics *metrics.Set
	router  *pipeline.Router // inputs: the current router
	queue   *buffer.Queue    // outputs: the output's queue
	// delivery is an output's delivery section (batching, retries, dead
	// letters) for the outputs built on outputs/internal/delivery.
	delivery config.Delivery
}

// constructor builds one component of a type from its settings (the
// section config.Input.Spec or config.Output.Spec returns).
type constructor struct {
	spec  reflect.Type // the settings' Go type, e.g. *config.DockerInput
	build func(env, any) (runner, error)
}

// typed makes a constructor for settings of type *C.
func typed[C any](f func(e env, c *C) (runner, error)) constructor {
	return constructor{
		spec:  reflect.TypeFor[*C](),
		build: func(e env, s any) (runner, error) { return f(e, s.(*C)) },
	}
}

// The constructor of every component type, by type name. config declares
// the types and their settings (see config.Types); TestEveryTypeHasOne
// checks that both agree.
var (
	inputConstructors = map[string]constructor{
		"docker": typed(func(e env, c *config.DockerInput) (runner, error) {
			return docker.New(e.id, *c, e.dataDir, e.router, e.log, e.metrics)
		}),
		"forward": typed(func(e env, c *config.ForwardInput) (runner, error) {
			return fwdin.New(e.id, *c, e.router, e.log, e.metrics)
		}),
		"cri": typed(func(e env, c *config.CRIInput) (runner, error) {
			return cri.New(e.id, *c, e.dataDir, e.router, e.log, e.metrics)
		}),
	}
	outputConstructors = map[string]constructor{
		"forward": typed(func(e env, c *config.ForwardOutput) (runner, error) {
			return fwdout.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
		"file": typed(func(e env, c *config.FileOutput) (runner, error) {
			return file.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
		"stdout": typed(func(e env, _ *config.StdoutOutput) (runner, error) {
			return stdout.New(e.id, e.queue, e.log, e.metrics), nil
		}),
		"s3": typed(func(e env, c *config.S3Output) (runner, error) {
			return s3out.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
		"cloudwatch_logs": typed(func(e env, c *config.CloudWatchLogsOutput) (runner, error) {
			return cloudwatchlogs.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
		"kinesis": typed(func(e env, c *config.KinesisOutput) (runner, error) {
			return kinesis.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
		"firehose": typed(func(e env, c *config.FirehoseOutput) (runner, error) {
			return firehose.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
		"elasticsearch": typed(func(e env, c *config.ElasticsearchOutput) (runner, error) {
			return elasticsearch.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
		"kafka": typed(func(e env, c *config.KafkaOutput) (runner, error) {
			return kafka.New(e.id, *c, e.delivery, e.dataDir, e.queue, e.log, e.metrics)
		}),
	}
)

// constructorFor returns the constructor of a component whose settings
// are spec, checking that the settings are of the constructor's type.
func constructorFor(table map[string]constructor, typ string, spec any) (constructor, error) {
	c, ok := table[typ]
	switch {
	case !ok:
		return c, fmt.Errorf("no constructor for type %q", typ)
	case spec == nil:
		return c, fmt.Errorf("type %s without its settings", typ)
	case reflect.TypeOf(spec) != c.spec:
		return c, fmt.Errorf("type %s: settings are %T, want %s", typ, spec, c.spec)
	}
	return c, nil
}

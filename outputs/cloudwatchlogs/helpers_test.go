package cloudwatchlogs

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
	"github.com/sluice-agent/sluice/outputs/internal/awsout/awstest"
)

// testConfig points at fake with its keys: group /sluice/{tag}, stream
// {tag}.
func testConfig(fake *awsfake.Server) config.CloudWatchLogsOutput {
	c := config.DefaultCloudWatchLogsOutput()
	c.LogGroupName = "/sluice/{tag}"
	c.LogStreamName = "{tag}"
	c.Endpoint = fake.URL()
	c.Region = awsfake.Region
	c.AccessKeyID = awsfake.AccessKeyID
	c.SecretAccessKey = config.Secret(awsfake.SecretAccessKey)
	return c
}

type run struct {
	o    *Output
	q    *buffer.Queue
	set  *metrics.Set
	logs *awstest.LogBuffer
	dir  string
	stop func()
}

func start(t testing.TB, cfg config.CloudWatchLogsOutput, d config.Delivery) *run {
	t.Helper()
	dir := t.TempDir()
	r := &run{q: awstest.OpenQueue(t, dir+"/q"), set: metrics.NewSet(), logs: &awstest.LogBuffer{}, dir: dir}
	o, err := New("cwl", cfg, d, dir, r.q, r.logs.Logger(), r.set)
	if err != nil {
		t.Fatal(err)
	}
	r.o = o
	r.stop = awstest.Start(t, o)
	return r
}

func (r *run) counter(name string) uint64 { return r.set.GetOrCreateCounter(name).Get() }

// seqs returns the seq of every stored event of group/stream.
func seqs(t testing.TB, fake *awsfake.Server, group, stream string) []int {
	var out []int
	for _, e := range fake.LogEvents(group, stream) {
		out = append(out, awstest.Seq(t, []byte(e.Message)))
	}
	return out
}

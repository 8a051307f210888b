package kafka

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// dockerRecord is a record as the docker input makes it (~260 bytes of
// JSON out).
func dockerRecord(seq int) []byte {
	r := msgp.AppendMapHeader(nil, 6)
	r = msgp.AppendString(msgp.AppendString(r, "log"), "2024-01-02T03:04:05.123Z INFO  [http] GET /api/v1/orders/12345 200 12ms user=alice trace=4bf92f3577b34da6 \"quoted\"\n")
	r = msgp.AppendString(msgp.AppendString(r, "stream"), "stdout")
	r = msgp.AppendString(msgp.AppendString(r, "container_name"), "shop-frontend-1")
	r = msgp.AppendString(msgp.AppendString(r, "container_id"), "4bf92f3577b34da6a3ce929d0e0e4736a3ce929d0e0e4736a3ce929d0e0e4736")
	r = msgp.AppendString(msgp.AppendString(r, "log_type"), []string{"app", "access", "audit"}[seq%3])
	return msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
}

func benchEvents(n int) []*delivery.Event {
	evs := make([]*delivery.Event, n)
	now := time.Now().UnixNano()
	for i := range evs {
		evs[i] = &delivery.Event{Tag: []byte("docker.shop-frontend-1"), Time: now + int64(i), Record: dockerRecord(i)}
	}
	return evs
}

func benchSink(b *testing.B, c config.KafkaOutput) *sink {
	b.Helper()
	c.Brokers = []string{"127.0.0.1:1"} // never dialed: Encode only
	s, err := newSink("k", &c, 4, slog.New(slog.DiscardHandler), nilSet())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.close)
	return s
}

// BenchmarkEncode measures Encoder.Add: one op is one event made into a
// record (topic, key, headers, JSON or raw value); MB/s counts the value
// bytes. It allocates nothing per event.
func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  func(*config.KafkaOutput)
	}{
		{"json", nil},
		{"json_topic_per_type_key_headers", func(c *config.KafkaOutput) {
			c.Topic = "logs-{field:log_type}"
			c.KeyField = "container_id"
			c.Headers = []config.KafkaHeader{{Name: "env", Value: "prod"}, {Name: "container", Field: "container_name"}}
		}},
		{"raw", func(c *config.KafkaOutput) { c.Format = "raw" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := config.DefaultKafkaOutput()
			if bc.cfg != nil {
				bc.cfg(&c)
			}
			e := benchSink(b, c).NewEncoder().(*encoder)
			evs := benchEvents(1000)
			for _, ev := range evs { // warm up, and size one event
				if err := e.Add(ev); err != nil {
					b.Fatal(err)
				}
			}
			var value int
			for i := range e.n {
				value += len(e.f.recs[i].Value)
			}
			e.Reset()
			b.SetBytes(int64(value / len(evs)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := e.Add(evs[i%len(evs)])
				if errors.Is(err, delivery.ErrFull) || e.Full() {
					e.Reset()
					continue
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkSend measures Add plus Send of batches of 2000 events to an
// in-process cluster (acks all, idempotent, zstd): one op is one event,
// acknowledged. The cluster's CPU is in the figure (it shares the
// process), so it is an upper bound of the output's cost.
func BenchmarkSend(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3), kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cfg := config.DefaultKafkaOutput()
	cfg.Brokers = c.ListenAddrs()
	s, err := newSink("k", &cfg, 4, slog.New(slog.DiscardHandler), nilSet())
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	e := s.NewEncoder().(*encoder)
	evs := benchEvents(2000)
	res := make([]delivery.Result, len(evs))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		for _, ev := range evs {
			if err := e.Add(ev); err != nil {
				b.Fatal(err)
			}
		}
		clear(res)
		if err := s.Send(ctx, e, res); err != nil {
			b.Fatal(err)
		}
		e.Reset()
		i += len(evs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func nilSet() *metrics.Set { return metrics.NewSet() }

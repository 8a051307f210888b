package firehose

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
	"github.com/sluice-agent/sluice/outputs/internal/awsout/awstest"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

func benchOutput(b *testing.B, edit func(*testing.B, any)) *Output {
	c := config.DefaultFirehoseOutput()
	c.DeliveryStreamName = "s"
	c.Endpoint, c.Region, c.AccessKeyID, c.SecretAccessKey = "http://127.0.0.1:1", "us-east-1", "AKID", "secret"
	if edit != nil {
		edit(b, &c)
	}
	o, err := New("bench", c, config.Delivery{}, "", awstest.OpenQueue(b, b.TempDir()), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return o
}

// benchEncoder adds b.N events of about 130 bytes (the suite's records)
// to one encoder, resetting it whenever it is full.
func benchEncoder(b *testing.B, o *Output) {
	enc := o.s.NewEncoder()
	evs := make([]delivery.Event, 1000)
	for i := range evs {
		evs[i] = delivery.Event{Tag: []byte(awstest.Tag), Time: awstest.Time(i), Record: awstest.Record(i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		ev := &evs[i%len(evs)]
		err := enc.Add(ev)
		if errors.Is(err, delivery.ErrFull) {
			enc.Reset()
			err = enc.Add(ev)
		}
		if err != nil {
			b.Fatal(err)
		}
		if enc.Full() {
			enc.Reset()
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func BenchmarkEncoder(b *testing.B) { benchEncoder(b, benchOutput(b, nil)) }

// BenchmarkSend fills whole batches and sends them through the SDK to
// awsfake (which decodes, checks the signature and stores): the cost of
// a request end to end on loopback, fake included.
func BenchmarkSend(b *testing.B) {
	fake := awsfake.Start(b)
	fake.SetDiscard(true)
	fake.CreateDeliveryStream("s")
	o := benchOutput(b, func(b *testing.B, v any) {
		c := v.(*config.FirehoseOutput)
		c.Endpoint, c.AccessKeyID, c.SecretAccessKey = fake.URL(), awsfake.AccessKeyID, config.Secret(awsfake.SecretAccessKey)
	})
	enc := o.s.NewEncoder()
	evs := make([]delivery.Event, 1000)
	for i := range evs {
		evs[i] = delivery.Event{Tag: []byte(awstest.Tag), Time: awstest.Time(i), Record: awstest.Record(i)}
	}
	var res []delivery.Result
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for i := 0; i < b.N; i++ {
		ev := &evs[i%len(evs)]
		full := errors.Is(enc.Add(ev), delivery.ErrFull)
		if full || enc.Full() || i == b.N-1 {
			res = append(res[:0], make([]delivery.Result, enc.Len())...)
			if err := o.s.Send(context.Background(), enc, res); err != nil {
				b.Fatal(err)
			}
			sent += enc.Len()
			enc.Reset()
			if full {
				enc.Add(ev)
			}
		}
	}
	b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "events/s")
}

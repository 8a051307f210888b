package elasticsearch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// dockerRecord is a record as the docker input makes it (~260 bytes of
// JSON out).
func dockerRecord(seq int) []byte {
	r := msgp.AppendMapHeader(nil, 5)
	r = msgp.AppendString(msgp.AppendString(r, "log"), "2024-01-02T03:04:05.123Z INFO  [http] GET /api/v1/orders/12345 200 12ms user=alice trace=4bf92f3577b34da6 \"quoted\"")
	r = msgp.AppendString(msgp.AppendString(r, "stream"), "stdout")
	r = msgp.AppendString(msgp.AppendString(r, "container_name"), "shop-frontend-1")
	r = msgp.AppendString(msgp.AppendString(r, "container_id"), "4bf92f3577b34da6a3ce929d0e0e4736a3ce929d0e0e4736a3ce929d0e0e4736")
	return msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
}

// BenchmarkEncode measures Encoder.Add: one op is one event (action line
// with its target and id, document); MB/s counts the NDJSON produced.
func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  func(*config.ElasticsearchOutput)
	}{
		{"stable_ids", nil},
		{"no_ids", func(c *config.ElasticsearchOutput) { c.IDMode = "none" }},
		{"field_index", func(c *config.ElasticsearchOutput) { c.Index = "logs-{field:container_name}-%Y.%m.%d" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := esConfig("http://127.0.0.1:9200")
			if bc.cfg != nil {
				bc.cfg(&c)
			}
			e := testSink(b, "es", c).NewEncoder().(*encoder)
			evs := make([]*delivery.Event, 1000)
			for i := range evs {
				evs[i] = event(i, "docker.shop-frontend-1", dockerRecord(i))
			}
			for _, ev := range evs { // warm up, and size one event
				if err := e.Add(ev); err != nil {
					b.Fatal(err)
				}
			}
			per := len(e.body) / len(evs)
			e.Reset()
			b.SetBytes(int64(per))
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

// BenchmarkCompress measures the gzip of a full bulk body (level 1), per
// event.
func BenchmarkCompress(b *testing.B) {
	e := testSink(b, "es", esConfig("http://127.0.0.1:9200")).NewEncoder().(*encoder)
	for i := range 5000 {
		if err := e.Add(event(i, "docker.shop-frontend-1", dockerRecord(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(e.body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.compress(e.body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*5000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkParseResponse measures decoding a 5000-item answer as
// filter_path leaves it, per event.
func BenchmarkParseResponse(b *testing.B) {
	body := []byte(`{"errors":false,"items":[` + strings.Repeat(`{"create":{"status":201}},`, 4999) + `{"create":{"status":201}}]}`)
	var r bulkResponse
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.parse(body); err != nil || len(r.Items) != 5000 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*5000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSend measures the output's whole per-batch work for 5000
// events: encode, gzip, POST to an in-process server that discards the
// body and answers 5000 items, parse and classify. ns/event is the CPU
// budget the output spends per event (the server's share included).
func BenchmarkSend(b *testing.B) {
	answer := []byte(`{"took":3,"errors":false,"items":[` + strings.Repeat(`{"create":{"status":201}},`, 4999) + `{"create":{"status":201}}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	defer srv.Close()
	s := testSink(b, "es", esConfig(srv.URL))
	e := s.NewEncoder().(*encoder)
	evs := make([]*delivery.Event, 5000)
	for i := range evs {
		evs[i] = event(i, "docker.shop-frontend-1", dockerRecord(i))
	}
	res := make([]delivery.Result, len(evs))
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		for _, ev := range evs {
			if err := e.Add(ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Send(context.Background(), e, res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

package cri

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/inputs/internal/tailtest"
	"github.com/sluice-agent/sluice/internal/kube"
	"github.com/sluice-agent/sluice/internal/kube/kubetest"
)

// payload200 is a typical 200-byte application log line (as in the docker
// input's benchmarks).
var payload200 = `2024-01-02T03:04:05.123Z INFO  http: GET /api/v1/orders/12345?expand=items&limit=50 200 OK 12.3ms ` +
	`user=42 trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7 bytes=5123 ua=curl/8.5.0 ...`

// benchLine returns a CRI line (without "\n") whose content is exactly
// 200 bytes, padded or cut, with containerd's timestamp.
func benchLine(payload, tag string) []byte {
	payload = (payload + strings.Repeat(".", 200))[:200]
	return []byte("2024-01-02T03:04:05.123456789Z stdout " + tag + " " + payload)
}

// BenchmarkParse parses one 200-byte-payload CRI line (F, or P).
func BenchmarkParse(b *testing.B) {
	for _, tag := range []string{"F", "P"} {
		b.Run(tag, func(b *testing.B) {
			line := benchLine(payload200, tag)
			var p parser
			var l tail.Line
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			start := time.Now()
			for b.Loop() {
				if err := p.Parse(line, &l); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
		})
	}
}

// discardQueue accepts every chunk and keeps nothing.
type discardQueue struct{}

func (discardQueue) Append(context.Context, []byte, int, []byte) error { return nil }
func (discardQueue) Sync() error                                       { return nil }
func (discardQueue) Mark() uint64                                      { return 1 }
func (discardQueue) SyncTo(uint64) error                               { return nil }

// BenchmarkReadParseAdd measures the whole hot path for 200-byte payload
// lines, as the docker input's benchmark of the same name: pread, split,
// parse, join, record (with the kubernetes map), tag, Writer.Add, Flush
// per turn. One op is one line.
//
// Cases: plain (text payload, default tag), parse_json (JSON payload
// merged into the record), field_tag (JSON payload, tag
// "{field:level}.{namespace}"), joined (every line split by the runtime
// into two P pieces and an F), and kube (plain with the Kubernetes
// metadata of a pod with 5 labels and 3 annotations, namespace labels,
// tag "kube.{label:app}.{namespace}": what enrichment costs per line
// against plain).
func BenchmarkReadParseAdd(b *testing.B) {
	jsonPayload := `{"level":"info","ts":"2024-01-02T03:04:05.123Z","msg":"GET /api/v1/orders/12345 200","user":42,"ms":12.3,"trace":"4bf92f3577b34da6a3ce929d0e0e4736","ok":true,"x":"`
	jsonPayload += strings.Repeat("y", 198-len(jsonPayload)) + `"}`
	for _, bc := range []struct {
		name, payload, tag string
		parseJSON, split   bool
		kube               bool
	}{
		{"plain", payload200, "", false, false, false},
		{"parse_json", jsonPayload, "", true, false, false},
		{"field_tag", jsonPayload, "{field:level}.{namespace}", false, false, false},
		{"joined", payload200, "", false, true, false},
		{"kube", payload200, "kube.{label:app}.{namespace}", false, false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarness(b)
			path := h.container("shop", "web-7d9f8b6c5-x2x4z", uidA, "nginx")
			line := string(benchLine(bc.payload, "F")) + "\n"
			if bc.split {
				full := string(benchLine(bc.payload, "F"))
				head, content := full[:len(full)-200], full[len(full)-200:]
				ph := strings.Replace(head, " F ", " P ", 1)
				line = ph + content[:70] + "\n" + ph + content[70:140] + "\n" + head + content[140:] + "\n"
			}
			const n = 20000
			tailtest.AppendFile(b, path, strings.Repeat(line, n))
			cfg := testCfg(h.root)
			cfg.ParseJSON = bc.parseJSON
			cfg.Tag = bc.tag
			var s *kubetest.Server
			if bc.kube {
				s = standIn(b)
				s.AddNamespace(kubetest.Namespace{Name: "shop", Labels: map[string]string{"team": "payments", "env": "prod"}})
				s.AddPod(kubetest.Pod{
					Namespace: "shop", Name: "web-7d9f8b6c5-x2x4z", UID: uidA, Node: "node-a", IP: "10.1.2.3",
					Labels: map[string]string{"app": "web", "pod-template-hash": "7d9f8b6c5", "tier": "front",
						"version": "1.4.2", "app.kubernetes.io/part-of": "shop"},
					Annotations: map[string]string{"logging.sluice.dev/type": "access", "prometheus.io/scrape": "true",
						"kubectl.kubernetes.io/restartedAt": "2024-01-02T03:04:05Z"},
					Owner:      &kubetest.Owner{Kind: "ReplicaSet", Name: "web-7d9f8b6c5"},
					Containers: []kubetest.Container{{Name: "nginx", Image: "nginx:1.27"}},
				})
				cfg = kubeCfg(h.root, s, 0)
				cfg.Tag = bc.tag
			}
			set := metrics.NewSet()
			in, err := New("cri", cfg, h.dataDir, tailtest.NewRouter(b, discardQueue{}), nil, set)
			if err != nil {
				b.Fatal(err)
			}
			defer in.t.Close()
			if bc.kube {
				c, release, err := kube.Acquire(in.kube.cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer release()
				if !c.WaitSynced(context.Background(), 10*time.Second) {
					b.Fatal("stand-in not synced")
				}
				in.kube.client = c
			}
			in.t.Scan()
			read := set.GetOrCreateCounter(`sluice_input_lines_total{input="cri"}`)
			perLine := uint64(1)
			if bc.split {
				perLine = 3
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			b.ResetTimer()
			start := time.Now()
			done := uint64(0)
			for done < uint64(b.N) {
				before := read.Get()
				if err := in.t.Drain(ctx); err != nil {
					b.Fatal(err)
				}
				done += (read.Get() - before) / perLine
				in.t.Rewind()
			}
			b.StopTimer()
			b.ReportMetric(float64(done)/time.Since(start).Seconds(), "lines/s")
			_ = os.Remove(path)
		})
	}
}

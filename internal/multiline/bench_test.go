package multiline

import (
	"os"
	"path/filepath"
	"testing"
)

// plainLines are ordinary log lines no rule takes: what the no-match
// path sees nearly all the time.
var plainLines = [][]byte{
	[]byte(`10.42.0.17 - - [02/May/2024:10:15:02 +0000] "GET /api/v1/orders?page=2 HTTP/1.1" 200 5123 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"`),
	[]byte(`{"time":"2024-05-02T10:15:02.480Z","level":"info","msg":"request served","method":"POST","path":"/checkout","status":201,"duration_ms":12.4,"trace_id":"4bf92f3577b34da6"}`),
	[]byte(`time=2024-05-02T10:15:02.480Z level=warn msg="slow query" table=orders rows=1200 elapsed=950ms caller=store/sql.go:214`),
	[]byte(`I0502 10:15:02.480123       1 controller.go:127] "Reconciling" deployment="default/web" replicas=3 generation=17`),
	[]byte(`2024-05-02 10:15:02.483 INFO  [http-nio-8080-exec-4] c.e.shop.web.OrderController - order 91823 created for customer 5521 total=129.90 EUR`),
	[]byte(`May  2 10:15:02 node-3 kubelet[1123]: I0502 10:15:02.480123 1123 kubelet.go:2410] "SyncLoop (PLEG): event for pod" pod="kube-system/coredns-5d78c9869d-x2z8k"`),
	[]byte(`{"level":"error","ts":1714644902.48,"caller":"retry/retry.go:88","msg":"upstream unavailable, will retry","attempt":3,"error":"dial tcp 10.0.3.4:5432: connect: connection refused"}`),
	[]byte(`GET /health 200 0.412 ms - 2`),
}

func BenchmarkNoMatch(b *testing.B) {
	j, err := New(Config{Rules: Builtins()})
	if err != nil {
		b.Fatal(err)
	}
	var out []Event
	n := 0
	for _, l := range plainLines {
		n += len(l)
	}
	b.SetBytes(int64(n / len(plainLines)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l := plainLines[i%len(plainLines)]
		out = j.Add(out[:0], l, int64(i), int64(i+1), 0)
		if len(out) != 1 {
			b.Fatalf("%d events for %q", len(out), l)
		}
	}
}

// BenchmarkJavaTrace joins a real JVM trace of 1,025 lines (a
// StackOverflowError) surrounded by log lines, with the java rule alone
// and with every built-in.
func BenchmarkJavaTrace(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "java", "overflow.log"))
	if err != nil {
		b.Fatal(err)
	}
	lines := splitLines(data)
	for _, rules := range []struct {
		name  string
		rules []string
	}{{"java", []string{"java"}}, {"all", Builtins()}} {
		b.Run(rules.name, func(b *testing.B) {
			j, err := New(Config{Rules: rules.rules})
			if err != nil {
				b.Fatal(err)
			}
			var out []Event
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			events := 0
			for range b.N {
				for k, l := range lines {
					out = j.Add(out[:0], l, int64(k), int64(k+1), 0)
					events += len(out)
				}
			}
			b.StopTimer()
			if events != 4*b.N {
				b.Fatalf("%d events in %d rounds, want 4 a round", events, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
		})
	}
}

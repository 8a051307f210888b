package record

import (
	"strings"
	"testing"
)

// benchPayload is a typical 200-byte JSON log payload (as in the docker
// input's benchmarks).
var benchPayload = func() string {
	p := `{"level":"info","ts":"2024-01-02T03:04:05.123Z","msg":"GET /api/v1/orders/12345 200","user":42,"ms":12.3,"trace":"4bf92f3577b34da6a3ce929d0e0e4736","ok":true,"x":"`
	return p + strings.Repeat("y", 198-len(p)) + `"}`
}()

var benchDocs = []struct{ name, doc string }{
	{"typical", benchPayload},
	{"loggen", `{"log_type":"app","src":"c1","seq":1234567,"pad":"` + strings.Repeat("abcdefghij", 15) + `"}`},
	{"escaped", `{"level":"info","msg":"line\twith \"quotes\" and \u00e9 \\ back","n":1}`},
	{"nested", `{"a":{"b":[1,2,3,{"c":"d"}],"e":null},"f":[true,false],"g":-1.5e-3}`},
	{"long", `{"msg":"` + strings.Repeat("abcdefgh", 500) + `"}`},
}

// BenchmarkFields converts whole payloads (parse: parse_json) or looks up
// one key (find: {field:level} without parse_json).
func BenchmarkFields(b *testing.B) {
	keys := [][]byte{[]byte("level")}
	for _, mode := range []string{"parse", "find"} {
		for _, bd := range benchDocs {
			b.Run(mode+"/"+bd.name, func(b *testing.B) {
				var f Fields
				js := []byte(bd.doc)
				b.SetBytes(int64(len(js)))
				b.ReportAllocs()
				for b.Loop() {
					ok := false
					if mode == "parse" {
						ok = f.Parse(js, reserved)
					} else {
						ok = f.Find(js, keys, reserved)
					}
					if !ok {
						b.Fatal("not accepted")
					}
				}
			})
		}
	}
}

func BenchmarkRender(b *testing.B) {
	tpl, err := Compile("docker.{name}.{field:level}", 0)
	if err != nil {
		b.Fatal(err)
	}
	var f Fields
	f.Find([]byte(benchPayload), tpl.FieldKeys(), nil)
	v := &ptrValues{f: &f}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = tpl.Render(dst[:0], v)
	}
	b.SetBytes(int64(len(dst)))
}

package receiver

import (
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func TestLogKey(t *testing.T) {
	tests := map[string]struct {
		in      string
		src     string
		seq     int64
		wantErr bool
	}{
		"loggen":    {in: `{"log_type":"app","src":"c1","seq":42,"pad":"abc"}`, src: "c1", seq: 42},
		"spaces":    {in: `{"src": "c2", "seq": 7}`, src: "c2", seq: 7},
		"zero":      {in: `{"seq":0,"src":"x"}`, src: "x", seq: 0},
		"no seq":    {in: `{"src":"x"}`, wantErr: true},
		"no src":    {in: `{"seq":1}`, wantErr: true},
		"src int":   {in: `{"src":1,"seq":1}`, wantErr: true},
		"seq str":   {in: `{"src":"a","seq":"1"}`, wantErr: true},
		"unclosed":  {in: `{"src":"a`, wantErr: true},
		"plain":     {in: `hello world`, wantErr: true},
		"too large": {in: `{"src":"a","seq":1234567890123456789012}`, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src, seq, ok := LogKey([]byte(tc.in))
			if ok == tc.wantErr {
				t.Fatalf("ok = %v", ok)
			}
			if ok && (string(src) != tc.src || seq != tc.seq) {
				t.Fatalf("got %q %d", src, seq)
			}
		})
	}
}

func TestRecordKey(t *testing.T) {
	rec := func(kv ...any) []byte {
		b := msgp.AppendMapHeader(nil, uint32(len(kv)/2))
		for i := 0; i < len(kv); i += 2 {
			b = msgp.AppendString(b, kv[i].(string))
			var err error
			if b, err = msgp.AppendIntf(b, kv[i+1]); err != nil {
				panic(err)
			}
		}
		return b
	}
	tests := map[string]struct {
		rec []byte
		src string
		seq int64
		ok  bool
	}{
		"top level int":   {rec: rec("log", "x", "src", "a", "seq", int64(5)), src: "a", seq: 5, ok: true},
		"top level uint":  {rec: rec("seq", uint64(6), "src", "a"), src: "a", seq: 6, ok: true},
		"top level float": {rec: rec("src", "a", "seq", 7.0), src: "a", seq: 7, ok: true},
		"nested ignored":  {rec: rec("labels", map[string]any{"src": "no", "seq": int64(1)}, "log", `{"src":"b","seq":8}`), src: "b", seq: 8, ok: true},
		"from log":        {rec: rec("log", `{"log_type":"app","src":"c","seq":9}`, "stream", "stdout"), src: "c", seq: 9, ok: true},
		"bad seq type":    {rec: rec("src", "a", "seq", "1", "log", `{"src":"d","seq":3}`), src: "d", seq: 3, ok: true},
		"no key":          {rec: rec("log", "plain"), ok: false},
		"not a map":       {rec: msgp.AppendString(nil, "x"), ok: false},
		"truncated":       {rec: rec("src", "a", "seq", int64(1))[:5], ok: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src, seq, ok := RecordKey(tc.rec)
			if ok != tc.ok || (ok && (string(src) != tc.src || seq != tc.seq)) {
				t.Fatalf("got %q %d %v", src, seq, ok)
			}
		})
	}
}

func BenchmarkRecordKey(b *testing.B) {
	payload := `{"log_type":"app","src":"container-1","seq":123456,"pad":"` + string(make([]byte, 140)) + `"}`
	r := msgp.AppendMapHeader(nil, 4)
	r = msgp.AppendString(r, "log")
	r = msgp.AppendString(r, payload)
	r = msgp.AppendString(r, "stream")
	r = msgp.AppendString(r, "stdout")
	r = msgp.AppendString(r, "container_id")
	r = msgp.AppendString(r, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	r = msgp.AppendString(r, "container_name")
	r = msgp.AppendString(r, "container-1")
	b.ReportAllocs()
	b.SetBytes(int64(len(r)))
	for b.Loop() {
		if _, _, ok := RecordKey(r); !ok {
			b.Fatal("no key")
		}
	}
}

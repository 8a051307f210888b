package earlylog

import (
	"bytes"
	"encoding/json"
	"log"
	"log/slog"
	"testing"
)

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	l := log.New(Writer{slog.New(slog.NewJSONHandler(&b, nil))}, "", 0)
	l.Printf("INFO: metrics: disable exposing PSI metrics because of failed init: %s", "open /sys/fs/cgroup/cpu.pressure: no such file")
	l.Printf("ERROR: metrics: cannot open %s", "/proc/self/stat")
	l.Print("plain")
	want := []struct{ level, msg string }{
		{"INFO", "metrics: disable exposing PSI metrics because of failed init: open /sys/fs/cgroup/cpu.pressure: no such file"},
		{"ERROR", "metrics: cannot open /proc/self/stat"},
		{"INFO", "plain"},
	}
	dec := json.NewDecoder(&b)
	for _, w := range want {
		var got struct{ Level, Msg string }
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%v in %q", err, b.String())
		}
		if got.Level != w.level || got.Msg != w.msg {
			t.Errorf("got %+v, want %+v", got, w)
		}
	}
	if dec.More() {
		t.Errorf("extra output")
	}
}

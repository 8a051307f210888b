package forward

import (
	"reflect"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// TestParserLogfmt: a configured parser parses the log field of Docker
// records and of pass-through records alike; its time field becomes the
// event time; the tag reads parsed fields; a payload it rejects keeps its
// record with parse_error: logfmt, counted.
func TestParserLogfmt(t *testing.T) {
	s := startServer(t, config.ForwardInput{Parser: &config.Parser{Type: "logfmt"}, Tag: "{tag}.{field:level}"}, nil)
	line := `time=2026-12-07T01:02:03.5Z level=WARN msg="disk almost full" pct=93`
	got := sendAndCollect(t, s, 3, nil,
		message("app", 1700000000, dockerRecord("/web", "stdout", line+"\n"), ""),
		message("fb", 1700000001, rec("log", line, "x", "kept"), ""),
		message("fb", 1700000002, rec("log", "not logfmt at all", "x", "y"), ""),
	)
	r0 := decodeRecord(t, got[0].Record)
	want0 := map[string]any{
		"log": line + "\n", "stream": "stdout", "container_id": testCID, "container_name": "web",
		"level": "WARN", "msg": "disk almost full", "pct": "93",
	}
	if !reflect.DeepEqual(r0, want0) {
		t.Errorf("docker record\n got %v\nwant %v", r0, want0)
	}
	wantT := time.Date(2026, 12, 7, 1, 2, 3, 5e8, time.UTC).UnixNano()
	if got[0].Time != wantT || got[1].Time != wantT || got[0].Tag != "app.WARN" {
		t.Errorf("event 0: tag %s time %d, event 1 time %d, want time %d", got[0].Tag, got[0].Time, got[1].Time, wantT)
	}
	r1 := decodeRecord(t, got[1].Record)
	if r1["x"] != "kept" || r1["msg"] != "disk almost full" || r1["log"] != line {
		t.Errorf("pass-through record %v", r1)
	}
	r2 := decodeRecord(t, got[2].Record)
	want2 := map[string]any{"log": "not logfmt at all", "x": "y", "parse_error": "logfmt"}
	if !reflect.DeepEqual(r2, want2) || got[2].Tag != "fb.unknown" {
		t.Errorf("rejected payload: %s %v", got[2].Tag, r2)
	}
	if n := s.in.m.parseFailures.Get(); n != 1 {
		t.Errorf("parse failures %d, want 1", n)
	}
}

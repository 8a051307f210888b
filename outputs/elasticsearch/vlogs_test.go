package elasticsearch

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/vlogs"
	"github.com/sluice-agent/sluice/internal/wire"
)

// TestVictoriaLogs: 20,000 events through a real queue into a real
// VictoriaLogs (its /insert/elasticsearch/_bulk, gzip, filter_path, stable
// ids and the field mapping as custom headers), read back through its
// query API: every sequence number arrives once, with its @timestamp to
// the nanosecond and its fields.
func TestVictoriaLogs(t *testing.T) {
	vl := vlogs.Start(t)
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	const n = 20000
	// Events within one day of the server's now, so no retention or
	// future limit applies whatever its flags.
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()
	at := func(seq int) int64 { return base + int64(seq)*int64(time.Millisecond+7) }
	for c := 0; c < n/100; c++ {
		var e []byte
		for i := c * 100; i < (c+1)*100; i++ {
			e = wire.AppendEntry(e, at(i), rec(i, "web"))
		}
		if err := q.Append(context.Background(), []byte("app.web"), 100, e); err != nil {
			t.Fatal(err)
		}
	}
	c := esConfig(vl.ESURL())
	c.Index = "logs-{tag}-%Y.%m.%d"
	for k, v := range vl.Header() {
		c.Headers = append(c.Headers, config.HTTPHeader{Name: k, Value: config.Secret(v[0])})
	}
	c.MaxBulkEvents = 1000
	r := startOutput(t, "vl", c, config.Delivery{FlushInterval: 100 * time.Millisecond}, q, dir)
	start := time.Now()
	waitEmpty(t, q, 60*time.Second)
	took := time.Since(start)
	if st := q.Stats(); st.DeliveredEvents != n || st.DeadLetteredEvents != 0 {
		t.Fatalf("queue %+v", st)
	}
	rows := vl.Query(t, `app:web | fields _time, seq, _msg, app`)
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	seen := make([]bool, n)
	for _, row := range rows {
		seq, err := strconv.Atoi(row["seq"].(string))
		if err != nil || seq < 0 || seq >= n || seen[seq] {
			t.Fatalf("row %v: bad or repeated seq", row)
		}
		seen[seq] = true
		ts, err := time.Parse(time.RFC3339Nano, row["_time"].(string))
		if err != nil || ts.UnixNano() != at(seq) {
			t.Fatalf("seq %d: _time %v, want %s", seq, row["_time"], time.Unix(0, at(seq)).UTC().Format(time.RFC3339Nano))
		}
		if want := "line " + strconv.Itoa(seq) + " "; len(row["_msg"].(string)) < len(want) || row["_msg"].(string)[:len(want)] != want {
			t.Fatalf("seq %d: _msg %q", seq, row["_msg"])
		}
	}
	t.Logf("%d events in %s (%.0f events/s), %d requests", n, took, n/took.Seconds(),
		r.counter(`sluice_output_requests_total{output="vl",result="ok"}`))
}

package forward

import (
	"context"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// TestRealQueue runs the output on a real buffer.Queue across a restart:
// chunks sent but never acked before the stop are read again from disk by
// the next run, resent with the same chunk ids, and the queue drains.
func TestRealQueue(t *testing.T) {
	dir := t.TempDir()
	q, err := buffer.Open(dir, buffer.Options{Name: "out1"})
	if err != nil {
		t.Fatal(err)
	}
	const chunks, per = 30, 10
	for i := range chunks {
		var e []byte
		for j := range per {
			e = wire.AppendEntry(e, time.Now().UnixNano(), seqRecord(i*per+j, 50))
		}
		if err := q.Append(context.Background(), []byte("app.log"), per, e); err != nil {
			t.Fatal(err)
		}
	}

	// First run: the server takes requests but never acks.
	mute := startServer(t, "tcp", "127.0.0.1:0", srvOpts{ack: "never"})
	r := start(t, baseConfig(mute.addr), q)
	mute.waitRequests(t, config.DefaultForwardOutput().MaxInFlight, 5*time.Second)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	first := make(map[string]bool)
	for _, req := range mute.requests() {
		first[req.chunk] = true
	}
	if st := q.Stats(); st.AckedChunks != 0 {
		t.Fatalf("queue saw %d acks from a server that never acked", st.AckedChunks)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: everything is still on disk and goes out again.
	q, err = buffer.Open(dir, buffer.Options{Name: "out1"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{})
	r2 := start(t, baseConfig(srv.addr), q)
	defer r2.stop() // before q.Close: Next on a closed queue is an error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("queue did not drain: %v", err)
	}
	checkAllSeqs(t, chunks*per, srv)
	second := make(map[string]bool)
	for _, req := range srv.requests() {
		second[req.chunk] = true
	}
	for id := range first {
		if !second[id] {
			t.Fatalf("chunk id %q of the first run was not reused after the restart", id)
		}
	}
}

// TestMaxRetriesDiscards: a chunk given up after max_retries leaves the
// queue as discarded, by reason, with its events counted, and never as
// acked (it used to settle through Ack and count as delivered).
func TestMaxRetriesDiscards(t *testing.T) {
	set := metrics.NewSet()
	q, err := buffer.Open(t.TempDir(), buffer.Options{Name: "out1", Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var e []byte
	for j := range 3 {
		e = wire.AppendEntry(e, time.Now().UnixNano(), seqRecord(j, 0))
	}
	if err := q.Append(context.Background(), []byte("app.log"), 3, e); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "tcp", "127.0.0.1:0", srvOpts{ack: "never"})
	cfg := baseConfig(srv.addr)
	cfg.AckTimeout = 50 * time.Millisecond
	cfg.MaxRetries = 1
	r := start(t, cfg, q)
	defer r.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("chunk not given up: %v", err)
	}
	st := q.Stats()
	if st.DiscardedChunks != 1 || st.DiscardedEvents != 3 || st.AckedChunks != 0 {
		t.Fatalf("queue stats: %d discarded chunks, %d discarded events, %d acked; want 1, 3, 0",
			st.DiscardedChunks, st.DiscardedEvents, st.AckedChunks)
	}
	for series, want := range map[string]uint64{
		`sluice_buffer_discarded_chunks_total{output="out1",reason="max_retries"}`: 1,
		`sluice_buffer_discarded_events_total{output="out1",reason="max_retries"}`: 3,
		`sluice_buffer_acked_chunks_total{output="out1"}`:                          0,
	} {
		if got := set.GetOrCreateCounter(series).Get(); got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}
}

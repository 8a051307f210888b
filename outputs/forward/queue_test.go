package forward

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/buffer"
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
	mute.waitRequests(t, DefaultMaxInFlight, 5*time.Second)
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

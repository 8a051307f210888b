package forward

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

// TestRealBuffer runs the input over the real disk queue (fsync always):
// every acked event can be read back from the queue's segment files right
// after its ack, and a reopened queue still holds all of them.
func TestRealBuffer(t *testing.T) {
	dir := t.TempDir()
	q, err := buffer.Open(dir, buffer.Options{FsyncAlways: true, SegmentBytes: 1 << 20, MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRouter([]config.Route{{Match: "**", Outputs: []string{"disk"}}}, "",
		[]pipeline.OutputQueue{{ID: "disk", Queue: q}}, metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	in, err := New("fw", config.ForwardInput{Listen: "127.0.0.1:0"}, r, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, in, nil, set)
	c := s.dial(t)
	const n = 50
	read := 0
	for i := range n {
		chunk := fmt.Sprintf("chunk-%d", i)
		c.Write(message("docker.web", uint32(1700000000+i), dockerRecord("/web", "stdout", fmt.Sprint("line ", i)), chunk))
		if got := readN(t, c, len(ack(chunk))); !bytes.Equal(got, ack(chunk)) {
			t.Fatalf("ack %q", got)
		}
		// Acked: the queue must hand it out now.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ch, err := q.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("event %d acked but not in the queue: %v", i, err)
		}
		wire.ForEachEntry(ch.Entries, func(ns int64, rec []byte) error {
			if l, _ := wire.LookupString(rec, keyLog); string(l) != fmt.Sprint("line ", read) {
				t.Fatalf("read back %q, want line %d", l, read)
			}
			read++
			return nil
		})
	}
	s.stop()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := buffer.Open(dir, buffer.Options{SegmentBytes: 1 << 20, MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	total := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		ch, err := q2.Next(ctx)
		cancel()
		if err != nil {
			break
		}
		total += ch.Count
	}
	if read != n || total != n {
		t.Fatalf("read %d after acks, %d after reopen, want %d", read, total, n)
	}
}

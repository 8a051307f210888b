package receiver_test

import (
	"testing"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/testkit/receiver/receivertest"
)

// BenchmarkWireServe sends 1000-event PackedForward chunks over loopback
// and waits for each ack: the receive path of the benchmark command.
func BenchmarkWireServe(b *testing.B) {
	s, err := receiver.Listen("127.0.0.1:0", receiver.Wire{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	receivertest.ServeBench(b, s.Addr(), s)
}

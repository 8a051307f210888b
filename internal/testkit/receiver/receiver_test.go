package receiver_test

import (
	"testing"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/testkit/receiver/receivertest"
)

func TestWireConformance(t *testing.T) {
	receivertest.Run(t, func(t *testing.T, addr string) *receiver.Server {
		s, err := receiver.Listen(addr, receiver.Wire{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		return s
	}, receivertest.Options{})
}

package ibmpeer_test

import (
	"testing"

	"github.com/sluice-agent/sluice/internal/testkit/ibmpeer"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/testkit/receiver/receivertest"
)

func TestIBMConformance(t *testing.T) {
	receivertest.Run(t, func(t *testing.T, addr string) *receiver.Server {
		s, err := ibmpeer.Listen(addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		return s
	}, receivertest.Options{})
}

package ibmpeer_test

import (
	"testing"

	"github.com/sluice-agent/sluice/internal/testkit/ibmpeer"
	"github.com/sluice-agent/sluice/internal/testkit/receiver/receivertest"
)

func BenchmarkIBMServe(b *testing.B) {
	s, err := ibmpeer.Listen("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	receivertest.ServeBench(b, s.Addr(), s)
}

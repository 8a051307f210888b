// Package interop runs the real agent binary against the real peers it must
// interoperate with, Fluentd 1.14.6 and Fluent Bit 5.1.1 (unmodified builds
// under ../shared/peers), in both directions: Sluice's forward output into
// each peer's forward input, and each peer's forward output into Sluice's
// forward input. Every test generates numbered events and checks every
// sequence number at the far end. See README.md for the scenarios.
//
// The peers are looked up in SLUICE_PEERS_DIR, else <repo root>/../shared/peers.
// When they (or their Debian runtime) are missing the tests skip, saying
// what is missing, unless SLUICE_REQUIRE_PEERS=1, which makes them fail.
package interop

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
)

// agentBin is the agent built by TestMain ("" with -short).
var agentBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips: agentBin is empty
	}
	dir, err := os.MkdirTemp("", "sluice-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t0 := time.Now()
	agentBin, err = agentproc.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "interop: built %s in %v\n", agentBin, time.Since(t0).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

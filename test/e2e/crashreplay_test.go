package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/agentproc"
	"github.com/sluice-agent/sluice/internal/testkit/loggen"
	"github.com/sluice-agent/sluice/internal/testkit/receiver"
)

// TestE2E_CrashReplay (issue 6, section 3): 2,000,000 lines of 200 B in
// one json-file log; the agent is killed with SIGKILL once half of them
// reached the receiver and restarted 1 s later. Nothing may be missing,
// and the duplicates (what the restarted agent sends again) must stay
// under 1% of the lines: the input resumes from what reached the buffer
// (its per-flush position journal), not from its last checkpoint, so the
// only duplicates left are the output's chunks in flight at the kill.
// SLUICE_CRASH_LINES overrides the line count.
func TestE2E_CrashReplay(t *testing.T) {
	if agentBin == "" {
		t.Skip("-short: the e2e tests build and run the agent")
	}
	lines := envInt("SLUICE_CRASH_LINES", 2_000_000)
	dir := t.TempDir()
	root := filepath.Join(dir, "containers")
	c, err := loggen.New(root, loggen.Options{Name: "c-app", LogType: "app", Payload: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Write(lines); err != nil {
		t.Fatal(err)
	}
	recv := receiver.New("127.0.0.1:0", receiver.Wire{}, nil)
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	defer recv.Stop()
	cfg := agentproc.Config{
		DataDir:     filepath.Join(dir, "data"),
		DockerRoot:  root,
		MetricsAddr: agentproc.FreeAddr(t),
		Outputs:     []agentproc.Output{{ID: "app", Address: recv.Addr(), AckTimeout: 10 * time.Second}},
	}
	cfgPath, logPath := filepath.Join(dir, "agent.yml"), filepath.Join(dir, "agent.log")
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	p, err := agentproc.Start(agentBin, cfgPath, logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if !p.Exited() {
			p.Kill()
		}
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for recv.Distinct(c.Src()) < lines/2 {
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("half the lines never arrived (%d); agent exited: %v", recv.Distinct(c.Src()), p.Exited())
		}
		time.Sleep(2 * time.Millisecond)
	}
	atKill := recv.Distinct(c.Src())
	p.Kill()
	<-p.Done()
	time.Sleep(time.Second)
	if p, err = agentproc.Start(agentBin, cfgPath, logPath); err != nil {
		t.Fatal(err)
	}
	if !recv.WaitCount(int64(lines), 5*time.Minute) {
		t.Logf("receiver: %s", recv.Stats())
	}
	for recv.Distinct(c.Src()) < lines && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // late duplicates
	st := recv.Stats()
	missing := recv.MissingCount(c.Src(), lines)
	t.Logf("%d lines; killed with %d delivered; after restart: %d missing, %d duplicates (%.3f%%); %s",
		lines, atKill, missing, st.Duplicates, 100*float64(st.Duplicates)/float64(lines), st)
	if _, _, err := p.Term(30 * time.Second); err != nil {
		t.Errorf("term: %v", err)
	}
	if missing > 0 {
		t.Fatalf("%d lines missing, first %v", missing, recv.Missing(c.Src(), lines))
	}
	if max := int64(lines / 100); st.Duplicates > max {
		t.Fatalf("%d duplicates, more than 1%% (%d)", st.Duplicates, max)
	}
}

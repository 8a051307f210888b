package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-agent/sluice/config"
	fwdin "github.com/sluice-agent/sluice/inputs/forward"
)

// syncBuffer is a bytes.Buffer safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// repeatedKeys returns the keys that occur more than once at the top level
// of the JSON object line.
func repeatedKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", line)
	}
	seen := map[string]bool{}
	var dup []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		k := tok.(string)
		if seen[k] {
			dup = append(dup, k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
	return dup
}

// TestLogKeysOnce: every line of a running agent's JSON log (inputs and
// outputs logging with their component key, a dead forward server, the
// shutdown) is one object with each key once.
func TestLogKeysOnce(t *testing.T) {
	dir := t.TempDir()
	dead := freeAddr(t)
	yml := fmt.Sprintf(`data_dir: %s
shutdown_grace: 1s
inputs:
  - {id: fwd, type: forward, listen: "127.0.0.1:0"}
outputs:
  - {id: live, type: file, path: %s, buffer: {fsync_interval: 50ms}}
  - id: dead
    type: forward
    servers: [{address: "%s"}]
    connect_timeout: 200ms
    heartbeat_interval: 100ms
    retry_initial: 50ms
routes:
  - {match: "**", outputs: [live, dead]}
`, filepath.Join(dir, "data"), filepath.Join(dir, "out.jsonl"), dead)
	cfg, err := config.Parse([]byte(yml), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var in *fwdin.Input
	waitFor(t, "the forward input", func() bool {
		in, _ = a.sup.state(ref{"input", "fwd"}).c.(*fwdin.Input)
		return in != nil
	})
	sendForward(t, in.Addr().String(), 5, "c1")
	waitFor(t, "the dead server logged", func() bool { return strings.Contains(buf.String(), "forward server down") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"output":"dead"`, `"input":"fwd"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %s line:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if d := repeatedKeys(t, l); len(d) > 0 {
			t.Errorf("repeated keys %v in %s", d, l)
		}
	}
}

package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// TestConformance runs the output suite with the file replaced by fileSvc:
// Up stores lines, Down fails every fsync (lines written then are lost, as
// on a failing disk), Hang fails every write (the output keeps retrying the
// rest, never finishing). The file output refuses only undecodable events
// and answers per batch, so those cases do not apply.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewService: func(*testing.T) conformance.Service { return &fileSvc{} },
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			d := config.Delivery{RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
			o, err := New(id, config.FileOutput{Path: "/unused"}, d, dataDir, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			f := svc.(*fileSvc)
			o.open = func(string) (destination, bool, error) { return f, true, nil }
			return o
		},
	})
}

type fileSvc struct {
	mu      sync.Mutex
	mode    conformance.Mode
	pending bytes.Buffer // written since the last fsync
	synced  bytes.Buffer
}

func (f *fileSvc) SetMode(_ *testing.T, m conformance.Mode) {
	f.mu.Lock()
	f.mode = m
	f.mu.Unlock()
}

func (f *fileSvc) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == conformance.Hang {
		return 0, errors.New("device busy")
	}
	return f.pending.Write(p)
}

func (f *fileSvc) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == conformance.Down {
		f.pending.Reset()
		return errors.New("input/output error")
	}
	f.synced.Write(f.pending.Bytes())
	f.pending.Reset()
	return nil
}

func (f *fileSvc) Close() error { return nil }

func (f *fileSvc) Accepted(t *testing.T) map[int]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]int{}
	for _, l := range bytes.Split(bytes.TrimSuffix(f.synced.Bytes(), []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var v struct {
			Record struct {
				Seq int `json:"seq"`
			} `json:"record"`
		}
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out[v.Record.Seq]++
	}
	return out
}

func (f *fileSvc) Attempts(t *testing.T) map[int]int { t.Fatal("not per event"); return nil }
func (f *fileSvc) FailOnce(t *testing.T, _ func(int) bool) {
	t.Fatal("not per event")
}
func (f *fileSvc) Refuse(t *testing.T, _ func(int) bool) { t.Fatal("refuses only undecodable events") }

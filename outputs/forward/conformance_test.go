package forward

import (
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// TestConformance runs the output suite against the test Forward server:
// Down closes it, Hang replaces it with one that never acks, Up with a
// normal one, all on the same address. Forward answers per request, not
// per event, and refuses nothing, so those cases do not apply.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewService: func(t *testing.T) conformance.Service {
			s := &fwdService{}
			s.cur = startServer(t, "tcp", "127.0.0.1:0", srvOpts{})
			s.addr = s.cur.addr
			return s
		},
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			cfg := baseConfig(svc.(*fwdService).addr)
			cfg.AckTimeout = 5 * time.Second
			o, err := New(id, cfg, config.Delivery{}, dataDir, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
	})
}

type fwdService struct {
	mu   sync.Mutex
	addr string
	cur  *testServer // nil while down
	all  []*testServer
}

func (s *fwdService) SetMode(t *testing.T, m conformance.Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.cur.Close()
		s.all = append(s.all, s.cur)
		s.cur = nil
	}
	switch m {
	case conformance.Up:
		s.cur = startServer(t, "tcp", s.addr, srvOpts{})
	case conformance.Hang:
		s.cur = startServer(t, "tcp", s.addr, srvOpts{ack: "never"})
	}
}

func (s *fwdService) Accepted(*testing.T) map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	srvs := s.all
	if s.cur != nil {
		srvs = append(srvs[:len(srvs):len(srvs)], s.cur)
	}
	return seqCount(srvs...)
}

func (s *fwdService) Attempts(t *testing.T) map[int]int { t.Fatal("not per event"); return nil }
func (s *fwdService) FailOnce(t *testing.T, _ func(int) bool) {
	t.Fatal("not per event")
}
func (s *fwdService) Refuse(t *testing.T, _ func(int) bool) { t.Fatal("forward refuses nothing") }

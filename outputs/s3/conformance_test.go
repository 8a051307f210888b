package s3

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/versity"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// TestConformance runs the output suite against a real versitygw behind a
// proxy: Down answers every request 503 SlowDown, Hang holds every
// request. S3 answers per object, not per event: the suite's per-event
// and refusal cases do not apply (TestPartialFailure covers one failed
// object among several).
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewService: newS3Service,
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			s := svc.(*s3Service)
			c := testConfig(s.srv, "conf")
			c.Endpoint = s.proxy.URL()
			d := config.Delivery{RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, FlushInterval: 100 * time.Millisecond}
			o, err := New(id, c, d, dataDir, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
	})
}

type s3Service struct {
	srv   *versity.Server
	proxy *proxy
	mode  atomic.Int32
}

func newS3Service(t *testing.T) conformance.Service {
	s := &s3Service{srv: versity.Start(t)}
	s.srv.CreateBucket(t, "conf")
	s.proxy = newProxy(t, s.srv.Endpoint())
	s.proxy.hook(func(w http.ResponseWriter, r *http.Request) bool {
		switch conformance.Mode(s.mode.Load()) {
		case conformance.Down:
			slowDown(w)
			return true
		case conformance.Hang:
			s.proxy.hang(r)
			return true
		}
		return false
	})
	return s
}

func (s *s3Service) SetMode(_ *testing.T, m conformance.Mode) { s.mode.Store(int32(m)) }

func (s *s3Service) Accepted(t *testing.T) map[int]int {
	got, _ := stored(t, s.srv, "conf")
	return got
}

func (s *s3Service) Attempts(t *testing.T) map[int]int { return s.Accepted(t) }

func (s *s3Service) FailOnce(t *testing.T, _ func(int) bool) { t.Fatal("s3 answers per object") }

func (s *s3Service) Refuse(t *testing.T, _ func(int) bool) { t.Fatal("s3 refuses no single event") }

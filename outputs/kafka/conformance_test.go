package kafka

import (
	"bytes"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// TestConformance runs the output suite against a 3-broker kfake cluster
// per service: down is every produce answered NOT_ENOUGH_REPLICAS (a
// retriable error, so the producer and then the engine keep trying),
// hang is every produce request held unanswered (kfake's SleepControl),
// refuse is INVALID_RECORD for the partition batch holding a refused
// event.
//
// Kafka answers per partition batch, not per record, so the harness is
// not PerEvent; it Refuses: the producer fails every buffered record of a
// partition whose batch was refused, and the output sends each of them
// again alone (isolate) before it dead-letters anything, so exactly the
// refused events reach the dead-letter queue.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewService: func(t *testing.T) conformance.Service { return newKafkaService(t) },
		NewOutput: func(t *testing.T, svc conformance.Service, id string, src delivery.Source, dataDir string) conformance.Output {
			s := svc.(*kafkaService)
			c := testConfig(s.c)
			c.Topic = s.topic
			c.Compression = "none" // the service reads seqs from the batches
			d := config.Delivery{RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, FlushInterval: 100 * time.Millisecond}
			return newOutput(t, id, c, d, src, dataDir, nil)
		},
		Refuses: true,
		Timeout: 60 * time.Second,
	})
}

type kafkaService struct {
	c     *kfake.Cluster
	topic string

	mu     sync.Mutex
	down   *kfake.FaultHandle
	hang   chan struct{} // set while hanging; closed to wake the held requests
	refuse func(int) bool
}

func newKafkaService(t *testing.T) *kafkaService {
	s := &kafkaService{c: newCluster(t), topic: "conf"}
	s.c.ControlKey(int16(kmsg.Produce), s.control)
	t.Cleanup(func() { s.SetMode(t, conformance.Up) })
	return s
}

// control sees every produce request before the cluster handles it.
func (s *kafkaService) control(kreq kmsg.Request) (kmsg.Response, error, bool) {
	s.c.KeepControl()
	s.mu.Lock()
	hang, refuse := s.hang, s.refuse
	s.mu.Unlock()
	if hang != nil {
		s.c.SleepControl(func() { <-hang })
	}
	if refuse == nil {
		return nil, nil, false
	}
	req := kreq.(*kmsg.ProduceRequest)
	for _, tp := range req.Topics {
		for _, p := range tp.Partitions {
			for _, seq := range batchSeqs(p.Records) {
				if refuse(seq) {
					s.c.Fault(kfake.Fault{
						Keys: []kmsg.Key{kmsg.Produce}, Topic: tp.Topic, Partitions: []int32{p.Partition},
						Err: kerr.InvalidRecord, When: func(r kmsg.Request) bool { return r == kreq },
					})
					break
				}
			}
		}
	}
	return nil, nil, false
}

// batchSeqs finds the "seq":N of every record of an uncompressed batch.
func batchSeqs(b []byte) []int {
	var out []int
	for {
		i := bytes.Index(b, []byte(`"seq":`))
		if i < 0 {
			return out
		}
		b = b[i+6:]
		j := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if n, err := strconv.Atoi(string(b[:j])); err == nil {
			out = append(out, n)
		}
	}
}

func (s *kafkaService) SetMode(_ *testing.T, m conformance.Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil && m != conformance.Down {
		s.down.Remove()
		s.down = nil
	}
	if s.hang != nil && m != conformance.Hang {
		close(s.hang)
		s.hang = nil
	}
	switch {
	case m == conformance.Down && s.down == nil:
		s.down = s.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	case m == conformance.Hang && s.hang == nil:
		s.hang = make(chan struct{})
	}
}

func (s *kafkaService) Accepted(t *testing.T) map[int]int {
	return consume(t, s.c, s.topic).seqs["conf"]
}

func (s *kafkaService) Attempts(t *testing.T) map[int]int {
	t.Fatal("the kafka harness is not per event")
	return nil
}

func (s *kafkaService) FailOnce(t *testing.T, _ func(int) bool) {
	t.Fatal("the kafka harness is not per event")
}

func (s *kafkaService) Refuse(_ *testing.T, match func(int) bool) {
	s.mu.Lock()
	s.refuse = match
	s.mu.Unlock()
}

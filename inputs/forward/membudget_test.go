package forward

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// seqQueue keeps only the (src, seq) of each stored event, so the test's
// own heap stays small next to the input's.
type seqQueue struct {
	mu   sync.Mutex
	seen map[string]map[int]int // src -> seq -> times stored
}

func newSeqQueue() *seqQueue { return &seqQueue{seen: map[string]map[int]int{}} }

func (q *seqQueue) Append(_ context.Context, _ []byte, _ int, entries []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return wire.ForEachEntry(entries, func(_ int64, rec []byte) error {
		src, _ := wire.LookupString(rec, []byte("src"))
		s, _ := wire.LookupString(rec, []byte("seq"))
		n, err := strconv.Atoi(string(s))
		if err != nil {
			return fmt.Errorf("record without seq: %x", rec)
		}
		m := q.seen[string(src)]
		if m == nil {
			m = map[int]int{}
			q.seen[string(src)] = m
		}
		m[n]++
		return nil
	})
}
func (q *seqQueue) Sync() error         { return nil }
func (q *seqQueue) Mark() uint64        { return 1 }
func (q *seqQueue) SyncTo(uint64) error { return nil }

// missing lists the seqs 0..n-1 of src not stored.
func (q *seqQueue) missing(src string, n int) []int {
	q.mu.Lock()
	defer q.mu.Unlock()
	var miss []int
	for i := range n {
		if q.seen[src][i] == 0 {
			miss = append(miss, i)
		}
	}
	return miss
}

// gzipBomb is a CompressedPackedForward request asking for an ack whose
// payload is the gzip of n zero bytes (about n/1000 bytes on the wire).
func gzipBomb(t testing.TB, n int) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(zero) {
		zw.Write(zero[:min(left, len(zero))])
	}
	zw.Close()
	return wire.AppendPackedForward(nil, []byte("bomb"), z.Bytes(), wire.Options{Chunk: "bomb", Compressed: true, Size: 1})
}

// halfRequest is the first half of a PackedForward request that declares
// a bin payload of size bytes.
func halfRequest(size int) []byte {
	b := wire.AppendPackedForwardHeader(nil, []byte("half"), size)
	return append(b, make([]byte, size/2)...)
}

// attackers run hostile clients against addr until stop is called.
type attackers struct {
	addr  string
	done  chan struct{}
	wg    sync.WaitGroup
	acked atomic.Int64 // bytes any hostile client received back: must stay 0
	conns atomic.Int64 // connections made
}

func newAttackers(addr string) *attackers {
	return &attackers{addr: addr, done: make(chan struct{})}
}

func (a *attackers) stopped() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// run connects, writes req and holds the connection until the server
// closes it (counting anything it sends back), then does it again.
func (a *attackers) run(req []byte) {
	a.wg.Go(func() {
		for !a.stopped() {
			c, err := net.Dial("tcp", a.addr)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			a.conns.Add(1)
			for off := 0; off < len(req) && !a.stopped(); {
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				n, err := c.Write(req[off:])
				off += n
				if err != nil && !isTimeoutErr(err) {
					break
				}
			}
			var b [64]byte
			for !a.stopped() {
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				n, err := c.Read(b[:])
				a.acked.Add(int64(n))
				if err != nil && !isTimeoutErr(err) {
					break
				}
			}
			c.Close()
		}
	})
}

func (a *attackers) stop() {
	close(a.done)
	a.wg.Wait()
}

// legitRecord is {"src": src, "seq": "<i>", "log": pad}.
func legitRecord(src string, i int, pad string) []byte {
	return rec("src", src, "seq", strconv.Itoa(i), "log", pad)
}

// sendRetrying writes req on *c (dialling again when needed) and waits for the
// ack of chunk, retrying on a fresh connection, as Fluent Bit and
// fluent-logger-golang do, until deadline. It returns the retries.
func sendRetrying(addr string, c *net.Conn, req []byte, chunk string, deadline time.Time) (int, error) {
	want := ack(chunk)
	got := make([]byte, len(want))
	for retries := 0; ; retries++ {
		if time.Now().After(deadline) {
			return retries, fmt.Errorf("chunk %s not acked in time", chunk)
		}
		if *c == nil {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			*c = nc
		}
		(*c).SetDeadline(time.Now().Add(30 * time.Second))
		_, err := (*c).Write(req)
		if err == nil {
			_, err = io.ReadFull(*c, got)
		}
		if err == nil {
			if !bytes.Equal(got, want) {
				return retries, fmt.Errorf("ack %x, want %x", got, want)
			}
			return retries, nil
		}
		(*c).Close()
		*c = nil
	}
}

// memSampler records, while it runs, the highest heap in use (live data
// and garbage not collected yet) and the highest live heap: what the last
// collection found still referenced (/gc/heap/live:bytes), sampled every
// 10 ms.
type memSampler struct {
	stop        chan struct{}
	done        chan struct{}
	inuse, live uint64
}

func sampleMem() *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(live)
			s.live = max(s.live, live[0].Value.Uint64())
			s.inuse = max(s.inuse, live[1].Value.Uint64())
			select {
			case <-s.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *memSampler) end() (inuse, live uint64) {
	close(s.stop)
	<-s.done
	return s.inuse, s.live
}

// TestMemoryBudgetUnderAttack is issue 12.3 in process: 16 clients
// sending gzip bombs and 40 sending half of a 15 MB request, each
// reconnecting whenever it is closed, while two legitimate clients send:
// Docker's driver (small Message-mode events, an ack each) and a Fluent
// Bit-like client (gzip PackedForward requests of 1 MiB decompressed and
// uncompressed ones of 1 MiB, which need the budget, resent when refused).
// Every legitimate event must arrive, no hostile request is ever acked,
// the budget's reservations never exceed max_buffered_bytes, the live heap
// (what each collection found referenced) stays under the budget plus a stated
// overhead, and once everybody has gone the budget is whole again. (The
// RSS, garbage included, is test/e2e's TestMemoryBudgetRSS.)
//
// Before the budget (one bound per connection only) the same clients
// hold a live heap of 1427 MiB (2813 MiB with garbage).
func TestMemoryBudgetUnderAttack(t *testing.T) {
	if testing.Short() || raceOn {
		t.Skip("-short or -race: sends about a gigabyte and decompresses more")
	}
	const (
		budget = 64 << 20
		// overhead: what else is live in the test binary: the
		// connections' baselines (~57 × 130 KiB), their Writers, the
		// clients' payloads (a 7.5 MB half request, requests being
		// built) and the queue's record of every seq (~100,000).
		overhead = 48 << 20
	)
	runtime.GC()
	q := newSeqQueue()
	set := vmetrics.NewSet()
	in, err := New("fw", config.ForwardInput{Listen: "127.0.0.1:0", MaxBufferedBytes: budget, BufferWaitTimeout: 2 * time.Second},
		newRouter(t, q), nil, set)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, in, nil, set)

	bomb := gzipBomb(t, 256<<20) // 256 MiB of zeros: over max_decompressed_bytes (64 MiB)
	half := halfRequest(15 << 20)
	mem := sampleMem()
	atk := newAttackers(s.addr)
	for range 16 {
		atk.run(bomb)
	}
	for range 40 {
		atk.run(half)
	}
	time.Sleep(500 * time.Millisecond) // let the attack take hold first

	deadline := time.Now().Add(2 * time.Minute)
	var wg sync.WaitGroup
	var dockerErr, fbErr error
	var fbRetries int
	const dockerEvents = 1000
	wg.Go(func() {
		var c net.Conn
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		pad := strings.Repeat("d", 150)
		for i := range dockerEvents {
			chunk := fmt.Sprintf("docker-%d", i)
			req := message("docker", 1700000000, legitRecord("docker", i, pad), chunk)
			if n, err := sendRetrying(s.addr, &c, req, chunk, deadline); err != nil || n > 0 {
				// Small requests need no budget: they are never refused.
				dockerErr = fmt.Errorf("event %d: %d retries, %v", i, n, err)
				return
			}
		}
	})
	const fbRequests, fbPerRequest = 24, 4000
	wg.Go(func() {
		var c net.Conn
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		pad := strings.Repeat("f", 230) // about 256 bytes an entry: 1 MiB a request
		for r := range fbRequests {
			var entries []byte
			for i := range fbPerRequest {
				entries = wire.AppendEntry(entries, 1700000000e9, legitRecord("fluentbit", r*fbPerRequest+i, pad))
			}
			chunk := fmt.Sprintf("fb-%d", r)
			o := wire.Options{Chunk: chunk, Size: fbPerRequest}
			if r%2 == 0 {
				var z bytes.Buffer
				zw := gzip.NewWriter(&z)
				zw.Write(entries)
				zw.Close()
				entries, o.Compressed = z.Bytes(), true
			}
			n, err := sendRetrying(s.addr, &c, wire.AppendPackedForward(nil, []byte("fb"), entries, o), chunk, deadline)
			fbRetries += n
			if err != nil {
				fbErr = err
				return
			}
		}
	})
	wg.Wait()
	atk.stop()
	peakInuse, peakLive := mem.end()
	if dockerErr != nil {
		t.Errorf("docker client: %v", dockerErr)
	}
	if fbErr != nil {
		t.Errorf("fluent bit client: %v", fbErr)
	}
	if miss := q.missing("docker", dockerEvents); len(miss) > 0 {
		t.Errorf("docker client: %d events missing (first %v)", len(miss), miss[0])
	}
	if miss := q.missing("fluentbit", fbRequests*fbPerRequest); len(miss) > 0 {
		t.Errorf("fluent bit client: %d events missing (first %v)", len(miss), miss[0])
	}
	if n := atk.acked.Load(); n != 0 {
		t.Errorf("hostile clients received %d bytes (acks)", n)
	}
	refused := s.counter(`sluice_input_limit_violations_total{input="fw",limit="memory"}`)
	if refused == 0 {
		t.Error("no connection refused by the memory budget")
	}
	if p := in.mem.peak.Load(); p > budget {
		t.Errorf("reserved %d bytes, budget %d", p, budget)
	}
	if peakLive > budget+overhead {
		t.Errorf("peak live heap %d MiB, over the budget (%d MiB) + %d MiB", peakLive>>20, budget>>20, overhead>>20)
	}
	// Everybody gone: the budget is whole again.
	waitFor(t, 10*time.Second, "the budget to be whole again", func() bool {
		used, active, waiting := in.mem.snapshot()
		return used == 0 && active == 0 && waiting == 0
	})
	t.Logf("peak live heap %d MiB, peak heap objects %d MiB, budget %d MiB, peak reserved %d MiB, hostile connections %d, refused for memory %d, decompressed_bytes %d, waits %d, fluent bit retries %d",
		peakLive>>20, peakInuse>>20, budget>>20, in.mem.peak.Load()>>20, atk.conns.Load(), refused,
		s.counter(`sluice_input_limit_violations_total{input="fw",limit="decompressed_bytes"}`),
		s.counter(`sluice_input_memory_waits_total{input="fw"}`), fbRetries)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

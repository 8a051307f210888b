package forward

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// expectedAcks is what a server that follows the protocol answers to data
// sent on one connection that then ends: the acks of the requests that
// asked for one, in order, up to the first request it cannot decode
// (after which it closes the connection). It is worked out with
// internal/wire alone, independently of the connection handler's read
// buffer, framer and memory budget.
func expectedAcks(data []byte, maxMsg, maxDecompressed int) []byte {
	if len(data) == 0 || data[0] == '{' || data[0] == '[' {
		return nil // refused as JSON
	}
	var acks, scratch []byte
	for rest := data; len(rest) > 0; {
		req, n, err := wire.ReadRequest(rest, maxMsg)
		if err != nil {
			if n > 0 && (errors.Is(err, wire.ErrNotArray) || errors.Is(err, wire.ErrInvalidRequest)) {
				rest = rest[n:]
				continue // skipped, as in_forward does
			}
			return acks // incomplete, too large or not msgpack: closed
		}
		rest = rest[n:]
		if req.Mode == wire.ModeNil {
			continue
		}
		scratch, _, err = req.Events(scratch, maxDecompressed, func(int64, []byte) error { return nil })
		if err != nil {
			return acks // corrupt or too large once decompressed: closed, not acked
		}
		if req.Chunk != nil {
			acks = wire.AppendAck(acks, req.Chunk)
		}
	}
	return acks
}

// heapWatch records the live heap found by every garbage collection
// (runtime/metrics /gc/heap/live:bytes, read from a finalizer that re-arms
// itself each cycle), so that a transient allocation an input provokes
// (a buffer sized from a declared length, a decompression) is seen even
// though it is gone by the time the input is checked.
type heapWatch struct {
	peak atomic.Uint64 // highest live heap since the last reset
	gcs  atomic.Int64  // cycles seen
}

type gcSentinel struct {
	_ [4]*int // pointers and 32 bytes: not a tiny allocation, so it is freed (and finalized) every cycle
}

func watchHeap() *heapWatch {
	w := &heapWatch{}
	w.arm()
	return w
}

func (w *heapWatch) arm() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		w.sample()
		w.gcs.Add(1)
		w.arm() // for the next cycle; the worker process exits at the end
	})
}

func (w *heapWatch) sample() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	for v := s[0].Value.Uint64(); ; {
		p := w.peak.Load()
		if v <= p || w.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// liveHeap is the live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// FuzzForwardSocket writes each input to a fresh connection (TCP, or the
// unix socket for inputs of odd length) to a running forward input, closes its sending side and reads what comes
// back until the server closes. It must not panic or hang; the replies
// must be exactly the acks of the valid requests that asked for one (a
// prefix of them if the server reset the connection, which can discard
// replies in flight), never an ack for invalid data; every stored record
// must be one msgpack map; and the memory budget (1 MiB here, with
// max_message_bytes 64 KiB and max_decompressed_bytes 256 KiB) must never
// be exceeded and must be whole again once the connection is gone.
//
// Nor may the process's live heap, at any garbage collection during an
// input, exceed what it held before fuzzing (base) plus heapAllowance plus
// what the test itself keeps (stored events, the input and its copies).
// With one connection at a time the input needs at most the budget (1 MiB;
// everything it buffers beyond its baseline is reserved from it), the
// connection's baseline (64 KiB read buffer, 64 KiB kept decompression
// scratch, partial lines up to 4 KiB) and the Writer's encoded events
// (about 1 MiB plus one event while a request is handled, up to 4 MiB of
// recycled buffers, pipeline/writer.go maxRetained): about 6.2 MiB, and
// expectedAcks' decompression scratch, 256 KiB. But the live heap a
// collection reports also counts, as live, what was allocated while it
// was marking, and on 2 shared cores at nice 19 a mark phase can last
// long enough for ten thousand connections' worth of buffers: measured up
// to 26 MB over base (a 243-byte input that alone adds nothing). Hence
// heapAllowance 64 MiB: no input may make the server allocate more than
// that, which a buffer sized from a declared length (a 4 GiB bin header,
// an array of 2^32 entries) or a decompression without a bound would do
// by far; what the test keeps is counted exactly. The engine's mutation
// scratch, 100 MB allocated at its first mutation, is added to base once
// when it appears.
func FuzzForwardSocket(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.client.bin"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	stream, _, _ := allModesStream(f)
	f.Add(stream)
	f.Add(append(message("cid", 1700000000, fragment("stdout", "p", 1, false, `{"a":1}`), ""),
		message("cid", 1700000000, fragment("stdout", "p", 2, true, "x"), "c")...))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(bytes.Repeat(entry(1700000000, 0, rec("log", "hello", "n", "1")), 2000)) // 50 KB: over the kept scratch
	zw.Close()
	f.Add(wire.AppendPackedForward(nil, []byte("gz"), z.Bytes(), wire.Options{Chunk: "Z", Compressed: true, Size: 2000}))
	f.Add(gzipBomb(f, 1<<20))
	f.Add(append([]byte{0xc0}, message("t", 1, rec("a", "b"), "k")...))
	f.Add(halfRequest(40 << 10))

	const (
		maxMsg, maxDecompressed = 64 << 10, 256 << 10
		budget                  = 1 << 20
		heapAllowance           = 64 << 20
		// The fuzzing engine's own: internal/fuzz's mutator allocates
		// one scratch buffer the size of its shared memory
		// (workerSharedMemSize, 100 MB, less 100 bytes) at its first
		// mutation, in the worker, after base was measured.
		engineScratch = 100 << 20
	)
	q := &fakeQueue{}
	sock := filepath.Join(f.TempDir(), "fluent.sock")
	s := startServer(f, config.ForwardInput{
		Listen: "127.0.0.1:0", Unix: sock,
		MaxMessageBytes: maxMsg, MaxDecompressedBytes: maxDecompressed, MaxPartialBytes: 4 << 10,
		MaxBufferedBytes: budget, BufferWaitTimeout: time.Second,
		ParseJSON: true, Tag: "{tag}.{name}.{field:a}.{label:x}",
	}, q)
	base := int64(liveHeap())
	rebased := false
	heap := watchHeap()
	var prevLen, prevStored int // the previous input's, still live in a collection early in this one
	f.Fuzz(func(t *testing.T, data []byte) {
		q.mu.Lock()
		q.events = nil // not [:0]: the old array would keep the previous records live
		q.mu.Unlock()
		heap.peak.Store(0)
		network, addr := "tcp", s.addr
		if len(data)%2 == 1 {
			network, addr = "unix", sock // the path Docker's driver and FireLens use
		}
		nc, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		c := nc.(interface {
			net.Conn
			CloseWrite() error
		})
		// Reset rather than close: the server closed first, and on
		// loopback its TIME_WAIT entries would otherwise pile up by the
		// ten thousand and slow every connect down.
		defer abort(c)

		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(data) //nolint:errcheck // the server may close first
			c.CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		reset := isReset(err)
		if err != nil && !reset {
			t.Fatalf("read replies: %v (got %x)", err, got)
		}
		<-wrote
		want := expectedAcks(data, maxMsg, maxDecompressed)
		if reset && bytes.HasPrefix(want, got) {
			want = want[:len(got)]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("replies %x, want the acks %x (reset %v)", got, want, reset)
		}
		// The connection is gone: wait for its goroutine, then the budget
		// must be whole.
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.in.mu.Lock()
			n := len(s.in.conns)
			s.in.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("connection handler still running 10s after the client left")
			}
			time.Sleep(50 * time.Microsecond)
		}
		if used, active, waiting := s.in.mem.snapshot(); used != 0 || active != 0 || waiting != 0 {
			t.Fatalf("budget not whole after the connection: %d reserved, %d holders, %d waiting", used, active, waiting)
		}
		if p := s.in.mem.peak.Load(); p > budget {
			t.Fatalf("reserved %d bytes, budget %d", p, budget)
		}
		events := q.snapshot()
		stored := 0
		for _, e := range events {
			stored += len(e.Record) + len(e.Tag) + 64 // storedEvent, the string and the record; the snapshot's copy of the slice
		}
		stored *= 2   // q.events grows by doubling: up to twice the slots
		heap.sample() // the last collection's, if none ran during this input
		kept := int64(4*max(len(data), prevLen) + stored + prevStored)
		p := int64(heap.peak.Load())
		if p > base+heapAllowance+kept && !rebased {
			// Once per process: the fuzzing engine's mutation scratch,
			// if it is what appeared, still live now that the
			// connection is gone and the budget whole.
			if jump := int64(liveHeap()) - base; jump >= engineScratch-1<<20 && jump <= engineScratch+heapAllowance+kept {
				base += engineScratch
				rebased = true
			}
		}
		if p > base+heapAllowance+kept {
			t.Fatalf("live heap %d bytes at a collection: over %d before fuzzing + %d allowance + %d kept by the test (input %d bytes, %d events stored)",
				p, base, heapAllowance, kept, len(data), len(events))
		}
		prevLen, prevStored = len(data), stored
		for _, e := range events {
			if n, ok := valueLen(e.Record); !ok || n != len(e.Record) {
				t.Fatalf("stored a malformed record %x", e.Record)
			}
			if _, ok := newMapIter(e.Record); !ok {
				t.Fatalf("stored a record that is not a map: %x", e.Record)
			}
		}
	})
}

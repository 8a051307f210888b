package s3

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/versity"
)

const envCrashChild = "SLUICE_S3_CRASH_CHILD"

// crashChild is what the parent hands the child process.
type crashChild struct {
	QueueDir, DataDir string
	Config            config.S3Output
	Delivery          config.Delivery
	Secret            string // config.Secret marshals redacted
}

// TestCrashChild is the child process of TestCrash: it runs the output
// over the queue until it is killed.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(envCrashChild)
	if spec == "" {
		t.Skip("child of TestCrash only")
	}
	var c crashChild
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	c.Config.SecretAccessKey = config.Secret(c.Secret)
	q, err := buffer.Open(c.QueueDir, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := New("s3", c.Config, c.Delivery, c.DataDir, q, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), nil)
	if err != nil {
		t.Fatal(err)
	}
	go q.Run(context.Background())
	o.Run(context.Background()) // until SIGKILL
}

// TestCrash: the output is killed (SIGKILL) while multipart uploads are in
// flight; after a restart over the same queue every event is stored
// (duplicates allowed, losses not) and the abandoned upload is aborted.
func TestCrash(t *testing.T) {
	srv := versity.Start(t)
	srv.CreateBucket(t, "crash")
	qdir := t.TempDir()
	q, err := buffer.Open(qdir, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000 // ~21 MiB of lines: objects of 12 MiB, 3 parts each
	fill(t, q, 0, n, 200, 1000)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// The proxy lets the first object through, then hangs the second
	// part of the next upload: the child dies with it in flight.
	p := newProxy(t, srv.Endpoint())
	var parts2 atomic.Int32
	hung := make(chan struct{})
	var hangOnce sync.Once
	p.hook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("partNumber") == "2" && parts2.Add(1) >= 2 {
			hangOnce.Do(func() { close(hung) })
			p.hang(r)
			return true
		}
		return false
	})
	cfg := testConfig(srv, "crash")
	cfg.Endpoint = p.URL()
	cfg.Compression = "none"
	cfg.MultipartThreshold, cfg.PartBytes, cfg.MaxObjectBytes = 5<<20, 5<<20, 12<<20
	d := fastDelivery()
	d.Workers = 2
	spec, _ := json.Marshal(crashChild{QueueDir: qdir, DataDir: t.TempDir(), Config: cfg, Delivery: d, Secret: srv.SecretKey()})
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), envCrashChild+"="+string(spec))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hung:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("no upload reached part 2 within 60s")
	}
	time.Sleep(200 * time.Millisecond) // the other worker's upload in flight too
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	p.hook(nil)
	before, _ := stored(t, srv, "crash")
	abandoned := srv.ListMultipartUploads(t, "crash")
	if len(abandoned) == 0 {
		t.Fatal("no multipart upload left in flight by the crash")
	}
	t.Logf("at the crash: %d events stored, %d uploads in flight", len(before), len(abandoned))

	// Restart over the same queue; uploads older than 2s are abandoned.
	time.Sleep(2500 * time.Millisecond)
	cfg.AbandonedUploadAge = 2 * time.Second
	q = openQueue(t, qdir, buffer.Options{})
	o := newOutput(t, "s3", cfg, d, q, nil, nil)
	r := start(t, o)
	waitEmpty(t, q, 90*time.Second)
	waitFor(t, 10*time.Second, "the abandoned uploads' abort", func() bool { return int(o.sink.m.abortedAbandoned.Get()) >= len(abandoned) })
	r.stop(t)
	got, _ := stored(t, srv, "crash")
	checkAll(t, got, n, false)
	if ups := srv.ListMultipartUploads(t, "crash"); len(ups) != 0 {
		t.Errorf("uploads left after the restart: %v", ups)
	}
}

// gatedSource passes the first `open` Next calls through, then blocks
// further ones until release: the engine then holds those chunks in an
// open object.
type gatedSource struct {
	*buffer.Queue
	mu    sync.Mutex
	left  int
	gate  chan struct{}
	taken chan struct{} // closed when the first `left` chunks were taken
}

func (g *gatedSource) Next(ctx context.Context) (buffer.Chunk, error) {
	g.mu.Lock()
	if g.left == 0 {
		g.mu.Unlock()
		select {
		case <-g.gate:
		case <-ctx.Done():
			return buffer.Chunk{}, ctx.Err()
		}
		return g.Queue.Next(ctx)
	}
	g.mu.Unlock()
	c, err := g.Queue.Next(ctx)
	if err == nil {
		g.mu.Lock()
		if g.left--; g.left == 0 {
			close(g.taken)
		}
		g.mu.Unlock()
	}
	return c, err
}

// TestDropOldestSparesOpenObject: a small drop_oldest queue overflows
// while the output holds chunks in an open object (not full, flush
// interval far away): those chunks are not dropped, not counted as
// dropped, and are delivered; only unread chunks are dropped.
func TestDropOldestSparesOpenObject(t *testing.T) {
	srv := versity.Start(t)
	srv.CreateBucket(t, "drop")
	q := openQueue(t, t.TempDir(), buffer.Options{MaxBytes: 1 << 20, SegmentBytes: 64 << 10, Overflow: buffer.DropOldest})
	const per, held = 100, 8 // chunks of ~16 KiB, 8 held: two segments
	fill(t, q, 0, held*per, per, 100)
	g := &gatedSource{Queue: q, left: held, gate: make(chan struct{}), taken: make(chan struct{})}
	cfg := testConfig(srv, "drop")
	cfg.MaxObjectBytes = 8 << 20
	d := fastDelivery()
	d.FlushInterval = time.Hour
	d.MaxInFlightBytes = 8 << 20
	o, err := New("s3", cfg, d, t.TempDir(), g, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, o)
	select {
	case <-g.taken:
	case <-time.After(10 * time.Second):
		t.Fatal("the output did not take the first chunks")
	}
	time.Sleep(100 * time.Millisecond) // split into the open object
	// 4 MiB more into a 1 MiB queue.
	const total = held*per + 250*per
	fill(t, q, held*per, total-held*per, per, 100)
	st := q.Stats()
	if st.DroppedEvents == 0 {
		t.Fatalf("nothing dropped: %+v", st)
	}
	if objs := srv.Objects(t, "drop"); len(objs) != 0 {
		t.Fatalf("%d objects before the drain: the object was not open", len(objs))
	}
	close(g.gate)
	o.Drain()
	waitEmpty(t, q, 30*time.Second)
	r.stop(t)
	got, _ := stored(t, srv, "drop")
	for s := range held * per {
		if got[s] != 1 {
			t.Fatalf("seq %d of the open object stored %d times", s, got[s])
		}
	}
	st = q.Stats()
	dups := 0
	for _, c := range got {
		dups += c - 1
	}
	if int64(len(got))+st.DroppedEvents != total || dups != 0 {
		t.Errorf("%d delivered + %d dropped != %d appended (%d duplicates)", len(got), st.DroppedEvents, total, dups)
	}
	t.Logf("%d delivered, %d dropped (%d chunks)", len(got), st.DroppedEvents, st.DroppedChunks)
}

package s3

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/klauspost/compress/zstd"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/versity"
	"github.com/sluice-agent/sluice/internal/wire"
)

// TestMain keeps the AWS SDK off the machine's own AWS settings.
func TestMain(m *testing.M) {
	for _, k := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// record is {"src": "s3test", "seq": n, "log": "line n xxx…\n"}.
func record(seq, pad int) []byte {
	r := msgp.AppendMapHeader(nil, 3)
	r = msgp.AppendString(msgp.AppendString(r, "src"), "s3test")
	r = msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
	return msgp.AppendString(msgp.AppendString(r, "log"), fmt.Sprintf("line %d %s\n", seq, strings.Repeat("x", pad)))
}

// baseTime is the time of seq 0; seq n is n ms later.
var baseTime = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()

func eventTime(seq int) int64 { return baseTime + int64(seq)*int64(time.Millisecond) }

// fill appends events [from, from+n) in chunks of per events, all with
// tag (or tags[seq%len(tags)] chunk-wise when several), each record
// padded with pad bytes.
func fill(t testing.TB, q *buffer.Queue, from, n, per, pad int, tags ...string) {
	t.Helper()
	if len(tags) == 0 {
		tags = []string{"app.web"}
	}
	for c, seq := 0, from; seq < from+n; c++ {
		var e []byte
		k := 0
		for ; k < per && seq < from+n; k++ {
			e = wire.AppendEntry(e, eventTime(seq), record(seq, pad))
			seq++
		}
		if err := q.Append(context.Background(), []byte(tags[c%len(tags)]), k, e); err != nil {
			t.Fatal(err)
		}
	}
}

func openQueue(t testing.TB, dir string, o buffer.Options) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// testConfig is an s3 section for srv's bucket.
func testConfig(srv *versity.Server, bucket string) config.S3Output {
	c := config.DefaultS3Output()
	c.Bucket = bucket
	c.Endpoint = srv.Endpoint()
	c.Region = srv.Region()
	c.ForcePathStyle = true
	c.AccessKeyID = srv.AccessKey()
	c.SecretAccessKey = config.Secret(srv.SecretKey())
	return c
}

// fastDelivery flushes and retries quickly.
func fastDelivery() config.Delivery {
	return config.Delivery{FlushInterval: 200 * time.Millisecond, RetryInitial: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond}
}

// logBuf collects an output's logs.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs o until stop (or the test's end).
func start(t testing.TB, o *Output) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- o.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return within 15s of cancel")
		}
	})
}

func newOutput(t testing.TB, id string, cfg config.S3Output, d config.Delivery, q *buffer.Queue, log *slog.Logger, set *metrics.Set) *Output {
	t.Helper()
	o, err := New(id, cfg, d, t.TempDir(), q, log, set)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func waitEmpty(t testing.TB, q *buffer.Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("queue not settled within %s: %+v", d, q.Stats())
	}
}

// decodeBody returns an object's content, decompressed by its key's
// extension with the standard library's gzip (an independent reader) or
// zstd.
func decodeBody(t testing.TB, key string, body []byte) []byte {
	t.Helper()
	switch {
	case strings.HasSuffix(key, ".gz"):
		br := bytes.NewReader(body)
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		zr.Multistream(false) // one gzip member per object
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: gunzip: %v", key, err)
		}
		if br.Len() > 0 {
			t.Fatalf("%s: %d bytes after the gzip member", key, br.Len())
		}
		return out
	case strings.HasSuffix(key, ".zst"):
		zr, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		out, err := zr.DecodeAll(body, nil)
		if err != nil {
			t.Fatalf("%s: unzstd: %v", key, err)
		}
		return out
	}
	return body
}

// line is a decoded JSON line.
type line struct {
	Seq       *int   `json:"seq"`
	Src       string `json:"src"`
	Log       string `json:"log"`
	Tag       string `json:"tag"`
	Timestamp string `json:"@timestamp"`
}

// seqsOf returns the seq numbers of an object's lines (JSON, or raw
// "line N ..." lines).
func seqsOf(t testing.TB, key string, content []byte) []int {
	t.Helper()
	var seqs []int
	for l := range bytes.Lines(content) {
		l = bytes.TrimSuffix(l, []byte("\n"))
		if bytes.HasPrefix(l, []byte("{")) {
			var v line
			if err := json.Unmarshal(l, &v); err != nil || v.Seq == nil {
				t.Fatalf("%s: bad line %q: %v", key, l, err)
			}
			seqs = append(seqs, *v.Seq)
			continue
		}
		f := strings.Fields(string(l))
		if len(f) < 2 || f[0] != "line" {
			t.Fatalf("%s: bad raw line %q", key, l)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("%s: bad raw line %q", key, l)
		}
		seqs = append(seqs, n)
	}
	if len(content) > 0 && content[len(content)-1] != '\n' {
		t.Fatalf("%s: content does not end with a newline", key)
	}
	return seqs
}

// stored returns how many times each seq is stored in bucket, and the
// objects.
func stored(t testing.TB, srv *versity.Server, bucket string) (map[int]int, []versity.Object) {
	t.Helper()
	objs := srv.Objects(t, bucket)
	got := map[int]int{}
	for _, o := range objs {
		for _, s := range seqsOf(t, o.Key, decodeBody(t, o.Key, o.Body)) {
			got[s]++
		}
	}
	return got, objs
}

// checkAll fails unless every seq in [0, n) is stored, and, with exact,
// exactly once, and nothing else is.
func checkAll(t testing.TB, got map[int]int, n int, exact bool) {
	t.Helper()
	missing, dups := []int{}, 0
	for i := range n {
		switch c := got[i]; {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dups++
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d events missing, first %v", len(missing), n, missing[:min(len(missing), 10)])
	}
	if exact && dups > 0 {
		t.Errorf("%d events stored more than once", dups)
	}
	if len(got) > n {
		t.Errorf("%d distinct seqs stored, want %d", len(got), n)
	}
}

// proxy is a reverse proxy in front of an S3 server whose behaviour a
// test scripts with hook: a hook that returns true has answered.
type proxy struct {
	srv  *httptest.Server
	mu   sync.Mutex
	fn   func(w http.ResponseWriter, r *http.Request) bool
	done chan struct{} // closed at the test's end: hung requests return
}

func newProxy(t testing.TB, target string) *proxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{done: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u) // keeps the Host header: SigV4 still holds
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		fn := p.fn
		p.mu.Unlock()
		if fn != nil && fn(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(p.done)
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

func (p *proxy) URL() string { return p.srv.URL }

// hang holds a request until its client goes away or the test ends (a
// handler that has not read the body does not notice a client's death).
func (p *proxy) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-p.done:
	}
}

func (p *proxy) hook(fn func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	p.fn = fn
	p.mu.Unlock()
}

// slowDown answers like a throttling S3.
func slowDown(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

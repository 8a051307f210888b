package elasticsearch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/esfake"
	"github.com/sluice-agent/sluice/internal/wire"
)

const waitFor = 30 * time.Second

// TestDeliver: every event stored once, gzip on the wire (the fake
// decodes it), the action's index, documents with @timestamp, no product
// header needed (the fake runs without it, as OpenSearch does).
func TestDeliver(t *testing.T) {
	fake := esfake.Start(t, esfake.WithoutProductHeader())
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 20, 100)
	r := startOutput(t, "es", esConfig(fake.URL()), fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	got := seqs(t, fake.Docs())
	for i := range 2000 {
		if got[i] != 1 {
			t.Fatalf("seq %d stored %d times", i, got[i])
		}
	}
	for _, req := range fake.RequestLog() {
		if !req.Gzip || req.WireBytes >= req.BodyBytes || req.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("request %d: gzip %v, %d wire bytes for %d, type %q", req.N, req.Gzip, req.WireBytes, req.BodyBytes, req.Header.Get("Content-Type"))
		}
		if req.Query.Get("filter_path") == "" {
			t.Fatalf("no filter_path: %v", req.Query)
		}
	}
	var d esfake.Doc
	var doc map[string]any
	for _, x := range fake.Docs() {
		if json.Unmarshal(x.Source, &doc); doc["seq"] == float64(7) {
			d = x
			break
		}
	}
	if d.Index != "sluice-2024.01.02" || d.Action != "create" || len(d.ID) != idLen || doc["@timestamp"] != "2024-01-02T03:04:05.007000049Z" {
		t.Fatalf("doc %+v %v", d, doc)
	}
	if st := q.Stats(); st.DeliveredEvents != 2000 || st.DeadLetteredEvents != 0 {
		t.Fatalf("queue %+v", st)
	}
	if n := r.counter(`sluice_output_sent_events_total{output="es"}`); n != 2000 {
		t.Fatalf("sent events %d", n)
	}
}

// TestNoCompression: compress none sends plain NDJSON; pipeline and
// custom headers go along.
func TestNoCompression(t *testing.T) {
	fake := esfake.Start(t)
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 2, 10)
	c := esConfig(fake.URL())
	c.Compress = "none"
	c.Pipeline = "logs-pipe"
	c.Headers = []config.HTTPHeader{{Name: "X-Scope", Value: "tenant-1"}}
	startOutput(t, "es", c, fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	for _, req := range fake.RequestLog() {
		if req.Gzip || req.WireBytes != req.BodyBytes || req.Query.Get("pipeline") != "logs-pipe" || req.Header.Get("X-Scope") != "tenant-1" {
			t.Fatalf("request %+v", req)
		}
	}
	if fake.Count("") != 20 {
		t.Fatalf("%d docs", fake.Count(""))
	}
}

// TestPerItemRetry: items answered 429 (once each) are sent again, and
// only they; the others are stored at the first try.
func TestPerItemRetry(t *testing.T) {
	fake := esfake.Start(t)
	failed := func(it esfake.Item) bool { var v struct{ Seq int }; json.Unmarshal(it.Source, &v); return v.Seq%7 == 3 }
	fake.FailItems(failed, esfake.Fault{Status: 429}, 1)
	fake.FailItems(func(it esfake.Item) bool {
		var v struct{ Seq int }
		json.Unmarshal(it.Source, &v)
		return v.Seq%11 == 5
	}, esfake.Fault{Status: 503, Type: "unavailable_shards_exception"}, 2)
	var mu sync.Mutex
	attempts := map[int]int{}
	fake.Script(func(it esfake.Item) *esfake.Fault {
		var v struct{ Seq int }
		json.Unmarshal(it.Source, &v)
		mu.Lock()
		attempts[v.Seq]++
		mu.Unlock()
		return nil
	})
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 10, 100)
	r := startOutput(t, "es", esConfig(fake.URL()), fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	got := seqs(t, fake.Docs())
	mu.Lock()
	defer mu.Unlock()
	for i := range 1000 {
		want := 1 // a 429 once, then a 503 twice: the rules apply in turn
		if i%7 == 3 {
			want++
		}
		if i%11 == 5 {
			want += 2
		}
		if got[i] != 1 || attempts[i] != want {
			t.Fatalf("seq %d: stored %d times, sent %d times, want 1 and %d", i, got[i], attempts[i], want)
		}
	}
	if n := r.counter(`sluice_output_retried_events_total{output="es"}`); n == 0 {
		t.Fatal("no retries counted")
	}
}

// TestMappingErrorDeadLettered: a 400 item goes to the dead-letter queue
// with the server's error type and reason; the rest is delivered and the
// queue empties.
func TestMappingErrorDeadLettered(t *testing.T) {
	fake := esfake.Start(t)
	const reason = "failed to parse field [seq] of type [long]"
	fake.FailItems(esfake.Contains(`"seq":42,`), esfake.Fault{Status: 400, Type: "mapper_parsing_exception", Reason: reason}, esfake.Always)
	fake.FailItems(esfake.Contains(`"seq":77,`), esfake.Fault{Status: 404, Type: "index_not_found_exception", Reason: "no such index [x]"}, esfake.Always)
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 2, 100)
	r := startOutput(t, "es", esConfig(fake.URL()), fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	r.stop(t)
	if n := fake.Count(""); n != 198 {
		t.Fatalf("%d docs stored, want 198", n)
	}
	if st := q.Stats(); st.DeadLetteredEvents != 2 || st.DeliveredEvents != 198 {
		t.Fatalf("queue %+v", st)
	}
	dls := readDeadLetters(t, dir, "es")
	if len(dls) != 2 {
		t.Fatalf("dead letters %+v", dls)
	}
	want := map[int]deadLetter{
		42: {42, "mapper_parsing_exception", reason, "es"},
		77: {77, "index_not_found_exception", "no such index [x]", "es"},
	}
	for _, dl := range dls {
		if w := want[dl.seq]; dl != w {
			t.Fatalf("dead letter %+v, want %+v", dl, w)
		}
	}
	if n := r.counter(`sluice_output_dead_lettered_events_total{output="es",reason="mapper_parsing_exception"}`); n != 1 {
		t.Fatalf("dead-lettered counter %d", n)
	}
}

// TestIdempotentResend: the same chunks sent again (what a restart after
// a crash does before the acks reached the disk) are answered 409 and
// count as delivered: no duplicate document.
func TestIdempotentResend(t *testing.T) {
	fake := esfake.Start(t)
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 5, 100)
	r := startOutput(t, "es", esConfig(fake.URL()), fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	r.stop(t)
	if fake.Count("") != 500 {
		t.Fatalf("%d docs", fake.Count(""))
	}
	// A second queue with the same chunks at the same positions: the same
	// stable ids.
	dir2 := t.TempDir()
	q2 := openQueue(t, dir2+"/q")
	fill(t, q2, 0, 5, 100)
	r2 := startOutput(t, "es", esConfig(fake.URL()), fastDelivery(), q2, dir2)
	waitEmpty(t, q2, waitFor)
	if n := fake.Count(""); n != 500 || len(fake.Docs()) != 500 {
		t.Fatalf("%d docs after the re-send (%d writes), want 500", n, len(fake.Docs()))
	}
	if st := q2.Stats(); st.DeliveredEvents != 500 {
		t.Fatalf("re-sent queue %+v", st)
	}
	if n := r2.counter(`sluice_output_es_conflicts_total{output="es"}`); n != 500 {
		t.Fatalf("conflicts %d, want 500", n)
	}
	// Without stable ids the same re-send duplicates.
	dir3 := t.TempDir()
	q3 := openQueue(t, dir3+"/q")
	fill(t, q3, 0, 5, 100)
	c := esConfig(fake.URL())
	c.IDMode = "none"
	startOutput(t, "es", c, fastDelivery(), q3, dir3)
	waitEmpty(t, q3, waitFor)
	if n := fake.Count(""); n != 1000 {
		t.Fatalf("%d docs with id_mode none, want 1000", n)
	}
}

// TestWholeRequestRetryAfter: a whole-request 429 with Retry-After waits
// at least that long; a 500 and a 503 are retried; nothing is lost.
func TestWholeRequestRetryAfter(t *testing.T) {
	fake := esfake.Start(t)
	fake.Next(esfake.Reply{Status: 429, RetryAfter: "1"}, esfake.Reply{Status: 500}, esfake.Reply{Status: 503})
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 1, 50)
	c := esConfig(fake.URL())
	c.HostBackoff = time.Millisecond
	start := time.Now()
	startOutput(t, "es", c, fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	if d := time.Since(start); d < time.Second {
		t.Fatalf("delivered after %s, before Retry-After", d)
	}
	log := fake.RequestLog()
	if len(log) != 4 || log[0].Status != 429 || log[1].Status != 500 || log[2].Status != 503 || log[3].Status != 200 {
		t.Fatalf("requests %+v", log)
	}
	if fake.Count("") != 50 {
		t.Fatalf("%d docs", fake.Count(""))
	}
}

// TestWrongCredentials: 401 keeps the data queued, logged at error level
// without the secret; once the credentials work, everything arrives.
func TestWrongCredentials(t *testing.T) {
	fake := esfake.Start(t, esfake.WithBasicAuth("elastic", "right-password"))
	var fixed atomic.Bool
	target, _ := url.Parse(fake.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		director(r)
		if fixed.Load() { // the operator fixed the server's user
			r.SetBasicAuth("elastic", "right-password")
		}
	}
	front := httptest.NewServer(proxy)
	defer front.Close()

	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 3, 10)
	c := esConfig(front.URL)
	c.Username, c.Password = "elastic", "wrong-password"
	r := startOutput(t, "es", c, fastDelivery(), q, dir)
	deadline := time.Now().Add(waitFor)
	for fake.Requests() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := q.Stats(); st.Pending != 3 || fake.Count("") != 0 {
		t.Fatalf("settled with wrong credentials: %+v", st)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "HTTP 401 security_exception") || !strings.Contains(logs, "credentials") {
		t.Fatalf("no clear error logged:\n%s", logs)
	}
	if strings.Contains(logs, "wrong-password") {
		t.Fatal("the password was logged")
	}
	fixed.Store(true)
	waitEmpty(t, q, waitFor)
	if fake.Count("") != 30 {
		t.Fatalf("%d docs", fake.Count(""))
	}
}

// TestAPIKey: Authorization: ApiKey.
func TestAPIKey(t *testing.T) {
	key := esfake.APIKey("id1", "secret1")
	fake := esfake.Start(t, esfake.WithAPIKey(key))
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 1, 10)
	c := esConfig(fake.URL())
	c.APIKey = config.Secret(key)
	startOutput(t, "es", c, fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	if fake.Count("") != 10 {
		t.Fatalf("%d docs", fake.Count(""))
	}
}

// TestFailover: the first host is dead, the second serves; the dead one
// is skipped for its back-off instead of being dialled per request.
func TestFailover(t *testing.T) {
	dead := deadURL(t)
	fake := esfake.Start(t)
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	c := esConfig(dead, fake.URL()+"/")
	c.MaxBulkEvents = 10
	d := fastDelivery()
	d.Workers = 1
	r := startOutput(t, "es", c, d, q, dir)
	fill(t, q, 0, 10, 10)
	waitEmpty(t, q, waitFor)
	if fake.Count("") != 100 {
		t.Fatalf("%d docs", fake.Count(""))
	}
	host := strings.TrimSuffix(dead, "/")
	if n := r.counter(fmt.Sprintf(`sluice_output_es_host_failures_total{output="es",host=%q}`, host)); n != 1 {
		t.Fatalf("dead host failed %d times, want 1 (skipped during its back-off)", n)
	}
	if !strings.Contains(r.logs.String(), "host down") {
		t.Fatalf("no host down log:\n%s", r.logs.String())
	}
	// Both dead: data stays queued; the second comes back: delivered, and
	// its recovery is logged.
	fake.Stop()
	fill(t, q, 100, 1, 10)
	time.Sleep(300 * time.Millisecond)
	if st := q.Stats(); st.Pending != 1 {
		t.Fatalf("queue %+v", st)
	}
	fake.Restart(t)
	waitEmpty(t, q, waitFor)
	if fake.Count("") != 110 {
		t.Fatalf("%d docs", fake.Count(""))
	}
}

// TestTooLarge: a server whose http.max_content_length is below
// max_bulk_bytes answers 413; later batches are smaller and all arrive;
// an event too large for the server alone is dead-lettered (too_large),
// as is one over max_bulk_bytes, which is never sent.
func TestTooLarge(t *testing.T) {
	fake := esfake.Start(t, esfake.WithMaxContentLength(16<<10))
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 4, 100) // ~150 bytes per item: ~60 KiB
	big := func(seq, n int) []byte {
		r := rec(seq, "web")
		r[0]++ // one more member
		r = append(r, 0xa3, 'p', 'a', 'd')
		return append(r, append([]byte{0xda, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'z'}, n)...)...)
	}
	for seq, n := range map[int]int{400: 20 << 10, 401: 40 << 10} {
		e := wire.AppendEntry(nil, evTime(seq), big(seq, n))
		if err := q.Append(t.Context(), []byte("app.web"), 1, e); err != nil {
			t.Fatal(err)
		}
	}
	c := esConfig(fake.URL())
	c.Compress = "none"
	c.MaxBulkBytes = 32 << 10
	r := startOutput(t, "es", c, fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	r.stop(t)
	if n := fake.Count(""); n != 400 {
		t.Fatalf("%d docs, want 400", n)
	}
	dls := readDeadLetters(t, dir, "es")
	if len(dls) != 2 || dls[0].reason != "too_large" || dls[1].reason != "too_large" {
		t.Fatalf("dead letters %+v", dls)
	}
	if n := r.counter(`sluice_output_es_bulk_limit_bytes{output="es"}`); n == 0 || n > 16<<10 {
		t.Fatalf("bulk limit %d", n)
	}
	if !strings.Contains(r.logs.String(), "max_bulk_bytes") {
		t.Fatalf("no advice logged:\n%s", r.logs.String())
	}
}

// vlLike is a server that, as VictoriaLogs does for a bad @timestamp,
// refuses a whole request with a plain-text 400 when any document holds
// "bad", and else answers every item 201. It counts the documents stored.
type vlLike struct {
	mu       sync.Mutex
	stored   map[int]int
	requests int
	short    int // answer this many next requests with one item too few
}

func (v *vlLike) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	var docs [][]byte
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		if i%2 == 1 {
			docs = append(docs, bytes.Clone(sc.Bytes()))
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.requests++
	for _, d := range docs {
		if bytes.Contains(d, []byte("bad")) {
			http.Error(w, "cannot parse timestamp \"bad\"", http.StatusBadRequest)
			return
		}
	}
	n := len(docs)
	if v.short > 0 {
		v.short--
		n--
	} else {
		for _, d := range docs {
			var s struct{ Seq int }
			json.Unmarshal(d, &s)
			v.stored[s.Seq]++
		}
	}
	var b strings.Builder
	b.WriteString(`{"errors":false,"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"create":{"status":201}}`)
	}
	b.WriteString("]}")
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, b.String())
}

// TestWholeRequest400Bisected: a request refused as a whole is split down
// to the event at fault, which is dead-lettered with the server's text;
// every other event arrives.
func TestWholeRequest400Bisected(t *testing.T) {
	v := &vlLike{stored: map[int]int{}}
	srv := httptest.NewServer(v)
	defer srv.Close()
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	for i := range 64 {
		r := rec(i, "web")
		if i == 37 {
			r = rec(i, "bad")
		}
		e := wire.AppendEntry(nil, evTime(i), r)
		if err := q.Append(t.Context(), []byte("app.web"), 1, e); err != nil {
			t.Fatal(err)
		}
	}
	o := startOutput(t, "es", esConfig(srv.URL), fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	o.stop(t)
	v.mu.Lock()
	for i := range 64 {
		if want := map[bool]int{true: 0, false: 1}[i == 37]; v.stored[i] != want {
			t.Fatalf("seq %d stored %d times", i, v.stored[i])
		}
	}
	v.mu.Unlock()
	dls := readDeadLetters(t, dir, "es")
	if len(dls) != 1 || dls[0].seq != 37 || dls[0].reason != "http_400" || !strings.Contains(dls[0].detail, "cannot parse timestamp") {
		t.Fatalf("dead letters %+v", dls)
	}
}

// TestWholeRequest400Unproven: a server that has accepted nothing yet and
// refuses everything as a whole is taken for a configuration problem: no
// event is dead-lettered, the data stays queued.
func TestWholeRequest400Unproven(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"type":"illegal_argument_exception","reason":"request [/_bulk] contains unrecognized parameter"},"status":400}`, 400)
	}))
	defer srv.Close()
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 2, 4)
	r := startOutput(t, "es", esConfig(srv.URL), fastDelivery(), q, dir)
	waitLastError(t, r, "illegal_argument_exception")
	time.Sleep(200 * time.Millisecond) // more retries
	if st := q.Stats(); st.Pending != 2 || st.DeadLetteredEvents != 0 {
		t.Fatalf("queue %+v", st)
	}
}

// TestShortResponse: an answer with fewer items than documents retries
// the whole batch.
func TestShortResponse(t *testing.T) {
	v := &vlLike{stored: map[int]int{}, short: 1}
	srv := httptest.NewServer(v)
	defer srv.Close()
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 1, 20)
	r := startOutput(t, "es", esConfig(srv.URL), fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.stored) != 20 || v.requests != 2 {
		t.Fatalf("stored %d seqs in %d requests", len(v.stored), v.requests)
	}
	if !strings.Contains(r.logs.String(), "19 items for 20 documents") {
		t.Fatalf("not logged:\n%s", r.logs.String())
	}
}

package s3

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/versity"
	"github.com/sluice-agent/sluice/internal/wire"
)

// TestDeliverAll: 20,000 events through a real queue end up in objects
// that decode (gzip, zstd, plain) to every seq number, with the headers
// and metadata documented.
func TestDeliverAll(t *testing.T) {
	srv := versity.Start(t)
	const n = 20000
	for _, tc := range []struct {
		name, compression, format string
		ctype, ext                string
	}{
		{"gzip_json", "gzip", "json", "application/gzip", ".json.gz"},
		{"zstd_json", "zstd", "json", "application/zstd", ".json.zst"},
		{"none_raw", "none", "raw", "text/plain; charset=utf-8", ".log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := strings.ReplaceAll(tc.name, "_", "-")
			srv.CreateBucket(t, bucket)
			q := openQueue(t, t.TempDir(), buffer.Options{})
			fill(t, q, 0, n, 250, 100, "app.web", "app.db")
			cfg := testConfig(srv, bucket)
			cfg.Compression, cfg.Format = tc.compression, tc.format
			cfg.MaxObjectBytes = 1 << 20 // several objects
			o := newOutput(t, "s3", cfg, fastDelivery(), q, nil, nil)
			r := start(t, o)
			waitEmpty(t, q, 60*time.Second)
			r.stop(t)

			got, objs := stored(t, srv, bucket)
			checkAll(t, got, n, true)
			if len(objs) < 4 {
				t.Errorf("%d objects, want several (max_object_bytes 1MiB)", len(objs))
			}
			re := regexp.MustCompile(`^logs/app\.(web|db)/2026/11/25/10/[A-Za-z0-9!_.*'()-]+-[0-9A-HJKMNP-TV-Z]{26}` + regexp.QuoteMeta(tc.ext) + `$`)
			events := 0
			for _, ob := range objs {
				if !re.MatchString(ob.Key) {
					t.Errorf("key %q does not match %s", ob.Key, re)
				}
				if ob.ContentType != tc.ctype || ob.ContentEncoding != "" {
					t.Errorf("%s: content type %q encoding %q, want %q and none", ob.Key, ob.ContentType, ob.ContentEncoding, tc.ctype)
				}
				c, err := strconv.Atoi(ob.Metadata["sluice-events"])
				if err != nil {
					t.Errorf("%s: metadata %v", ob.Key, ob.Metadata)
				}
				events += c
				content := decodeBody(t, ob.Key, ob.Body)
				if tc.format == "json" {
					first := content[:strings.IndexByte(string(content), '\n')]
					if !regexp.MustCompile(`^\{"@timestamp":"2026-11-25T10:\d\d:\d\d\.\d{9}Z","tag":"app\.(web|db)","src":"s3test","seq":\d+,"log":"line \d+ x+\\n"\}$`).Match(first) {
						t.Errorf("%s: first line %s", ob.Key, first)
					}
				}
				// An object holds one tag: the one in its key.
				tag := strings.Split(ob.Key, "/")[1]
				for _, s := range seqsOf(t, ob.Key, content) {
					if want := []string{"app.web", "app.db"}[s/250%2]; want != tag {
						t.Fatalf("%s holds seq %d of tag %s", ob.Key, s, want)
					}
				}
			}
			if events != n {
				t.Errorf("metadata counts %d events, want %d", events, n)
			}
		})
	}
}

// TestKeyPartitions: the key template is rendered per event: tag parts,
// hostname, index and the time of the events (UTC), one object per
// distinct key, with Content-Encoding when asked.
func TestKeyPartitions(t *testing.T) {
	srv := versity.Start(t)
	srv.CreateBucket(t, "parts")
	q := openQueue(t, t.TempDir(), buffer.Options{})
	// seq 0..99 at 10:00, 100..199 an hour later; two tags, chunk-wise.
	for h := range 2 {
		for c := range 2 {
			openFill(t, q, h*100+c*50, 50, []string{"kube.ns1.web", "kube.ns2.db"}[c], baseTime+int64(h)*int64(time.Hour))
		}
	}
	cfg := testConfig(srv, "parts")
	cfg.Key = "archive/{tag[1]}/dt=%Y-%m-%d/h=%H/{hostname}-{index}-{unique}{ext}"
	cfg.SetContentEncoding = true
	o := newOutput(t, "s3", cfg, fastDelivery(), q, nil, nil)
	r := start(t, o)
	waitEmpty(t, q, 30*time.Second)
	r.stop(t)
	got, objs := stored(t, srv, "parts")
	checkAll(t, got, 200, true)
	host := o.sink.key.hostname
	re := regexp.MustCompile(`^archive/(ns1|ns2)/dt=2026-11-25/h=(10|11)/` + regexp.QuoteMeta(host) + `-([0-9]+)-[0-9A-HJKMNP-TV-Z]{26}\.json\.gz$`)
	parts := map[string]int{}
	for _, ob := range objs {
		m := re.FindStringSubmatch(ob.Key)
		if m == nil {
			t.Errorf("key %q does not match %s", ob.Key, re)
			continue
		}
		parts[m[1]+"/"+m[2]]++
		if ob.ContentEncoding != "gzip" || ob.ContentType != "application/x-ndjson" {
			t.Errorf("%s: content type %q encoding %q", ob.Key, ob.ContentType, ob.ContentEncoding)
		}
		for _, s := range seqsOf(t, ob.Key, decodeBody(t, ob.Key, ob.Body)) {
			ns, hour := []string{"ns1", "ns2"}[s%100/50], strconv.Itoa(10+s/100)
			if m[1] != ns || m[2] != hour {
				t.Errorf("%s holds seq %d (%s, hour %s)", ob.Key, s, ns, hour)
			}
		}
	}
	if len(parts) != 4 {
		t.Errorf("partitions %v, want 4", parts)
	}
}

// openFill appends n events from seq from with tag, one chunk, the first
// at t0 (1ms apart).
func openFill(t *testing.T, q *buffer.Queue, from, n int, tag string, t0 int64) {
	t.Helper()
	var e []byte
	for i := range n {
		e = wire.AppendEntry(e, t0+int64(i)*int64(time.Millisecond), record(from+i, 10))
	}
	if err := q.Append(t.Context(), []byte(tag), n, e); err != nil {
		t.Fatal(err)
	}
}

// TestWrongSecret: with a wrong secret every upload fails with a clear
// error naming the problem, nothing is stored and the data stays queued;
// an output restarted with the right key over the same queue delivers it
// all.
func TestWrongSecret(t *testing.T) {
	srv := versity.Start(t)
	srv.CreateBucket(t, "secret")
	q := openQueue(t, t.TempDir(), buffer.Options{})
	const n = 2000
	fill(t, q, 0, n, 100, 50)
	cfg := testConfig(srv, "secret")
	cfg.SecretAccessKey = "not-the-secret"
	var logs logBuf
	set := metrics.NewSet()
	o := newOutput(t, "s3", cfg, fastDelivery(), q, logs.logger(), set)
	r := start(t, o)
	waitFor(t, 20*time.Second, "a failed upload", func() bool { return strings.Contains(logs.String(), "SignatureDoesNotMatch") })
	time.Sleep(time.Second) // a few retries
	r.stop(t)
	l := logs.String()
	if !strings.Contains(l, "the secret access key does not match the access key id") || !strings.Contains(l, "level=ERROR") {
		t.Errorf("no clear error in the logs:\n%s", l)
	}
	if c := strings.Count(l, "level=ERROR"); c != 1 {
		t.Errorf("%d error-level logs within a second, want 1 (once per minute)", c)
	}
	if strings.Contains(l, "not-the-secret") {
		t.Errorf("the secret is in the logs")
	}
	if objs := srv.Objects(t, "secret"); len(objs) != 0 {
		t.Errorf("%d objects stored with a wrong secret", len(objs))
	}
	if st := q.Stats(); st.PendingEvents != n {
		t.Errorf("pending events %d, want %d", st.PendingEvents, n)
	}

	cfg.SecretAccessKey = config.Secret(srv.SecretKey())
	o = newOutput(t, "s3", cfg, fastDelivery(), q, nil, nil)
	r = start(t, o)
	waitEmpty(t, q, 30*time.Second)
	r.stop(t)
	got, _ := stored(t, srv, "secret")
	checkAll(t, got, n, true)
}

// TestMultipart: an object above multipart_threshold is uploaded in parts
// of part_bytes and reads back whole.
func TestMultipart(t *testing.T) {
	srv := versity.Start(t)
	srv.CreateBucket(t, "multi")
	q := openQueue(t, t.TempDir(), buffer.Options{})
	const n = 12000 // ~13 MiB of lines
	fill(t, q, 0, n, 200, 1000)
	cfg := testConfig(srv, "multi")
	cfg.Compression = "none"
	cfg.MultipartThreshold = 5 << 20
	cfg.PartBytes = 5 << 20
	cfg.MaxObjectBytes = 64 << 20
	set := metrics.NewSet()
	d := fastDelivery()
	d.FlushInterval = 2 * time.Second
	o := newOutput(t, "s3", cfg, d, q, nil, set)
	r := start(t, o)
	waitEmpty(t, q, 60*time.Second)
	r.stop(t)
	got, objs := stored(t, srv, "multi")
	checkAll(t, got, n, true)
	multi := 0
	for _, ob := range objs {
		if ob.Size > 5<<20 {
			multi++
			if !regexp.MustCompile(`-[0-9]+"?$`).MatchString(ob.ETag) {
				t.Errorf("%s: %d bytes, ETag %s is not a multipart ETag", ob.Key, ob.Size, ob.ETag)
			}
			if ob.Metadata["sluice-events"] == "" || ob.ContentType != "application/x-ndjson" {
				t.Errorf("%s: metadata %v, content type %q", ob.Key, ob.Metadata, ob.ContentType)
			}
		}
	}
	if multi == 0 || o.sink.m.multipart.Get() == 0 {
		t.Errorf("no multipart object among %d (uploads %d)", len(objs), o.sink.m.multipart.Get())
	}
	if ups := srv.ListMultipartUploads(t, "multi"); len(ups) != 0 {
		t.Errorf("uploads left: %v", ups)
	}
}

// TestMultipartFailureAborted: a part that fails for good aborts its
// upload; the batch is retried whole and stored once.
func TestMultipartFailureAborted(t *testing.T) {
	srv := versity.Start(t)
	srv.CreateBucket(t, "abort")
	p := newProxy(t, srv.Endpoint())
	var fails atomic.Int32
	p.hook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("partNumber") == "2" && fails.Add(1) <= 3 { // the SDK's 3 attempts
			slowDown(w)
			return true
		}
		return false
	})
	q := openQueue(t, t.TempDir(), buffer.Options{})
	const n = 12000
	fill(t, q, 0, n, 200, 1000)
	cfg := testConfig(srv, "abort")
	cfg.Endpoint = p.URL()
	cfg.Compression = "none"
	cfg.MultipartThreshold, cfg.PartBytes, cfg.MaxObjectBytes = 5<<20, 5<<20, 64<<20
	d := fastDelivery()
	d.FlushInterval = 2 * time.Second
	o := newOutput(t, "s3", cfg, d, q, nil, nil)
	r := start(t, o)
	waitEmpty(t, q, 90*time.Second)
	r.stop(t)
	got, _ := stored(t, srv, "abort")
	checkAll(t, got, n, true)
	if o.sink.m.abortedFailed.Get() == 0 {
		t.Errorf("no upload aborted after %d part failures", fails.Load())
	}
	if ups := srv.ListMultipartUploads(t, "abort"); len(ups) != 0 {
		t.Errorf("uploads left: %v", ups)
	}
}

// TestPartialFailure: when one object of a batch fails, only its events
// are sent again; the other objects are stored once.
func TestPartialFailure(t *testing.T) {
	srv := versity.Start(t)
	srv.CreateBucket(t, "partial")
	p := newProxy(t, srv.Endpoint())
	var fails atomic.Int32
	p.hook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/app.db/") && fails.Add(1) <= 3 {
			slowDown(w)
			return true
		}
		return false
	})
	q := openQueue(t, t.TempDir(), buffer.Options{})
	const n = 1000
	fill(t, q, 0, n, 50, 20, "app.web", "app.db")
	cfg := testConfig(srv, "partial")
	cfg.Endpoint = p.URL()
	d := fastDelivery()
	d.FlushInterval = time.Second
	set := metrics.NewSet()
	o := newOutput(t, "s3", cfg, d, q, nil, set)
	r := start(t, o)
	waitEmpty(t, q, 30*time.Second)
	r.stop(t)
	got, objs := stored(t, srv, "partial")
	checkAll(t, got, n, true)
	web, db := 0, 0
	for _, ob := range objs {
		if strings.Contains(ob.Key, "/app.web/") {
			web++
		} else {
			db++
		}
	}
	if web != 1 || db != 1 {
		t.Errorf("%d app.web and %d app.db objects, want 1 and 1 (the failed object retried alone)", web, db)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	if !strings.Contains(sb.String(), `sluice_output_requests_total{output="s3",result="partial"} 1`) {
		t.Errorf("no partial request counted:\n%s", grepLines(sb.String(), "requests_total"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUploadOptions: checksum algorithms, storage class and SSE headers
// are accepted on single and multipart uploads.
func TestUploadOptions(t *testing.T) {
	srv := versity.Start(t)
	for name, edit := range map[string]func(c *config.S3Output){
		"crc32c":  func(c *config.S3Output) { c.Checksum = "CRC32C" },
		"sha256":  func(c *config.S3Output) { c.Checksum = "SHA256" },
		"none":    func(c *config.S3Output) { c.Checksum = "none" },
		"class":   func(c *config.S3Output) { c.StorageClass = "STANDARD" },
		"sse-s3":  func(c *config.S3Output) { c.SSE = "AES256" },
		"encoded": func(c *config.S3Output) { c.SetContentEncoding, c.ContentType = true, "application/json" },
	} {
		t.Run(name, func(t *testing.T) {
			srv.CreateBucket(t, "opt-"+name)
			q := openQueue(t, t.TempDir(), buffer.Options{})
			fill(t, q, 0, 6000, 200, 1000, "app.big")   // ~6.5 MiB: multipart
			fill(t, q, 6000, 100, 100, 10, "app.small") // a small PUT
			cfg := testConfig(srv, "opt-"+name)
			cfg.Compression = "none"
			if name == "encoded" {
				cfg.Compression = "gzip"
			}
			cfg.MultipartThreshold, cfg.PartBytes = 5<<20, 5<<20
			edit(&cfg)
			var logs logBuf
			d := fastDelivery()
			d.FlushInterval = time.Second
			o := newOutput(t, "s3", cfg, d, q, logs.logger(), nil)
			r := start(t, o)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := q.WaitEmpty(ctx); err != nil {
				t.Fatalf("not delivered: %v\n%s", err, logs.String())
			}
			r.stop(t)
			got, objs := stored(t, srv, "opt-"+name)
			checkAll(t, got, 6100, true)
			if name != "encoded" && o.sink.m.multipart.Get() == 0 {
				t.Errorf("no multipart upload")
			}
			for _, ob := range objs {
				if name == "encoded" && (ob.ContentEncoding != "gzip" || ob.ContentType != "application/json") {
					t.Errorf("%s: content type %q encoding %q", ob.Key, ob.ContentType, ob.ContentEncoding)
				}
			}
		})
	}
}

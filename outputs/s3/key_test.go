package s3

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

func TestKeyTemplate(t *testing.T) {
	k, err := newKeyTemplate("logs/{tag}/{tag[1]}/{tag[9]}/%Y/%m/%d/%H/%M/%S/%y-%j/{hostname}-{index}-{unique}{ext}", "node/1 a", ".json.gz")
	if err != nil {
		t.Fatal(err)
	}
	ns := time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC).UnixNano()
	got := string(k.appendPartition(nil, []byte("kube.ns/x.pod name"), ns))
	want := "logs/kube.ns_x.pod_name/ns_x/_/2026/02/03/04/05/06/26-034/node_1_a-\x00i-\x00u.json.gz"
	if got != want {
		t.Errorf("partition\n got %q\nwant %q", got, want)
	}
	key := finalKey(got, 7, time.Now())
	if !k.matcher().MatchString(key) {
		t.Errorf("matcher does not match %q", key)
	}
	if !strings.HasPrefix(key, "logs/kube.ns_x.pod_name/ns_x/_/2026/02/03/04/05/06/26-034/node_1_a-7-") || !strings.HasSuffix(key, ".json.gz") {
		t.Errorf("key %q", key)
	}
	if k.staticPrefix() != "logs/" {
		t.Errorf("static prefix %q", k.staticPrefix())
	}
	if k.matcher().MatchString(strings.Replace(key, "node_1_a", "other", 1)) {
		t.Errorf("matcher matches another host's key")
	}

	// Time partitions: the finest directive sets the span.
	for tmpl, span := range map[string]time.Duration{
		"{unique}": 0, "%Y/{unique}": 365 * 24 * time.Hour, "%Y/%m/%d/{unique}": 24 * time.Hour,
		"%H/{unique}": time.Hour, "%H%M/{unique}": time.Minute, "%S/{unique}": time.Second,
	} {
		k, err := newKeyTemplate(tmpl, "h", "")
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := k.bucket(ns)
		if span == 0 {
			if lo != -1<<63 || hi != 1<<63-1 {
				t.Errorf("%s: bucket [%d, %d)", tmpl, lo, hi)
			}
			continue
		}
		if lo > ns || ns >= hi || time.Duration(hi-lo) != span {
			t.Errorf("%s: bucket %s..%s", tmpl, time.Unix(0, lo).UTC(), time.Unix(0, hi).UTC())
		}
		if a, b := string(k.appendPartition(nil, nil, lo)), string(k.appendPartition(nil, nil, hi-1)); a != b {
			t.Errorf("%s: partition changes inside its bucket: %q %q", tmpl, a, b)
		}
		if a, b := string(k.appendPartition(nil, nil, lo)), string(k.appendPartition(nil, nil, hi)); a == b {
			t.Errorf("%s: partition does not change at the bucket's end", tmpl)
		}
	}

	// {unique}: 26 Crockford characters, ordered by time, all distinct.
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		u := string(appendULID(nil, time.UnixMilli(int64(1e12+i))))
		if len(u) != 26 || strings.Trim(u, crockford) != "" || seen[u] || u <= prev {
			t.Fatalf("bad or repeated unique %q after %q", u, prev)
		}
		seen[u], prev = true, u
	}
}

// TestGzipBlocks: an object compressed block by block is one gzip member
// that the standard library and gzip(1) read back whole.
func TestGzipBlocks(t *testing.T) {
	cfg := config.DefaultS3Output()
	cfg.Bucket, cfg.Region, cfg.Endpoint = "b", "us-east-1", "http://127.0.0.1:1"
	for _, comp := range []string{"gzip", "zstd", "none"} {
		cfg.Compression = comp
		o, err := New("t", cfg, config.Delivery{}, t.TempDir(), nopSource{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc := o.sink.NewEncoder().(*encoder)
		var want []byte
		n := 0
		for enc.raw < 3*blockBytes+1000 {
			rec := record(n, 50+n%200)
			ev := delivery.Event{Tag: []byte("app.web"), Time: eventTime(n), Record: rec, Entry: wire.AppendEntry(nil, eventTime(n), rec)}
			if err := enc.Add(&ev); err != nil {
				t.Fatal(err)
			}
			want, _ = o.sink.json.AppendRecord(want, ev.Tag, ev.Time, rec)
			want = append(want, '\n')
			n++
		}
		enc.finish()
		if len(enc.objs) != 1 {
			t.Fatalf("%d objects", len(enc.objs))
		}
		obj := enc.objs[0]
		key := finalKey(obj.partition, 1, time.Now())
		if got := decodeBody(t, key, obj.body); !bytes.Equal(got, want) {
			t.Fatalf("%s: content differs (%d vs %d bytes)", comp, len(got), len(want))
		}
		if comp == "gzip" {
			zr, _ := gzip.NewReader(bytes.NewReader(obj.body))
			if b, _ := io.ReadAll(zr); !bytes.Equal(b, want) {
				t.Fatal("multistream read differs")
			}
			if bin, err := exec.LookPath("gzip"); err == nil {
				f := filepath.Join(t.TempDir(), "o.gz")
				os.WriteFile(f, obj.body, 0o644)
				if out, err := exec.Command(bin, "-t", f).CombinedOutput(); err != nil {
					t.Fatalf("gzip -t: %v %s", err, out)
				}
			}
			t.Logf("gzip: %d events, %d bytes -> %d (%.2fx)", n, len(want), len(obj.body), float64(len(want))/float64(len(obj.body)))
		}
	}
}

type nopSource struct{ delivery.Source }

// TestEncoderRules: raw lines, the JSON fallback, refused events, the
// open-object bound and the size caps.
func TestEncoderRules(t *testing.T) {
	mk := func(edit func(c *config.S3Output), d config.Delivery) *encoder {
		cfg := config.DefaultS3Output()
		cfg.Bucket, cfg.Region, cfg.Endpoint = "b", "us-east-1", "http://127.0.0.1:1"
		cfg.Compression = "none"
		edit(&cfg)
		o, err := New("t", cfg, d, t.TempDir(), nopSource{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return o.sink.NewEncoder().(*encoder)
	}
	ev := func(tag string, seq int, rec []byte) *delivery.Event {
		return &delivery.Event{Tag: []byte(tag), Time: eventTime(seq), Record: rec, Entry: wire.AppendEntry(nil, eventTime(seq), rec)}
	}

	// Raw: the log field without its newline; no log field: the JSON line.
	e := mk(func(c *config.S3Output) { c.Format = "raw" }, config.Delivery{})
	noLog := msgp.AppendString(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "msg"), "hi")
	crlf := msgp.AppendString(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "log"), "a\tb\r\n")
	for _, x := range []*delivery.Event{ev("t", 0, record(0, 3)), ev("t", 1, noLog), ev("t", 2, crlf)} {
		if err := e.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	e.finish()
	if got, want := string(e.objs[0].body), "line 0 xxx\n{\"@timestamp\":\"2026-11-25T10:00:00.001000000Z\",\"tag\":\"t\",\"msg\":\"hi\"}\na\tb\r\n"; got != want {
		t.Errorf("raw object\n got %q\nwant %q", got, want)
	}
	if n := e.s.m.rawFallback.Get(); n != 1 {
		t.Errorf("raw fallbacks %d, want 1", n)
	}

	// A record that does not transcode is refused; no empty object stays.
	e = mk(func(*config.S3Output) {}, config.Delivery{})
	err := e.Add(ev("other", 0, []byte{0x81, 0xc1, 0x01})) // key of a reserved type
	var rej *delivery.RejectError
	if !errors.As(err, &rej) || rej.Reason != "undecodable" || len(e.objs) != 0 || e.Len() != 0 {
		t.Fatalf("Add(bad) = %v, %d objects, %d events", err, len(e.objs), e.Len())
	}

	// max_open_objects: one key too many closes the batch.
	e = mk(func(c *config.S3Output) { c.MaxOpenObjects = 2 }, config.Delivery{})
	for i, tag := range []string{"a", "b", "a", "b"} {
		if err := e.Add(ev(tag, i, record(i, 1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Add(ev("c", 9, record(9, 1))); !errors.Is(err, delivery.ErrFull) || len(e.objs) != 2 {
		t.Fatalf("third key: %v, %d objects", err, len(e.objs))
	}
	e.Reset()
	if err := e.Add(ev("c", 9, record(9, 1))); err != nil || len(e.objs) != 1 {
		t.Fatalf("after Reset: %v, %d objects", err, len(e.objs))
	}

	// Full at max_object_bytes of content, or at the queued bytes one
	// batch may hold (the in-flight bound less 8 MiB, at least half).
	e = mk(func(c *config.S3Output) { c.MaxObjectBytes = 64 << 10 }, config.Delivery{})
	for i := 0; !e.Full(); i++ {
		if err := e.Add(ev("a", i, record(i, 100))); err != nil {
			t.Fatal(err)
		}
	}
	if e.raw < 64<<10 || e.raw > 64<<10+200 {
		t.Errorf("full at %d bytes", e.raw)
	}
	e = mk(func(c *config.S3Output) { c.MaxObjectBytes = 1 << 20; c.Format = "raw"; c.RawKey = "nothing" }, config.Delivery{MaxInFlightBytes: 1 << 20})
	if e.s.entryCap != 512<<10 {
		t.Fatalf("entry cap %d", e.s.entryCap)
	}
}

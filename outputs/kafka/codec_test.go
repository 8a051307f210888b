package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// wireBatch is one record batch seen in a produce request.
type wireBatch struct {
	codec        int8 // attributes & 7
	records      int32
	compressed   int // the batch's records section as sent
	uncompressed int // the same, decompressed
	gzipXFL      byte
	raw          []byte // the records section of an uncompressed batch
	err          string
}

// watchProduce records every record batch of the produce requests c
// handles: codec (attributes & 7), sizes, and that the records section
// decompresses with that codec to NumRecords records.
func watchProduce(c *kfake.Cluster) func() []wireBatch {
	var (
		mu  sync.Mutex
		out []wireBatch
	)
	dec := kgo.DefaultDecompressor()
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		for _, tp := range req.Topics {
			for _, p := range tp.Partitions {
				for rest := p.Records; len(rest) > 0; {
					var b kmsg.RecordBatch
					if err := b.ReadFrom(rest); err != nil {
						out = append(out, wireBatch{err: fmt.Sprintf("partition %d: batch: %v", p.Partition, err)})
						break
					}
					rest = rest[min(len(rest), 12+int(b.Length)):]
					wb := wireBatch{codec: int8(b.Attributes & 7), records: b.NumRecords, compressed: len(b.Records)}
					raw := b.Records
					if wb.codec != 0 {
						if wb.codec == 1 && len(b.Records) > 8 {
							wb.gzipXFL = b.Records[8]
						}
						var err error
						if raw, err = dec.Decompress(b.Records, kgo.CompressionCodecType(wb.codec)); err != nil {
							wb.err = fmt.Sprintf("decompress codec %d: %v", wb.codec, err)
						}
					}
					wb.uncompressed = len(raw)
					if wb.codec == 0 {
						wb.raw = bytes.Clone(raw)
					}
					if wb.err == "" {
						if n, err := countRecords(raw); err != nil || n != int(b.NumRecords) {
							wb.err = fmt.Sprintf("%d records decoded (%v), NumRecords %d", n, err, b.NumRecords)
						}
					}
					out = append(out, wb)
				}
			}
		}
		return nil, nil, false
	})
	return func() []wireBatch {
		mu.Lock()
		defer mu.Unlock()
		return append([]wireBatch(nil), out...)
	}
}

// countRecords counts the length-prefixed records of a batch's
// (decompressed) records section.
func countRecords(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		l, k := binary.Varint(b)
		if k <= 0 || l < 0 || int64(len(b)-k) < l {
			return n, errors.New("truncated record")
		}
		b = b[k+int(l):]
		n++
	}
	return n, nil
}

// codecEvent is one event of TestCodecs and the record the output's
// encoder makes of it.
type codecEvent struct {
	ev   delivery.Event
	want kgo.Record // Value, Key, Headers, Timestamp; Topic unset
}

// codecRecord is an event record like testRecord's (src, seq, log_type
// and a JSON log line), with a log line that reads like an access log
// (so that the codecs have something to do besides runs of one byte),
// the same for a seq, and pad bytes of text.
func codecRecord(seq int, pad string) []byte {
	r := mrand.New(mrand.NewPCG(uint64(seq), 1))
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	paths := []string{"items", "users", "orders", "cart", "search", "health"}
	statuses := []int{200, 200, 200, 201, 204, 304, 404, 500}
	msg := fmt.Sprintf("10.%d.%d.%d %s /api/v1/%s/%d HTTP/1.1 %d %dms ua=Mozilla/5.0 user=%08x trace=%016x%s",
		r.IntN(256), r.IntN(256), r.IntN(256), methods[r.IntN(len(methods))], paths[r.IntN(len(paths))], r.IntN(100000),
		statuses[r.IntN(len(statuses))], r.IntN(2000), r.Uint32(), r.Uint64(), pad)
	m := msgp.AppendMapHeader(nil, 4)
	m = msgp.AppendString(msgp.AppendString(m, "src"), "codec")
	m = msgp.AppendInt(msgp.AppendString(m, "seq"), seq)
	m = msgp.AppendString(msgp.AppendString(m, "log_type"), logTypes[seq%len(logTypes)])
	line := fmt.Sprintf(`{"src":"codec","seq":%d,"msg":%q}`+"\n", seq, msg)
	return msgp.AppendString(msgp.AppendString(m, "log"), line)
}

// padText is n bytes of words and numbers (no byte JSON escapes, so that
// a record grows by exactly the pad's length).
func padText(r *mrand.Rand, n int) string {
	words := strings.Fields("request handled upstream cache miss retry connection pool timeout tenant region shard " +
		"replica leader follower commit offset partition consumer producer gateway session token expired refresh")
	var b strings.Builder
	b.Grow(n + 32)
	for b.Len() < n {
		b.WriteString(" ")
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, "%d", r.IntN(1_000_000))
		} else {
			b.WriteString(words[r.IntN(len(words))])
		}
	}
	return b.String()[:n]
}

// encodeAs returns the record the output's own encoder makes of ev, or
// its rejection, and the record's size as the encoder counts it.
func encodeAs(s *settings, ev delivery.Event) (kgo.Record, int, error) {
	e := newEncoder(s)
	if err := e.Add(&ev); err != nil {
		return kgo.Record{}, 0, err
	}
	r := e.f.recs[0]
	out := kgo.Record{Value: bytes.Clone(r.Value), Timestamp: r.Timestamp}
	if r.Key != nil {
		out.Key = bytes.Clone(r.Key)
	}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)})
	}
	return out, e.Bytes(), nil
}

// TestCodecs: for every codec the config accepts (zstd, lz4, snappy, gzip,
// none; the default and set levels of zstd and gzip too) the output sends
// 3000 events, one of them as large as max_message_bytes allows (its
// record plus the batch overhead exactly at the limit) and one a byte
// larger, to a kfake cluster. Every produced record batch carries the
// codec in its attributes (& 7) and its records section decompresses with
// it to the batch's record count (gzip: the header's XFL byte shows the
// level, 4 fastest, 2 best); a consumer reads the topic back and every
// record is the one the output's encoder made of its event (value, key,
// headers, timestamp), once, in a batch of the codec; the larger event
// alone is dead-lettered (too_large). The producer sends a batch the
// codec does not shrink (one small record) uncompressed: such a batch
// passes only if the codec really makes it no smaller, and never the
// large event's.
func TestCodecs(t *testing.T) {
	cases := []struct {
		name        string
		compression string // "" is the default
		level       int
		attr        int8                 // attributes & 7 on the wire
		xfl         byte                 // gzip: the header's XFL byte
		codec       kgo.CompressionCodec // what the settings say the producer uses
	}{
		{name: "default", attr: 4, codec: kgo.ZstdCompression().WithLevel(1)},
		{name: "zstd", compression: "zstd", attr: 4, codec: kgo.ZstdCompression().WithLevel(1)},
		{name: "zstd_4", compression: "zstd", level: 4, attr: 4, codec: kgo.ZstdCompression().WithLevel(4)},
		{name: "lz4", compression: "lz4", attr: 3, codec: kgo.Lz4Compression()},
		{name: "snappy", compression: "snappy", attr: 2, codec: kgo.SnappyCompression()},
		{name: "gzip", compression: "gzip", attr: 1, xfl: 4, codec: kgo.GzipCompression().WithLevel(1)},
		{name: "gzip_9", compression: "gzip", level: 9, attr: 1, xfl: 2, codec: kgo.GzipCompression().WithLevel(9)},
		{name: "none", compression: "none", attr: 0, codec: kgo.NoCompression()},
	}
	const (
		n     = 3000
		large = 1500 // as large as max_message_bytes allows
		over  = 2100 // a byte larger: dead-lettered
		per   = 100  // events per queue chunk
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			batches := watchProduce(c)
			cfg := testConfig(c)
			cfg.Compression, cfg.CompressionLevel = tc.compression, tc.level
			cfg.DeliveryTimeout = 10 * time.Second
			q := openQueue(t, t.TempDir())
			dir := t.TempDir()
			o := newOutput(t, "k", cfg, fastDelivery(), q, dir, nil)
			maxMsg := int(cfg.MaxMessageBytes)

			// The events, and what the output's encoder makes of them.
			long := padText(mrand.New(mrand.NewPCG(1, 2)), maxMsg)
			now := time.Now().UnixNano()
			events := make([]codecEvent, n)
			for seq := range n {
				ev := delivery.Event{Tag: []byte("docker.app"), Time: now + int64(seq)*int64(time.Millisecond)}
				pad := ""
				if seq == large || seq == over {
					// The record's size grows by the pad's length: measure
					// it without, then pad it to the limit (and one past).
					ev.Record = codecRecord(seq, "")
					_, size, err := encodeAs(o.s.set, ev)
					if err != nil {
						t.Fatal(err)
					}
					k := maxMsg - batchOverhead - size
					if seq == over {
						k++
					}
					pad = long[:k]
				}
				ev.Record = codecRecord(seq, pad)
				rec, size, err := encodeAs(o.s.set, ev)
				var rej *delivery.RejectError
				switch {
				case seq == over:
					if !errors.As(err, &rej) || rej.Reason != "too_large" {
						t.Fatalf("event %d (%d bytes): %v, want too_large", seq, len(ev.Record), err)
					}
				case err != nil:
					t.Fatalf("event %d: %v", seq, err)
				case seq == large && size+batchOverhead != maxMsg:
					t.Fatalf("the large event's record is %d bytes, want %d", size, maxMsg-batchOverhead)
				}
				events[seq] = codecEvent{ev: ev, want: rec}
			}
			for from := 0; from < n; from += per {
				var e []byte
				for _, ce := range events[from:min(from+per, n)] {
					e = wire.AppendEntry(e, ce.ev.Time, ce.ev.Record)
				}
				if err := q.Append(context.Background(), []byte("docker.app"), min(per, n-from), e); err != nil {
					t.Fatal(err)
				}
			}

			run := start(t, o)
			waitEmpty(t, q, 60*time.Second)
			run.stop(t)
			if st := q.Stats(); st.DeliveredEvents != n-1 || st.DeadLetteredEvents != 1 {
				t.Fatalf("queue %+v", st)
			}
			if dl := deadLetters(t, dir+"/deadletter/k"); len(dl) != 1 || dl[over] != "too_large" {
				t.Fatalf("dead letters %v, want event %d too_large", dl, over)
			}

			// On the wire: every batch of the codec, decodable with it,
			// but those the codec does not make smaller: the producer
			// sends them uncompressed (a batch of one small record).
			compressor, err := kgo.DefaultCompressor(tc.codec)
			if err != nil {
				t.Fatal(err)
			}
			var (
				sent, comp, raw int
				plain           int // records in batches sent uncompressed as the codec did not help
				largeBatch      *wireBatch
			)
			bs := batches()
			for i := range bs {
				b := &bs[i]
				if b.err != "" {
					t.Fatalf("batch %d: %s", i, b.err)
				}
				switch {
				case b.codec == tc.attr:
					if tc.xfl != 0 && b.gzipXFL != tc.xfl {
						t.Errorf("batch %d: gzip XFL %d, want %d", i, b.gzipXFL, tc.xfl)
					}
				case b.codec == 0:
					if out, _ := compressor.Compress(new(bytes.Buffer), b.raw); out != nil && len(out) < len(b.raw) {
						t.Errorf("batch %d of %d records (%d bytes) sent uncompressed, codec %d makes it %d bytes",
							i, b.records, len(b.raw), tc.attr, len(out))
					}
					plain += int(b.records)
				default:
					t.Errorf("batch %d of %d records (%d bytes): codec %d, want %d", i, b.records, b.uncompressed, b.codec, tc.attr)
				}
				sent += int(b.records)
				comp += b.compressed
				raw += b.uncompressed
				if b.uncompressed > maxMsg/2 {
					largeBatch = b
				}
			}
			if sent < n-1 {
				t.Fatalf("%d records in %d produced batches, want at least %d", sent, len(bs), n-1)
			}
			if largeBatch == nil {
				t.Fatal("no produced batch holds the large event")
			}
			if largeBatch.codec != tc.attr {
				t.Fatalf("the large event's batch has codec %d, want %d", largeBatch.codec, tc.attr)
			}

			// Read back: each record exactly as the encoder made it.
			got := consume(t, c, "logs")
			if len(got.records) != n-1 {
				t.Fatalf("%d records read back, want %d", len(got.records), n-1)
			}
			seen := make([]bool, n)
			readPlain := 0
			for _, rec := range got.records {
				src, seq, ok := keyOf(rec.Value)
				if !ok || src != "codec" || seq < 0 || seq >= n || seq == over {
					t.Fatalf("unexpected record %.200q", rec.Value)
				}
				if seen[seq] {
					t.Fatalf("event %d read twice", seq)
				}
				seen[seq] = true
				want := events[seq].want
				if !bytes.Equal(rec.Value, want.Value) {
					t.Fatalf("event %d: value of %d bytes differs from the encoder's %d bytes:\n got %.300q\nwant %.300q",
						seq, len(rec.Value), len(want.Value), rec.Value, want.Value)
				}
				if !bytes.Equal(rec.Key, want.Key) || (rec.Key == nil) != (want.Key == nil) {
					t.Errorf("event %d: key %q, want %q", seq, rec.Key, want.Key)
				}
				if !sameHeaders(rec.Headers, want.Headers) {
					t.Errorf("event %d: headers %v, want %v", seq, rec.Headers, want.Headers)
				}
				if rec.Timestamp.UnixMilli() != want.Timestamp.UnixMilli() {
					t.Errorf("event %d: timestamp %v, want %v", seq, rec.Timestamp, want.Timestamp)
				}
				switch ct := int8(rec.Attrs.CompressionType()); ct {
				case tc.attr:
				case 0:
					readPlain++
				default:
					t.Errorf("event %d read from a batch of codec %d, want %d", seq, ct, tc.attr)
				}
			}
			if !seen[large] {
				t.Fatal("the large event was not read back")
			}
			if tc.attr != 0 && readPlain > plain {
				t.Errorf("%d records read from uncompressed batches, %d sent in them", readPlain, plain)
			}
			t.Logf("%d batches (%d records sent uncompressed: the codec did not shrink their batch), records %d bytes, sent %d (%.1f%%); the large event's batch %d of %d bytes (%.1f%%)",
				len(bs), plain, raw, comp, 100*float64(comp)/float64(raw),
				largeBatch.compressed, largeBatch.uncompressed, 100*float64(largeBatch.compressed)/float64(largeBatch.uncompressed))
		})
	}

	// A codec the config does not know is refused by New with the config's
	// message (the client's codec switch maps anything else to none).
	t.Run("unknown", func(t *testing.T) {
		cfg := config.DefaultKafkaOutput()
		cfg.Brokers = []string{"127.0.0.1:9092"}
		cfg.Compression = "brotli"
		_, err := New("k", cfg, config.Delivery{}, t.TempDir(), openQueue(t, t.TempDir()), nil, nil)
		if err == nil || !strings.Contains(err.Error(), `kafka.compression: invalid value "brotli" (want zstd, lz4, snappy, gzip or none)`) {
			t.Fatalf("New with compression brotli: %v", err)
		}
	})
}

func sameHeaders(a, b []kgo.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

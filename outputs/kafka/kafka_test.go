package kafka

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/internal/conformance"
)

var logTypes = []string{"app", "access", "audit"}

// killable tracks a broker's listener and connections, so that a test can
// kill the broker as a crash would: listener and connections closed at
// once, requests in flight lost.
type killable struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *killable) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *killable) kill() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// TestBrokerKilled: three log types to one topic each on a 3-broker
// cluster; a broker is killed (listener and connections closed, its
// partitions moved to the others) once a third of the events are in; a
// consumer reads every topic back: every sequence number is there, and
// the idempotent producer wrote none twice.
func TestBrokerKilled(t *testing.T) {
	var (
		mu        sync.Mutex
		listeners []*killable
	)
	c := newCluster(t, kfake.NumBrokers(3), kfake.DefaultNumPartitions(6), kfake.ListenFn(func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		k := &killable{Listener: ln}
		mu.Lock()
		listeners = append(listeners, k)
		mu.Unlock()
		return k, nil
	}))
	cfg := testConfig(c)
	cfg.Topic = "logs-{field:log_type}"
	cfg.KeyField = "src"
	cfg.RequestTimeout = 2 * time.Second
	cfg.DeliveryTimeout = 5 * time.Second
	q := openQueue(t, t.TempDir())
	set := metrics.NewSet()
	o := newOutput(t, "k", cfg, fastDelivery(), q, t.TempDir(), set)
	start(t, o)

	const n = 30000 // per log type
	var wg sync.WaitGroup
	for i, lt := range logTypes {
		wg.Go(func() {
			for from := 0; from < n; from += 1000 {
				fill(t, q, "docker."+lt, lt, lt, from, 1000, 100, 100+i*50)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	waitFor(t, 30*time.Second, "a third of the events", func() bool { return q.Stats().DeliveredEvents >= n })
	mu.Lock()
	victim := listeners[1]
	mu.Unlock()
	if err := c.RemoveNode(1); err != nil {
		t.Fatal(err)
	}
	victim.kill()
	killedAt := q.Stats().DeliveredEvents
	wg.Wait()
	waitEmpty(t, q, 90*time.Second)
	if st := q.Stats(); st.DeliveredEvents != 3*n || st.DeadLetteredEvents != 0 {
		t.Fatalf("queue %+v", st)
	}
	got := consume(t, c, "logs-app", "logs-access", "logs-audit")
	dups := 0
	for _, lt := range logTypes {
		dups += got.check(t, lt, n, false)
	}
	for _, r := range got.records {
		if !strings.HasSuffix(r.Topic, string(r.Key)) {
			t.Fatalf("record of %s in topic %s", r.Key, r.Topic)
		}
	}
	t.Logf("broker 1 killed after %d of %d events; %d records read back, %d duplicates; record errors: %s",
		killedAt, 3*n, len(got.records), dups, seriesOf(set, "sluice_output_kafka_record_errors_total"))
	if dups != 0 {
		t.Errorf("%d duplicates: the idempotent producer wrote records twice", dups)
	}
}

// seriesOf renders the series of a metric, for logs.
func seriesOf(set *metrics.Set, name string) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, strings.TrimPrefix(l, name))
		}
	}
	return strings.Join(out, " ")
}

// TestClusterOutage: a whole cluster goes away for 3 seconds (closed,
// then started again on the same ports and data directory) while events
// keep coming; a second output to another cluster delivers all of its
// events meanwhile; the first output's events wait in its queue and are
// all delivered once the cluster is back.
func TestClusterOutage(t *testing.T) {
	dataDir := t.TempDir()
	a, err := kfake.NewCluster(kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3), kfake.DataDir(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	addrs := a.ListenAddrs()
	b := newCluster(t)
	qa, qb := openQueue(t, t.TempDir()), openQueue(t, t.TempDir())
	ca, cb := testConfig(a), testConfig(b)
	ca.DeliveryTimeout, ca.RequestTimeout = 2*time.Second, time.Second
	start(t, newOutput(t, "a", ca, fastDelivery(), qa, t.TempDir(), nil))
	start(t, newOutput(t, "b", cb, fastDelivery(), qb, t.TempDir(), nil))

	const per = 500
	fillBoth := func(k int) {
		fill(t, qa, "docker.app", "app", "app", k*per, per, 100, 100)
		fill(t, qb, "docker.app", "app", "app", k*per, per, 100, 100)
	}
	for k := range 4 {
		fillBoth(k)
	}
	waitEmpty(t, qa, 30*time.Second)
	a.Close()
	t0 := time.Now()
	for k := 4; k < 12; k++ {
		fillBoth(k)
		time.Sleep(100 * time.Millisecond)
	}
	waitEmpty(t, qb, 30*time.Second)
	pending := qa.Stats().PendingEvents
	if pending != 8*per {
		t.Fatalf("the down cluster's queue holds %d events, want %d", pending, 8*per)
	}
	time.Sleep(time.Until(t0.Add(3 * time.Second)))
	var ports []int
	for _, ad := range addrs {
		_, p, _ := net.SplitHostPort(ad)
		var n int
		for _, c := range p {
			n = n*10 + int(c-'0')
		}
		ports = append(ports, n)
	}
	a, err = kfake.NewCluster(kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3), kfake.DataDir(dataDir), kfake.Ports(ports...))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	back := time.Now()
	waitEmpty(t, qa, 60*time.Second)
	t.Logf("outage %v with %d events queued; delivered %v after the cluster was back",
		back.Sub(t0).Round(time.Millisecond), pending, time.Since(back).Round(time.Millisecond))
	dups := consume(t, a, "logs").check(t, "app", 12*per, false)
	consume(t, b, "logs").check(t, "app", 12*per, true)
	t.Logf("%d duplicates on the cluster that went down", dups)
}

// TestRecords: topic, key, headers, timestamp and JSON value of each
// record, and the tag_key and time options.
func TestRecords(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.Topic = "{tag[0]}.{tag[1]}-{field:log_type}"
	cfg.KeyField = "meta.pod"
	cfg.TagKey = "tag"
	cfg.TimeFormat = "epoch_millis"
	cfg.Headers = []config.KafkaHeader{{Name: "env", Value: "prod"}, {Name: "seq", Field: "seq"}, {Name: "missing", Field: "nope"}}
	q := openQueue(t, t.TempDir())
	now := time.Now().Truncate(time.Millisecond)
	var entries []byte
	rec := func(seq int, lt, pod string) []byte {
		r := testRecord("s", seq, lt, 10)
		// add {"meta":{"pod":pod}} by rebuilding: map of 5
		r[0] = 0x85
		r = append(r, 0xa4, 'm', 'e', 't', 'a', 0x81, 0xa3, 'p', 'o', 'd', byte(0xa0+len(pod)))
		return append(r, pod...)
	}
	for i := range 20 {
		lt := logTypes[i%3]
		entries = appendEntry(entries, now.Add(time.Duration(i)*time.Millisecond), rec(i, lt, []string{"web-1", "web-2"}[i%2]))
	}
	if err := q.Append(context.Background(), []byte("docker.Shop Api"), 20, entries); err != nil {
		t.Fatal(err)
	}
	start(t, newOutput(t, "k", cfg, fastDelivery(), q, t.TempDir(), nil))
	waitEmpty(t, q, 20*time.Second)
	got := consume(t, c, "docker.Shop_Api-app", "docker.Shop_Api-access", "docker.Shop_Api-audit")
	if len(got.records) != 20 {
		t.Fatalf("%d records", len(got.records))
	}
	partOf := map[string]int32{}
	for _, r := range got.records {
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("value %s: %v", r.Value, err)
		}
		seq := int(v["seq"].(float64))
		lt := logTypes[seq%3]
		if want := "docker.Shop_Api-" + lt; r.Topic != want {
			t.Errorf("seq %d in topic %s, want %s", seq, r.Topic, want)
		}
		if want := []string{"web-1", "web-2"}[seq%2]; string(r.Key) != want {
			t.Errorf("seq %d key %q, want %q", seq, r.Key, want)
		}
		if p, ok := partOf[r.Topic+"/"+string(r.Key)]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d of %s", r.Key, p, r.Partition, r.Topic)
		}
		partOf[r.Topic+"/"+string(r.Key)] = r.Partition
		ts := now.Add(time.Duration(seq) * time.Millisecond)
		if !r.Timestamp.Equal(ts) {
			t.Errorf("seq %d timestamp %v, want %v", seq, r.Timestamp, ts)
		}
		if v["tag"] != "docker.Shop Api" || v["@timestamp"] != float64(ts.UnixMilli()) || v["log_type"] != lt {
			t.Errorf("value %s", r.Value)
		}
		hdrs := map[string]string{}
		for _, h := range r.Headers {
			hdrs[h.Key] = string(h.Value)
		}
		want := map[string]string{"tag": "docker.Shop Api", "env": "prod", "seq": strconv.Itoa(seq)}
		if len(hdrs) != 3 || hdrs["tag"] != want["tag"] || hdrs["env"] != want["env"] || hdrs["seq"] != want["seq"] {
			t.Errorf("seq %d headers %v, want %v", seq, hdrs, want)
		}
	}
}

func appendEntry(dst []byte, t time.Time, rec []byte) []byte {
	return wire.AppendEntry(dst, t.UnixNano(), rec)
}

// TestRawFormat: the value is the log line without its newline; an event
// without the field goes as JSON and is counted.
func TestRawFormat(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.Format = "raw"
	cfg.TagHeader = ""
	q := openQueue(t, t.TempDir())
	fill(t, q, "docker.app", "app", "app", 0, 100, 50, 20)
	var e []byte
	e = wire.AppendEntry(e, time.Now().UnixNano(), conformance.Record(7)) // log without a JSON src
	e = wire.AppendEntry(e, time.Now().UnixNano(), []byte{0x81, 0xa1, 'x', 0x01})
	if err := q.Append(context.Background(), []byte("other"), 2, e); err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	start(t, newOutput(t, "k", cfg, fastDelivery(), q, t.TempDir(), set))
	waitEmpty(t, q, 20*time.Second)
	got := consume(t, c, "logs")
	got.check(t, "app", 100, true)
	raw, fallback := 0, 0
	for _, r := range got.records {
		switch {
		case bytes.HasPrefix(r.Value, []byte(`{"src":"app"`)):
			raw++
			if bytes.HasSuffix(r.Value, []byte("\n")) || len(r.Headers) != 0 {
				t.Errorf("raw value %q headers %v", r.Value, r.Headers)
			}
		case bytes.HasPrefix(r.Value, []byte("line 7 ")):
			raw++
		case bytes.HasPrefix(r.Value, []byte(`{"@timestamp":`)) && bytes.Contains(r.Value, []byte(`"x":1`)):
			fallback++
		default:
			t.Errorf("value %q", r.Value)
		}
	}
	if raw != 101 || fallback != 1 {
		t.Errorf("%d raw values, %d JSON fallbacks", raw, fallback)
	}
	if n := seriesOf(set, "sluice_output_kafka_raw_fallback_events_total"); !strings.HasSuffix(n, " 1") {
		t.Errorf("raw fallback counter %q", n)
	}
}

// TestTooLarge: an event over max_message_bytes is dead-lettered without
// being sent, the others are delivered.
func TestTooLarge(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.MaxMessageBytes = 4096
	q := openQueue(t, t.TempDir())
	dir := t.TempDir()
	fill(t, q, "docker.app", "app", "app", 0, 50, 50, 100)
	fill(t, q, "docker.app", "app", "app", 50, 1, 1, 5000)
	fill(t, q, "docker.app", "app", "app", 51, 49, 50, 100)
	r := start(t, newOutput(t, "k", cfg, fastDelivery(), q, dir, nil))
	waitEmpty(t, q, 20*time.Second)
	r.stop(t)
	got := consume(t, c, "logs")
	if got.seqs["app"][50] != 0 || len(got.records) != 99 {
		t.Fatalf("%d records, seq 50 %d times", len(got.records), got.seqs["app"][50])
	}
	if dl := deadLetters(t, dir+"/deadletter/k"); len(dl) != 1 || dl[50] != "too_large" {
		t.Fatalf("dead letters %v", dl)
	}
}

// TestRefusedBatch: the broker refuses (INVALID_RECORD) one partition's
// batch holding one bad event among many: the producer fails every
// record buffered for that partition, the output sends each of them
// alone again, and only the bad event is dead-lettered.
func TestRefusedBatch(t *testing.T) {
	c := newCluster(t, kfake.DefaultNumPartitions(1))
	cfg := testConfig(c)
	cfg.Compression = "none"
	cfg.Linger = 50 * time.Millisecond // big batches
	bad := 1234
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		for _, tp := range req.Topics {
			for _, p := range tp.Partitions {
				seqs := batchSeqs(p.Records)
				for _, s := range seqs {
					if s == bad {
						if len(seqs) > 1 {
							once.Do(func() { t.Logf("refusing a batch of %d records", len(seqs)) })
						}
						c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: tp.Topic, Partitions: []int32{p.Partition},
							Err: kerr.InvalidRecord, When: func(r kmsg.Request) bool { return r == kreq }})
					}
				}
			}
		}
		return nil, nil, false
	})
	q := openQueue(t, t.TempDir())
	dir := t.TempDir()
	fill(t, q, "docker.app", "app", "app", 0, 5000, 500, 50)
	set := metrics.NewSet()
	r := start(t, newOutput(t, "k", cfg, fastDelivery(), q, dir, set))
	waitEmpty(t, q, 30*time.Second)
	r.stop(t)
	got := consume(t, c, "logs")
	if got.seqs["app"][bad] != 0 {
		t.Fatal("the refused event was stored")
	}
	delete(got.seqs["app"], bad)
	for s := range 5000 {
		if s != bad && got.seqs["app"][s] != 1 {
			t.Fatalf("seq %d stored %d times", s, got.seqs["app"][s])
		}
	}
	if dl := deadLetters(t, dir+"/deadletter/k"); len(dl) != 1 || dl[bad] != "invalid_record" {
		t.Fatalf("dead letters %v", dl)
	}
	t.Logf("isolated records: %s", seriesOf(set, "sluice_output_kafka_isolated_records_total"))
}

// deadLetters reads a dead-letter queue: seq → reason.
func deadLetters(t *testing.T, dir string) map[int]string {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return conformance.DeadLetters(t, dir)
}

// TestSASL: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against a cluster
// that requires them; a wrong password keeps the events queued (nothing
// dead-lettered) and is reported.
func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := newCluster(t, kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "agent", "s3cret"))
			cfg := testConfig(c)
			cfg.SASL = &config.KafkaSASL{Mechanism: mech, Username: "agent", Password: "s3cret"}
			q := openQueue(t, t.TempDir())
			fill(t, q, "docker.app", "app", "app", 0, 200, 100, 50)
			start(t, newOutput(t, "k", cfg, fastDelivery(), q, t.TempDir(), nil))
			waitEmpty(t, q, 20*time.Second)
			var stored int64
			for _, p := range c.PartitionInfos("logs") {
				stored += p.HighWatermark
			}
			if st := q.Stats(); st.DeliveredEvents != 200 || stored != 200 {
				t.Fatalf("queue %+v, %d records stored", st, stored)
			}
		})
	}
	t.Run("wrong_password", func(t *testing.T) {
		c := newCluster(t, kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "agent", "s3cret"))
		cfg := testConfig(c)
		cfg.SASL = &config.KafkaSASL{Mechanism: "SCRAM-SHA-256", Username: "agent", Password: "wrong"}
		q := openQueue(t, t.TempDir())
		dir := t.TempDir()
		fill(t, q, "docker.app", "app", "app", 0, 200, 100, 50)
		o := newOutput(t, "k", cfg, fastDelivery(), q, dir, nil)
		r := start(t, o)
		waitFor(t, 20*time.Second, "an error", func() bool { msg, _ := o.LastError(); return msg != "" })
		time.Sleep(500 * time.Millisecond)
		r.stop(t)
		msg, _ := o.LastError()
		if st := q.Stats(); st.Pending != 2 || st.DeadLetteredEvents != 0 {
			t.Fatalf("queue %+v", st)
		}
		if strings.Contains(msg, "wrong") {
			t.Errorf("the error shows the password: %s", msg)
		}
		t.Logf("last error: %s", msg)
	})
}

// TestTLS: the cluster listens with TLS; the output trusts its CA.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, caFile := selfSigned(t, dir)
	c := newCluster(t, kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	cfg := testConfig(c)
	cfg.TLS = &config.TLS{Enabled: true, CAFile: caFile, ServerName: "kafka.test"}
	q := openQueue(t, t.TempDir())
	fill(t, q, "docker.app", "app", "app", 0, 300, 100, 50)
	start(t, newOutput(t, "k", cfg, fastDelivery(), q, t.TempDir(), nil))
	waitEmpty(t, q, 20*time.Second)
	if st := q.Stats(); st.DeliveredEvents != 300 {
		t.Fatalf("queue %+v", st)
	}
}

// selfSigned makes a self-signed certificate for kafka.test and 127.0.0.1
// and writes it as the CA file.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafka.test"},
		DNSNames: []string{"kafka.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

// TestDeliveryTimeout: with every produce refused (retriable) the batch
// fails within about delivery_timeout, as a whole request; the events stay
// queued and are delivered once the cluster takes them.
func TestDeliveryTimeout(t *testing.T) {
	c := newCluster(t)
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	cfg := testConfig(c)
	cfg.RequestTimeout, cfg.DeliveryTimeout = time.Second, 2*time.Second
	q := openQueue(t, t.TempDir())
	fill(t, q, "docker.app", "app", "app", 0, 300, 100, 50)
	set := metrics.NewSet()
	d := fastDelivery()
	d.Workers = 1
	o := newOutput(t, "k", cfg, d, q, t.TempDir(), set)
	t0 := time.Now()
	start(t, o)
	waitFor(t, 10*time.Second, "a failed request", func() bool {
		return strings.Contains(seriesOf(set, "sluice_output_requests_total"), `result="failed"} 1`)
	})
	took := time.Since(t0)
	if took < 1500*time.Millisecond || took > 4*time.Second {
		t.Errorf("the first batch failed after %v, want delivery_timeout (2s) + at most a 1s back-off", took)
	}
	msg, _ := o.LastError()
	t.Logf("first failure after %v: %s", took.Round(time.Millisecond), msg)
	if st := q.Stats(); st.Pending != 3 {
		t.Fatalf("queue %+v", st)
	}
	h.Remove()
	waitEmpty(t, q, 20*time.Second)
	consume(t, c, "logs").check(t, "app", 300, false)
}

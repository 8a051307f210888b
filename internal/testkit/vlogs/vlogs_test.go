package vlogs_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/vlogs"
)

// bulkBody is n create actions for index "logs-sluice" with documents
// shaped like the agent's ES records.
func bulkBody(tag string, n int) ([]byte, []time.Time) {
	var b bytes.Buffer
	base := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	var ts []time.Time
	for i := range n {
		at := base.Add(time.Duration(i) * time.Millisecond)
		ts = append(ts, at)
		b.WriteString(`{"create":{"_index":"logs-sluice"}}` + "\n")
		doc := map[string]any{
			"@timestamp": at.Format(time.RFC3339Nano),
			"message":    fmt.Sprintf("%s line %d", tag, i),
			"tag":        tag,
			"seq":        i,
			"kubernetes": map[string]any{"pod_name": "pod-" + tag, "namespace_name": "default"},
		}
		js, _ := json.Marshal(doc)
		b.Write(js)
		b.WriteByte('\n')
	}
	return b.Bytes(), ts
}

func post(t *testing.T, url string, body []byte, gz bool, h http.Header) (int, string) {
	t.Helper()
	if gz {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(body)
		w.Close()
		body = z.Bytes()
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBulkRoundTrip(t *testing.T) {
	s := vlogs.Start(t, vlogs.WithFields(vlogs.Fields{
		Msg: []string{"message", "log"}, Time: "@timestamp", Stream: []string{"kubernetes.pod_name"},
	}))
	for _, tc := range []struct {
		tag    string
		gz     bool
		header bool // field mapping in VL-* headers instead of query args
	}{
		{"plain", false, false},
		{"gzip", true, false},
		{"hdr", false, true},
		{"hdrgz", true, true},
	} {
		body, ts := bulkBody(tc.tag, 5)
		url, h := s.BulkURL(), http.Header(nil)
		if tc.header {
			url, h = s.ESURL()+"/_bulk", s.Header()
		}
		code, resp := post(t, url, body, tc.gz, h)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.tag, code, resp)
		}
		var br struct {
			Errors bool
			Items  []map[string]struct{ Status int }
		}
		if err := json.Unmarshal([]byte(resp), &br); err != nil {
			t.Fatalf("%s: %v: %s", tc.tag, err, resp)
		}
		if br.Errors || len(br.Items) != 5 || br.Items[0]["create"].Status != 201 {
			t.Fatalf("%s: response %s", tc.tag, resp)
		}
		rows := s.Query(t, "tag:="+tc.tag+" | sort by (_time)")
		if len(rows) != 5 {
			t.Fatalf("%s: %d rows back: %v", tc.tag, len(rows), rows)
		}
		for i, r := range rows {
			want := map[string]string{
				"_msg":                      fmt.Sprintf("%s line %d", tc.tag, i),
				"_time":                     ts[i].Format(time.RFC3339Nano),
				"tag":                       tc.tag,
				"seq":                       fmt.Sprint(i),
				"kubernetes.pod_name":       "pod-" + tc.tag,
				"kubernetes.namespace_name": "default",
				"_stream":                   `{kubernetes.pod_name="pod-` + tc.tag + `"}`,
			}
			for k, v := range want {
				if r[k] != v {
					t.Errorf("%s row %d: %s = %v, want %q (row %v)", tc.tag, i, k, r[k], v, r)
				}
			}
			// The mapped fields are consumed into _msg and _time.
			for _, k := range []string{"message", "@timestamp"} {
				if _, ok := r[k]; ok {
					t.Errorf("%s row %d: %s kept: %v", tc.tag, i, k, r)
				}
			}
		}
	}
	if n := s.Count(t, "*"); n != 20 {
		t.Fatalf("count * = %d, want 20", n)
	}
	if n := s.WaitCount(t, "tag:=gzip", 5, 5*time.Second); n != 5 {
		t.Fatalf("wait count = %d", n)
	}
}

// TestFacts pins the VictoriaLogs behaviour the package doc describes, so a
// version change that alters it shows up here.
func TestFacts(t *testing.T) {
	s := vlogs.Start(t)
	es := s.ESURL()

	// Product check endpoint.
	resp, err := http.Get(es + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Elastic-Product") != "Elasticsearch" || !strings.Contains(string(b), `"8.9.0"`) {
		t.Errorf("GET %s/: %v %s", es, resp.Header, b)
	}

	one := func(doc string) []byte { return []byte(`{"create":{"_index":"x"}}` + "\n" + doc + "\n") }

	// No mapping at all: _time is the ingestion time, @timestamp stays a
	// field, and "message" is not the message.
	before := time.Now().Add(-time.Second)
	if code, r := post(t, es+"/_bulk", one(`{"@timestamp":"2024-01-02T03:04:05Z","message":"nomap"}`), false, nil); code != 200 {
		t.Fatalf("%d %s", code, r)
	}
	rows := s.Query(t, "message:=nomap")
	if len(rows) != 1 {
		t.Fatalf("nomap rows %v", rows)
	}
	r := rows[0]
	tm, _ := time.Parse(time.RFC3339Nano, r["_time"].(string))
	if r["@timestamp"] != "2024-01-02T03:04:05Z" || tm.Before(before) || !strings.HasPrefix(r["_msg"].(string), "missing _msg field") {
		t.Errorf("unmapped row: %v", r)
	}

	// A document without any message field is kept, with the default _msg.
	if code, r := post(t, s.BulkURL(), one(`{"@timestamp":"2024-01-02T03:04:05Z","other":"nomsg"}`), false, nil); code != 200 {
		t.Fatalf("%d %s", code, r)
	}
	rows = s.Query(t, "other:=nomsg")
	if len(rows) != 1 || !strings.HasPrefix(rows[0]["_msg"].(string), "missing _msg field") || rows[0]["_time"] != "2024-01-02T03:04:05Z" {
		t.Errorf("no-message row: %v", rows)
	}

	// A query arg wins over the header.
	h := http.Header{vlogs.HeaderMsgField: {"log"}}
	if code, r := post(t, es+"/_bulk?_msg_field=message", one(`{"message":"fromquery","log":"fromheader"}`), false, h); code != 200 {
		t.Fatalf("%d %s", code, r)
	}
	rows = s.Query(t, "log:=fromheader")
	if len(rows) != 1 || rows[0]["_msg"] != "fromquery" {
		t.Errorf("query vs header: %v", rows)
	}

	// A form content type eats the body: 200, no items, nothing stored.
	code, rb := post(t, s.BulkURL(), one(`{"message":"formbody"}`), false, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if code != 200 || !strings.Contains(rb, `"items":[]`) {
		t.Errorf("form body: %d %s", code, rb)
	}
	if n := s.Count(t, "formbody"); n != 0 {
		t.Errorf("form body stored %d rows", n)
	}

	// A bad timestamp fails the whole request, after ingesting the rows
	// before it.
	body := append(one(`{"@timestamp":"2024-01-02T03:04:05Z","message":"beforebad"}`), one(`{"@timestamp":"bogus","message":"bad"}`)...)
	if code, rb := post(t, s.BulkURL(), body, false, nil); code != 400 {
		t.Errorf("bad timestamp: %d %s", code, rb)
	}
	if n := s.Count(t, "beforebad"); n != 1 {
		t.Errorf("row before the bad one: %d", n)
	}

	// delete fails the whole request.
	if code, rb := post(t, s.BulkURL(), []byte(`{"delete":{"_index":"x","_id":"1"}}`+"\n"), false, nil); code != 400 {
		t.Errorf("delete: %d %s", code, rb)
	}
}

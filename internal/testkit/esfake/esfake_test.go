package esfake_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/internal/testkit/esfake"
)

type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// bulkResp is the typed view of a 200 answer.
type bulkResp struct {
	Took   *int64
	Errors bool
	Items  []map[string]item
}

type item struct {
	Index   string `json:"_index"`
	ID      string `json:"_id"`
	Version int    `json:"_version"`
	Result  string
	Status  int
	Error   *struct{ Type, Reason string }
}

func (r resp) bulk(t *testing.T) bulkResp {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	var b bulkResp
	if err := json.Unmarshal(r.raw, &b); err != nil {
		t.Fatalf("%v: %s", err, r.raw)
	}
	if b.Took == nil {
		t.Fatalf("no took: %s", r.raw)
	}
	return b
}

// errType is error.type of a whole-request error body.
func (r resp) errType() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

type reqOpt func(*http.Request)

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func do(t *testing.T, method, url string, body []byte, opts ...reqOpt) resp {
	t.Helper()
	r, err := tryDo(http.DefaultClient, method, url, body, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tryDo(c *http.Client, method, url string, body []byte, opts ...reqOpt) (resp, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return resp{}, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	for _, o := range opts {
		o(req)
	}
	hr, err := c.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer hr.Body.Close()
	raw, err := io.ReadAll(hr.Body)
	if err != nil {
		return resp{}, err
	}
	r := resp{status: hr.StatusCode, header: hr.Header, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.body)
	}
	return r, nil
}

func gz(b []byte) []byte {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

// ndjson joins lines, each followed by "\n".
func ndjson(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

func creates(n int, tag string) []byte {
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"create":{"_index":"logs","_id":"%s-%d"}}`, tag, i), fmt.Sprintf(`{"message":"%s %d","seq":%d}`, tag, i, i))
	}
	return ndjson(lines...)
}

func TestRoot(t *testing.T) {
	s := esfake.Start(t)
	r := do(t, "GET", s.URL()+"/", nil)
	v, _ := r.body["version"].(map[string]any)
	if r.status != 200 || r.header.Get("X-Elastic-Product") != "Elasticsearch" || !strings.HasPrefix(fmt.Sprint(v["number"]), "8.") ||
		r.body["tagline"] != "You Know, for Search" || v["build_flavor"] != "default" {
		t.Fatalf("GET /: %d %v %s", r.status, r.header, r.raw)
	}
	if r := do(t, "HEAD", s.URL()+"/", nil); r.status != 200 || r.header.Get("X-Elastic-Product") != "Elasticsearch" {
		t.Fatalf("HEAD /: %d %v", r.status, r.header)
	}
	if r := do(t, "GET", s.URL()+"/_cat/indices", nil); r.status != 400 || !strings.Contains(string(r.raw), "no handler found") {
		t.Fatalf("unknown path: %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", s.URL()+"/_bulk", nil); r.status != 405 {
		t.Fatalf("GET /_bulk: %d %s", r.status, r.raw)
	}
	if s.Requests() != 0 {
		t.Fatalf("non-bulk requests counted: %d", s.Requests())
	}

	s2 := esfake.Start(t, esfake.WithoutProductHeader(), esfake.WithVersion("8.11.3"))
	r = do(t, "GET", s2.URL()+"/", nil)
	if _, ok := r.header["X-Elastic-Product"]; ok || !strings.Contains(string(r.raw), `"8.11.3"`) {
		t.Fatalf("without product header: %v %s", r.header, r.raw)
	}
	if r := do(t, "POST", s2.URL()+"/_bulk", creates(1, "a")); r.header.Get("X-Elastic-Product") != "" {
		t.Fatalf("bulk product header: %v", r.header)
	}
}

func TestBulkAccept(t *testing.T) {
	s := esfake.Start(t)
	body := ndjson(
		`{"create":{"_index":"logs"}}`, `{"message":"auto id","@timestamp":"2024-01-02T03:04:05Z"}`,
		`{"create":{"_index":"logs","_id":"c1"}}`, `{"message":"one"}`,
		`{"index":{"_index":"logs","_id":"i1"}}`, `{"message":"first"}`,
		`{"index":{"_index":"other","_id":"i1"}}`, `{"message":"other index"}`,
	)
	b := do(t, "POST", s.URL()+"/_bulk", body).bulk(t)
	if b.Errors || len(b.Items) != 4 {
		t.Fatalf("items %+v", b)
	}
	for i, want := range []struct{ action, index, result string }{
		{"create", "logs", "created"}, {"create", "logs", "created"}, {"index", "logs", "created"}, {"index", "other", "created"},
	} {
		it, ok := b.Items[i][want.action]
		if !ok || it.Status != 201 || it.Result != want.result || it.Index != want.index || it.ID == "" || it.Version != 1 || it.Error != nil {
			t.Errorf("item %d: %+v", i, b.Items[i])
		}
	}
	auto := b.Items[0]["create"].ID
	if len(auto) < 16 {
		t.Errorf("generated id %q", auto)
	}

	// Second request: the create retry conflicts, the index overwrites,
	// \r\n line ends and the path index are accepted.
	body = []byte(`{"create":{"_id":"c1"}}` + "\r\n" + `{"message":"one"}` + "\r\n" +
		`{"index":{"_id":"i1"}}` + "\r\n" + `{"message":"second"}` + "\r\n" +
		`{"create":{"_index":"explicit"}}` + "\r\n" + `{"message":"explicit wins"}` + "\r\n")
	b = do(t, "POST", s.URL()+"/logs/_bulk", body, header("Content-Type", "application/vnd.elasticsearch+x-ndjson;compatible-with=8")).bulk(t)
	if !b.Errors || len(b.Items) != 3 {
		t.Fatalf("second: %+v", b)
	}
	c := b.Items[0]["create"]
	if c.Status != 409 || c.Error == nil || c.Error.Type != "version_conflict_engine_exception" || c.ID != "c1" || c.Index != "logs" ||
		!strings.Contains(c.Error.Reason, "document already exists") {
		t.Errorf("create conflict: %+v", c)
	}
	if i := b.Items[1]["index"]; i.Status != 200 || i.Result != "updated" || i.Version != 2 {
		t.Errorf("index overwrite: %+v", i)
	}
	if i := b.Items[2]["create"]; i.Status != 201 || i.Index != "explicit" {
		t.Errorf("explicit index: %+v", i)
	}

	docs := s.Docs()
	if len(docs) != 6 {
		t.Fatalf("docs: %+v", docs)
	}
	if d := docs[0]; d.Index != "logs" || d.ID != auto || string(d.Source) != `{"message":"auto id","@timestamp":"2024-01-02T03:04:05Z"}` || d.Action != "create" || d.Req != 1 {
		t.Errorf("doc 0: %+v", d)
	}
	if d := docs[4]; d.ID != "i1" || d.Result != "updated" || string(d.Source) != `{"message":"second"}` || d.Req != 2 {
		t.Errorf("doc 4 (no \\r kept): %+v %q", d, d.Source)
	}
	if d, ok := s.Doc("logs", "i1"); !ok || string(d.Source) != `{"message":"second"}` || d.Version != 2 {
		t.Errorf("current i1: %+v", d)
	}
	if d, ok := s.Doc("other", "i1"); !ok || string(d.Source) != `{"message":"other index"}` {
		t.Errorf("other/i1: %+v", d)
	}
	if s.Count("logs") != 3 || s.Count("") != 5 {
		t.Errorf("count logs %d all %d", s.Count("logs"), s.Count(""))
	}
	if s.Requests() != 2 || s.Items() != 7 {
		t.Errorf("requests %d items %d", s.Requests(), s.Items())
	}
	log := s.RequestLog()
	if len(log) != 2 || log[1].Path != "/logs/_bulk" || log[1].Status != 200 || log[1].Items != 3 || log[1].ItemErrors != 1 ||
		fmt.Sprint(log[1].ItemResults) != "[409 200 201]" || log[1].BodyBytes != len(body) {
		t.Errorf("request log: %+v", log)
	}
}

func TestGzip(t *testing.T) {
	s := esfake.Start(t)
	body := creates(50, "gz")
	z := gz(body)
	b := do(t, "POST", s.URL()+"/_bulk", z, header("Content-Encoding", "gzip")).bulk(t)
	if b.Errors || len(b.Items) != 50 || len(s.Docs()) != 50 || string(s.Docs()[49].Source) != `{"message":"gz 49","seq":49}` {
		t.Fatalf("gzip: errors %v items %d docs %d", b.Errors, len(b.Items), len(s.Docs()))
	}
	l := s.RequestLog()[0]
	if !l.Gzip || l.WireBytes != len(z) || l.BodyBytes != len(body) {
		t.Errorf("log %+v", l)
	}
	r := do(t, "POST", s.URL()+"/_bulk", body, header("Content-Encoding", "gzip"))
	if r.status != 400 || r.errType() != "parse_exception" {
		t.Errorf("not gzip: %d %s", r.status, r.raw)
	}
	if r := do(t, "POST", s.URL()+"/_bulk", body, header("Content-Encoding", "br")); r.status != 400 {
		t.Errorf("br: %d %s", r.status, r.raw)
	}
	if len(s.Docs()) != 50 {
		t.Errorf("docs after failures: %d", len(s.Docs()))
	}
}

func TestMalformed(t *testing.T) {
	s := esfake.Start(t)
	for _, tc := range []struct {
		name, body, typ, reason string
	}{
		{"no final newline", `{"create":{"_index":"a"}}` + "\n" + `{"m":1}`, "illegal_argument_exception", "must be terminated by a newline"},
		{"empty", "", "action_request_validation_exception", "no requests added"},
		{"bad action json", "{nope\n{}\n", "x_content_parse_exception", "Malformed action/metadata line [1]"},
		{"blank line", `{"create":{"_index":"a"}}` + "\n" + `{"m":1}` + "\n\n", "x_content_parse_exception", "line [3]"},
		{"unknown action", `{"upsert":{"_index":"a"}}` + "\n{}\n", "illegal_argument_exception", "but found [upsert]"},
		{"two actions", `{"create":{},"index":{}}` + "\n{}\n", "x_content_parse_exception", "line [1]"},
		{"_type", `{"index":{"_index":"a","_type":"_doc"}}` + "\n{}\n", "illegal_argument_exception", "unknown parameter [_type]"},
		{"no index", `{"create":{}}` + "\n{}\n", "action_request_validation_exception", "index is missing"},
		{"no source", `{"create":{"_index":"a"}}` + "\n" + `{"m":1}` + "\n" + `{"create":{"_index":"a"}}` + "\n", "action_request_validation_exception", "no source line"},
	} {
		r := do(t, "POST", s.URL()+"/_bulk", []byte(tc.body))
		if r.status != 400 || r.errType() != tc.typ || !strings.Contains(string(r.raw), tc.reason) || r.body["status"] != float64(400) {
			t.Errorf("%s: %d %s", tc.name, r.status, r.raw)
		}
		if rc, _ := r.body["error"].(map[string]any)["root_cause"].([]any); len(rc) != 1 {
			t.Errorf("%s: root_cause %s", tc.name, r.raw)
		}
	}
	if len(s.Docs()) != 0 || s.Items() != 0 {
		t.Fatalf("malformed requests stored %d docs, %d items", len(s.Docs()), s.Items())
	}

	// Content-Type.
	if r := do(t, "POST", s.URL()+"/_bulk", creates(1, "ct"), header("Content-Type", "text/plain")); r.status != 406 || !strings.Contains(string(r.raw), "[text/plain] is not supported") {
		t.Errorf("text/plain: %d %s", r.status, r.raw)
	}
	if r := do(t, "POST", s.URL()+"/_bulk", creates(1, "ct"), func(r *http.Request) { r.Header.Del("Content-Type") }); r.status != 406 {
		t.Errorf("no content type: %d %s", r.status, r.raw)
	}
	if r := do(t, "POST", s.URL()+"/_bulk", creates(1, "ct"), header("Content-Type", "application/json; charset=UTF-8")); r.status != 200 {
		t.Errorf("application/json: %d %s", r.status, r.raw)
	}
}

func TestItemRejects(t *testing.T) {
	s := esfake.Start(t)
	body := ndjson(
		`{"create":{"_index":"a","_id":"1"}}`, `"just a string"`,
		`{"delete":{"_index":"a","_id":"1"}}`,
		`{"update":{"_index":"a","_id":"1"}}`, `{"doc":{"m":1}}`,
		`{"create":{"_index":"a","_id":"2"}}`, `{"m":"ok"`,
		`{"create":{"_index":"a","_id":"3"}}`, `{"m":"ok"}`,
	)
	b := do(t, "POST", s.URL()+"/_bulk", body).bulk(t)
	if !b.Errors || len(b.Items) != 5 {
		t.Fatalf("%+v", b)
	}
	want := []struct {
		action, typ string
		status      int
	}{
		{"create", "mapper_parsing_exception", 400},
		{"delete", "illegal_argument_exception", 400},
		{"update", "illegal_argument_exception", 400},
		{"create", "mapper_parsing_exception", 400},
		{"create", "", 201},
	}
	for i, w := range want {
		it, ok := b.Items[i][w.action]
		if !ok || it.Status != w.status || (w.typ != "" && (it.Error == nil || it.Error.Type != w.typ || it.Error.Reason == "")) {
			t.Errorf("item %d: %+v", i, b.Items[i])
		}
	}
	if docs := s.Docs(); len(docs) != 1 || docs[0].ID != "3" {
		t.Fatalf("docs %+v", docs)
	}
}

func TestMaxContentLength(t *testing.T) {
	s := esfake.Start(t, esfake.WithMaxContentLength(1000))
	big := creates(40, "big") // > 1000 bytes
	if len(big) <= 1000 {
		t.Fatal("body too small")
	}
	r := do(t, "POST", s.URL()+"/_bulk", big)
	if r.status != 413 || len(r.raw) != 0 {
		t.Fatalf("big: %d %s", r.status, r.raw)
	}
	// Small on the wire, big decoded.
	z := gz(big)
	if len(z) > 1000 {
		t.Fatalf("gzip %d bytes", len(z))
	}
	if r := do(t, "POST", s.URL()+"/_bulk", z, header("Content-Encoding", "gzip")); r.status != 413 {
		t.Fatalf("big decoded: %d %s", r.status, r.raw)
	}
	// Without Content-Length (chunked).
	req, _ := http.NewRequest("POST", s.URL()+"/_bulk", io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("Content-Type", "application/x-ndjson")
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 413 {
		t.Fatalf("chunked: %d", hr.StatusCode)
	}
	if b := do(t, "POST", s.URL()+"/_bulk", creates(5, "small")).bulk(t); b.Errors {
		t.Fatalf("small: %+v", b)
	}
	if len(s.Docs()) != 5 || s.Requests() != 4 {
		t.Fatalf("docs %d requests %d", len(s.Docs()), s.Requests())
	}
	if esfake.DefaultMaxContentLength != 100<<20 {
		t.Fatal("default is ES's 100mb")
	}
}

func TestNextReplies(t *testing.T) {
	s := esfake.Start(t)
	s.Next(
		esfake.Reply{Status: 429, RetryAfter: "1"},
		esfake.Reply{},
		esfake.Reply{Status: 503, Type: "unavailable_shards_exception", Reason: "primary shard is not active"},
		esfake.Reply{Status: 413},
		esfake.Reply{Delay: 200 * time.Millisecond},
	)
	r := do(t, "POST", s.URL()+"/_bulk", creates(2, "r1"))
	if r.status != 429 || r.header.Get("Retry-After") != "1" || r.errType() != "es_rejected_execution_exception" || r.body["status"] != float64(429) {
		t.Fatalf("429: %d %v %s", r.status, r.header, r.raw)
	}
	if b := do(t, "POST", s.URL()+"/_bulk", creates(2, "r1")).bulk(t); b.Errors || len(b.Items) != 2 {
		t.Fatalf("after 429: %+v", b)
	}
	r = do(t, "POST", s.URL()+"/_bulk", creates(2, "r3"))
	if r.status != 503 || r.errType() != "unavailable_shards_exception" || !strings.Contains(string(r.raw), "primary shard is not active") || r.header.Get("Retry-After") != "" {
		t.Fatalf("503: %d %s", r.status, r.raw)
	}
	if r := do(t, "POST", s.URL()+"/_bulk", creates(2, "r4")); r.status != 413 || len(r.raw) != 0 {
		t.Fatalf("413: %d %s", r.status, r.raw)
	}
	t0 := time.Now()
	do(t, "POST", s.URL()+"/_bulk", creates(1, "r5")).bulk(t)
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Fatalf("delayed reply after %v", d)
	}
	// Whole-request failures store nothing and count no items.
	if len(s.Docs()) != 3 || s.Items() != 3 || s.Requests() != 5 {
		t.Fatalf("docs %d items %d requests %d", len(s.Docs()), s.Items(), s.Requests())
	}
	if st := fmt.Sprint(statuses(s.RequestLog())); st != "[429 200 503 413 200]" {
		t.Fatalf("log statuses %s", st)
	}

	// Reset and hang.
	s.Next(esfake.Reply{Reset: true}, esfake.Reply{Hang: true})
	if _, err := tryDo(http.DefaultClient, "POST", s.URL()+"/_bulk", creates(1, "reset")); err == nil {
		t.Fatal("reset: no error")
	}
	c := &http.Client{Timeout: 300 * time.Millisecond}
	t0 = time.Now()
	_, err := tryDo(c, "POST", s.URL()+"/_bulk", creates(1, "hang"))
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(t0) > 5*time.Second {
		t.Fatalf("hang: %v after %v", err, time.Since(t0))
	}
	if s.Requests() != 7 || len(s.Docs()) != 3 {
		t.Fatalf("requests %d docs %d", s.Requests(), len(s.Docs()))
	}
}

func statuses(log []esfake.Request) []int {
	var st []int
	for _, r := range log {
		st = append(st, r.Status)
	}
	return st
}

func TestModes(t *testing.T) {
	s := esfake.Start(t)
	s.SetMode(esfake.Unavailable)
	r := do(t, "POST", s.URL()+"/_bulk", creates(1, "m"))
	if r.status != 503 || r.errType() != "cluster_block_exception" {
		t.Fatalf("unavailable: %d %s", r.status, r.raw)
	}
	// The queue wins over the mode.
	s.Next(esfake.Reply{})
	do(t, "POST", s.URL()+"/_bulk", creates(1, "q")).bulk(t)

	s.SetMode(esfake.Reset)
	if _, err := tryDo(http.DefaultClient, "POST", s.URL()+"/_bulk", creates(1, "m")); err == nil {
		t.Fatal("reset mode: no error")
	}
	s.SetMode(esfake.Hang)
	c := &http.Client{Timeout: 200 * time.Millisecond}
	if _, err := tryDo(c, "POST", s.URL()+"/_bulk", creates(1, "m")); err == nil {
		t.Fatal("hang mode: no error")
	}
	s.SetMode(esfake.Up)
	s.SetDelay(150 * time.Millisecond)
	t0 := time.Now()
	do(t, "POST", s.URL()+"/_bulk", creates(1, "slow")).bulk(t)
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Fatalf("slow: %v", d)
	}
	// A client that gives up before the delay ends stores nothing.
	c = &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := tryDo(c, "POST", s.URL()+"/_bulk", creates(1, "gaveup")); err == nil {
		t.Fatal("slow: no timeout")
	}
	s.ClearFaults()
	do(t, "POST", s.URL()+"/_bulk", creates(1, "fast")).bulk(t)
	var ids []string
	for _, d := range s.Docs() {
		ids = append(ids, d.ID)
	}
	if fmt.Sprint(ids) != "[q-0 slow-0 fast-0]" {
		t.Fatalf("docs %v", ids)
	}
}

func TestItemFaults(t *testing.T) {
	s := esfake.Start(t)
	s.FailItems(esfake.Contains(`"poison"`), esfake.Fault{Status: 400}, esfake.Always)
	s.FailItems(esfake.EveryNth(10), esfake.Fault{Status: 429}, 1)
	var lines []string
	for i := range 30 {
		msg := fmt.Sprintf("line %d", i)
		if i == 5 {
			msg = "poison"
		}
		lines = append(lines, fmt.Sprintf(`{"create":{"_index":"logs","_id":"d%d"}}`, i), fmt.Sprintf(`{"message":%q}`, msg))
	}
	body := ndjson(lines...)
	b := do(t, "POST", s.URL()+"/_bulk", body).bulk(t)
	if !b.Errors || len(b.Items) != 30 {
		t.Fatalf("%+v", b)
	}
	var retry []string
	for i, m := range b.Items {
		it := m["create"]
		switch {
		case i == 5:
			if it.Status != 400 || it.Error.Type != "mapper_parsing_exception" {
				t.Errorf("poison: %+v", it)
			}
		case (i+1)%10 == 0:
			if it.Status != 429 || it.Error.Type != "es_rejected_execution_exception" || it.ID != fmt.Sprintf("d%d", i) {
				t.Errorf("item %d: %+v", i, it)
			}
			retry = append(retry, lines[2*i], lines[2*i+1])
		default:
			if it.Status != 201 {
				t.Errorf("item %d: %+v", i, it)
			}
		}
	}
	if len(retry) != 6 || len(s.Docs()) != 26 {
		t.Fatalf("retry %d docs %d", len(retry), len(s.Docs()))
	}
	// Retrying the 429s succeeds (once per document), the poison fails
	// again, and retrying an accepted create gets 409.
	retry = append(retry, lines[10], lines[11], lines[0], lines[1])
	b = do(t, "POST", s.URL()+"/_bulk", ndjson(retry...)).bulk(t)
	got := []int{}
	for _, m := range b.Items {
		got = append(got, m["create"].Status)
	}
	if fmt.Sprint(got) != "[201 201 201 400 409]" {
		t.Fatalf("retry statuses %v", got)
	}
	if len(s.Docs()) != 29 || s.Items() != 35 {
		t.Fatalf("docs %d items %d", len(s.Docs()), s.Items())
	}

	// Script: fail the first attempt of every document of request 3 with a
	// 503 item, see Attempt count up.
	s.ClearFaults()
	var attempts []int
	s.Script(func(it esfake.Item) *esfake.Fault {
		attempts = append(attempts, it.Attempt)
		if it.Attempt == 0 && it.Req == 3 {
			return &esfake.Fault{Status: 503, Type: "unavailable_shards_exception", Reason: "not ready"}
		}
		return nil
	})
	one := ndjson(`{"create":{"_index":"logs"}}`, `{"message":"scripted"}`)
	for range 2 {
		do(t, "POST", s.URL()+"/_bulk", one)
	}
	log := s.RequestLog()
	if fmt.Sprint(log[2].ItemResults, log[3].ItemResults, attempts) != "[503] [201] [0 1]" {
		t.Fatalf("script: %v %v %v", log[2].ItemResults, log[3].ItemResults, attempts)
	}
	// The rules see Item fields.
	s.Script(nil)
	var seen []esfake.Item
	var mu sync.Mutex
	s.FailItems(func(it esfake.Item) bool {
		mu.Lock()
		seen = append(seen, it)
		mu.Unlock()
		return it.Pos == 1
	}, esfake.Fault{Status: 400, Type: "illegal_argument_exception", Reason: "custom"}, esfake.Always)
	b = do(t, "POST", s.URL()+"/x/_bulk", ndjson(`{"index":{"_id":"p0"}}`, `{"a":1}`, `{"index":{"_id":"p1"}}`, `{"a":2}`)).bulk(t)
	if it := b.Items[1]["index"]; it.Status != 400 || it.Error.Type != "illegal_argument_exception" || it.Error.Reason != "custom" || it.Index != "x" {
		t.Fatalf("custom fault: %+v", it)
	}
	if len(seen) != 2 || seen[1].Req != 5 || seen[1].Seq != 39 || seen[1].Action != "index" || seen[1].Index != "x" || seen[1].ID != "p1" || string(seen[1].Source) != `{"a":2}` {
		t.Fatalf("item seen: %+v", seen)
	}
}

func TestAuth(t *testing.T) {
	key := esfake.APIKey("id1", "secret1")
	s := esfake.Start(t, esfake.WithBasicAuth("elastic", "changeme"), esfake.WithAPIKey(key))
	basic := func(u, p string) reqOpt { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	for _, tc := range []struct {
		name   string
		opt    reqOpt
		status int
		reason string
	}{
		{"none", func(*http.Request) {}, 401, "missing authentication credentials for REST request [/_bulk]"},
		{"basic ok", basic("elastic", "changeme"), 200, ""},
		{"basic wrong", basic("elastic", "nope"), 401, "unable to authenticate user [elastic]"},
		{"apikey ok", header("Authorization", "ApiKey "+key), 200, ""},
		{"apikey wrong", header("Authorization", "ApiKey "+esfake.APIKey("id1", "x")), 401, "unable to authenticate"},
		{"bearer", header("Authorization", "Bearer abc"), 401, "unable to authenticate"},
	} {
		r := do(t, "POST", s.URL()+"/_bulk", creates(1, strings.ReplaceAll(tc.name, " ", "")), tc.opt)
		if r.status != tc.status {
			t.Errorf("%s: %d %s", tc.name, r.status, r.raw)
			continue
		}
		if tc.status == 401 {
			if r.errType() != "security_exception" || !strings.Contains(string(r.raw), tc.reason) ||
				len(r.header.Values("WWW-Authenticate")) != 2 || r.header.Get("X-Elastic-Product") != "Elasticsearch" {
				t.Errorf("%s: %v %s", tc.name, r.header, r.raw)
			}
		}
	}
	if r := do(t, "GET", s.URL()+"/", nil); r.status != 401 {
		t.Errorf("GET / without auth: %d", r.status)
	}
	if r := do(t, "GET", s.URL()+"/", nil, basic("elastic", "changeme")); r.status != 200 {
		t.Errorf("GET / with auth: %d", r.status)
	}
	if len(s.Docs()) != 2 || s.Requests() != 6 {
		t.Errorf("docs %d requests %d", len(s.Docs()), s.Requests())
	}
	if st := fmt.Sprint(statuses(s.RequestLog())); st != "[401 200 401 200 401 401]" {
		t.Errorf("statuses %s", st)
	}
}

func TestStopRestart(t *testing.T) {
	s := esfake.Start(t)
	do(t, "POST", s.URL()+"/_bulk", creates(3, "before")).bulk(t)
	s.Stop()
	if _, err := tryDo(http.DefaultClient, "POST", s.URL()+"/_bulk", creates(1, "down")); err == nil {
		t.Fatal("stopped: no error")
	}
	s.Stop() // idempotent
	s.Restart(t)
	b := do(t, "POST", s.URL()+"/_bulk", creates(3, "before")).bulk(t)
	if !b.Errors || b.Items[0]["create"].Status != 409 {
		t.Fatalf("documents lost over restart: %+v", b)
	}
	if s.Requests() != 2 || len(s.Docs()) != 3 {
		t.Fatalf("requests %d docs %d", s.Requests(), len(s.Docs()))
	}

	// A hung request is released by Stop and by Close, promptly.
	s.SetMode(esfake.Hang)
	errc := make(chan error, 1)
	go func() {
		_, err := tryDo(http.DefaultClient, "POST", s.URL()+"/_bulk", creates(1, "hung"))
		errc <- err
	}()
	for s.Requests() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	s.Close()
	if err := <-errc; err == nil || time.Since(t0) > 5*time.Second {
		t.Fatalf("hung request after close: %v in %v", err, time.Since(t0))
	}
	// CloseClientConnections on a live server breaks in-flight requests.
	s2 := esfake.Start(t, esfake.WithMaxContentLength(1<<20))
	s2.SetDelay(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		for s2.Requests() < 1 {
			time.Sleep(5 * time.Millisecond)
		}
		s2.CloseClientConnections()
	}()
	req, _ := http.NewRequestWithContext(ctx, "POST", s2.URL()+"/_bulk", bytes.NewReader(creates(1, "x")))
	req.Header.Set("Content-Type", "application/json")
	t0 = time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil || time.Since(t0) > 4*time.Second {
		t.Fatalf("close client connections: %v after %v", err, time.Since(t0))
	}
}

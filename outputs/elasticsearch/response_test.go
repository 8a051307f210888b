package elasticsearch

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// fullAnswer is an unfiltered ES 8 answer: every member the scanner
// skips, escapes in strings, a nested error with caused_by.
const fullAnswer = `{"took":30,"errors":true,"items":[
 {"create":{"_index":"logs","_id":"a\"b","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
 {"create":{"_index":"logs","_id":"c","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[c]: version conflict, document already exists (current version [1])","index_uuid":"x","shard":"0","index":"logs"}}},
 {"index":{"_index":"logs","_id":"d","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n] of type [long] in document with id 'd'. Preview of field's value: '\u0061bc'","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}},
 {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
 {"create":{"status":503,"error":"old style string error"}},
 {"delete":{"_index":"logs","_id":"e","status":404,"result":"not_found","list":[1,2,[3,{"x":null}]],"f":-1.5e3,"t":true}}
],"ingest_took":0}`

func TestParseResponse(t *testing.T) {
	var r bulkResponse
	if err := r.parse([]byte(fullAnswer)); err != nil {
		t.Fatal(err)
	}
	if !r.Errors || len(r.Items) != 6 {
		t.Fatalf("errors %v, %d items", r.Errors, len(r.Items))
	}
	want := []struct {
		status int
		typ    string
		out    delivery.Status
	}{
		{201, "", delivery.OK}, {409, "version_conflict_engine_exception", delivery.OK},
		{400, "mapper_parsing_exception", delivery.Refuse}, {429, "es_rejected_execution_exception", delivery.Retry},
		{503, "", delivery.Retry}, {404, "", delivery.Refuse},
	}
	for i, w := range want {
		it := &r.Items[i]
		res, _ := classify(it, true)
		if it.Status != w.status || it.Error.Type != w.typ || res.Status != w.out {
			t.Errorf("item %d: %+v -> %+v, want %+v", i, it, res, w)
		}
	}
	if res, _ := classify(&r.Items[2], true); res.Reason != "mapper_parsing_exception" ||
		res.Detail != `failed to parse field [n] of type [long] in document with id 'd'. Preview of field's value: 'abc' (caused by illegal_argument_exception: For input string: "abc")` {
		t.Errorf("detail %+v", res)
	}
	if r.Items[4].Error.Reason != "old style string error" {
		t.Errorf("string error: %+v", r.Items[4])
	}
	if res, _ := classify(&r.Items[5], true); res.Reason != "http_404" {
		t.Errorf("404 without error: %+v", res)
	}
	if res, _ := classify(&itemResult{Status: 409}, false); res.Status != delivery.Refuse {
		t.Errorf("409 on index: %+v", res)
	}
	// Reused: nothing of the previous answer stays.
	if err := r.parse([]byte(`{"errors":false,"items":[{"create":{"status":201}}]}`)); err != nil || r.Errors || len(r.Items) != 1 || r.Items[0].Error.Type != "" {
		t.Fatalf("reuse: %v %+v", err, r)
	}
	for _, bad := range []string{``, `[]`, `{"items":[{"create":{"status":"x"}}]}`, `{"items":[`, `{"items":[]} x`,
		`{"items":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, `{"a":"\"}`} {
		if err := r.parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseResponse: where encoding/json reads an answer as a bulk
// response with plausible statuses, the scanner reads the same.
func FuzzParseResponse(f *testing.F) {
	f.Add(fullAnswer)
	f.Add(`{"errors":false,"items":[{"create":{"status":201}},{"index":{"status":200}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var ref struct {
			Errors bool `json:"errors"`
			Items  []map[string]json.RawMessage
		}
		if json.Unmarshal([]byte(s), &ref) != nil {
			return
		}
		type act struct {
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		}
		var want []act
		for _, it := range ref.Items {
			if len(it) != 1 {
				return
			}
			for _, v := range it {
				var a act
				if json.Unmarshal(v, &a) != nil || a.Status < 100 || a.Status > 599 {
					return
				}
				want = append(want, a)
			}
		}
		if strings.Contains(s, `\u`) || strings.Count(s, "{")+strings.Count(s, "[") > 60 {
			return // escaped key spellings, deep nesting: the scanner may refuse
		}
		var r bulkResponse
		if err := r.parse([]byte(s)); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if len(r.Items) != len(want) || r.Errors != ref.Errors {
			t.Fatalf("%q: %d items errors %v, want %d %v", s, len(r.Items), r.Errors, len(want), ref.Errors)
		}
		for i := range want {
			if r.Items[i].Status != want[i].Status {
				t.Fatalf("%q: item %d status %d, want %d", s, i, r.Items[i].Status, want[i].Status)
			}
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, " 1 ": time.Second, "-1": 0, "x": 0, "99999": 10 * time.Minute,
		"Tue, 02 Jan 2024 03:04:15 GMT": 10 * time.Second, "Tue, 02 Jan 2024 03:00:00 GMT": 0,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("%q: %s, want %s", h, got, want)
		}
	}
}

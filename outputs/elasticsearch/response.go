package elasticsearch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// bulkResponse is the part of a _bulk answer the output reads (the
// request asks for no more with filter_path): errors, and per item its
// status and error. parse reads it with a small scanner: encoding/json
// decodes only the error objects of failed items.
type bulkResponse struct {
	Errors bool
	Items  []itemResult
}

type itemResult struct {
	Status int
	Error  itemError
}

type itemError struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	CausedBy struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"caused_by"`
}

// parse decodes body into r, reusing its items. The answer must be an
// object; its "items" an array of objects, each holding one action key
// whose value is an object with "status" (an integer) and optionally
// "error" (an object, or a string as some old servers send). Members it
// does not read are skipped, whatever they hold.
func (r *bulkResponse) parse(body []byte) error {
	r.Errors, r.Items = false, r.Items[:0]
	p := &scanner{b: body}
	err := p.object(func(key []byte) error {
		switch string(key) {
		case "errors":
			switch {
			case p.lit("true"):
				r.Errors = true
			case p.lit("false"):
			default:
				return p.skip()
			}
			return nil
		case "items":
			r.Items = r.Items[:0] // a repeated key: the last one wins, as in encoding/json
			return p.array(func() error {
				r.Items = append(r.Items, itemResult{})
				it := &r.Items[len(r.Items)-1]
				seen := false
				return p.object(func([]byte) error {
					if seen || p.peek() != '{' {
						return p.skip() // only the first action object counts
					}
					seen = true
					return p.object(func(k []byte) error {
						switch string(k) {
						case "status":
							n, err := p.int()
							it.Status = n
							return err
						case "error":
							start := p.i
							if err := p.skip(); err != nil {
								return err
							}
							raw := p.b[start:p.i]
							if json.Unmarshal(raw, &it.Error) != nil {
								var s string
								json.Unmarshal(raw, &s)
								it.Error.Reason = s
							}
							return nil
						}
						return p.skip()
					})
				})
			})
		}
		return p.skip()
	})
	if err != nil {
		return err
	}
	if p.ws(); p.i != len(p.b) {
		return p.fail("data after the answer")
	}
	return nil
}

// scanner reads JSON from b at i.
type scanner struct {
	b     []byte
	i     int
	depth int
}

// maxDepth bounds the nesting the scanner follows.
const maxDepth = 64

func (p *scanner) fail(what string) error {
	return fmt.Errorf("malformed bulk answer at byte %d: %s", p.i, what)
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) peek() byte {
	if p.ws(); p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *scanner) lit(s string) bool {
	if p.ws(); bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return true
	}
	return false
}

// object reads an object, calling member with p just after each key's
// ':'; member must read the value.
func (p *scanner) object(member func(key []byte) error) error {
	if p.peek() != '{' {
		return p.fail("want an object")
	}
	if p.depth++; p.depth > maxDepth {
		return p.fail("nested too deep")
	}
	defer func() { p.depth-- }()
	p.i++
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.str()
		if err != nil {
			return err
		}
		if p.peek() != ':' {
			return p.fail("want ':'")
		}
		p.i++
		if err := member(key); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("want ',' or '}'")
		}
	}
}

// array reads an array, calling elem with p at each element.
func (p *scanner) array(elem func() error) error {
	if p.peek() != '[' {
		return p.fail("want an array")
	}
	if p.depth++; p.depth > maxDepth {
		return p.fail("nested too deep")
	}
	defer func() { p.depth-- }()
	p.i++
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.fail("want ',' or ']'")
		}
	}
}

// str reads a string and returns its raw bytes (escapes not decoded).
func (p *scanner) str() ([]byte, error) {
	if p.peek() != '"' {
		return nil, p.fail("want a string")
	}
	p.i++
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			s := p.b[start:p.i]
			p.i++
			return s, nil
		}
		p.i++
	}
	return nil, p.fail("unterminated string")
}

func (p *scanner) int() (int, error) {
	p.ws()
	start, n := p.i, 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' && p.i-start < 9 {
		n = n*10 + int(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start {
		return 0, p.fail("want a status number")
	}
	return n, nil
}

// skip reads one value of any kind.
func (p *scanner) skip() error {
	switch c := p.peek(); c {
	case '"':
		_, err := p.str()
		return err
	case '{':
		return p.object(func([]byte) error { return p.skip() })
	case '[':
		return p.array(p.skip)
	case 0:
		return p.fail("want a value")
	default:
		start := p.i
		for p.i < len(p.b) && strings.IndexByte(",}] \t\r\n", p.b[p.i]) < 0 {
			p.i++
		}
		if p.i == start {
			return p.fail("want a value")
		}
		return nil
	}
}

// classify maps one item's status to the event's result. create answered
// 409 (the document exists: a re-send of a stable id) counts as
// delivered; 429 and 5xx are retried; everything else is refused for good
// with the error type as the reason.
func classify(it *itemResult, create bool) (delivery.Result, bool) {
	st := it.Status
	switch {
	case st >= 200 && st < 300:
		return delivery.Result{Status: delivery.OK}, false
	case st == http.StatusConflict && create:
		return delivery.Result{Status: delivery.OK}, true
	case st == http.StatusTooManyRequests || st >= 500:
		return delivery.Result{Status: delivery.Retry, Reason: reasonOf(it.Error.Type, st), Detail: it.Error.Reason}, false
	case st == 0:
		return delivery.Result{Status: delivery.Retry, Reason: "no_status", Detail: "bulk item without a status"}, false
	}
	return delivery.Result{Status: delivery.Refuse, Reason: reasonOf(it.Error.Type, st), Detail: detailOf(&it.Error)}, false
}

func reasonOf(typ string, status int) string {
	if typ == "" || len(typ) > 64 || !isLabel(typ) {
		return "http_" + strconv.Itoa(status)
	}
	return typ
}

// isLabel keeps metrics labels to the shape of ES error types.
func isLabel(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func detailOf(e *itemError) string {
	d := e.Reason
	if e.CausedBy.Reason != "" {
		d += " (caused by " + e.CausedBy.Type + ": " + e.CausedBy.Reason + ")"
	}
	return d
}

// requestError is the ES whole-request error body
// {"error":{"type","reason",...},"status":N}; error may also be a string.
type requestError struct {
	Error json.RawMessage `json:"error"`
}

// describe returns the error type and a one-line message of a
// whole-request failure's body (JSON or plain text), bounded in length.
func describe(body []byte) (typ, msg string) {
	var re requestError
	if json.Unmarshal(body, &re) == nil && len(re.Error) > 0 {
		var obj itemError
		if json.Unmarshal(re.Error, &obj) == nil && (obj.Type != "" || obj.Reason != "") {
			return obj.Type, clip(detailOf(&obj))
		}
		var s string
		if json.Unmarshal(re.Error, &s) == nil {
			return "", clip(s)
		}
	}
	return "", clip(string(bytes.TrimSpace(body)))
}

func clip(s string) string {
	const max = 512
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. It
// returns 0 when absent or invalid, and caps the wait at maxRetryAfter.
func retryAfter(h string, now time.Time) time.Duration {
	const maxRetryAfter = 10 * time.Minute
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// statusError is a whole-request failure with the server's answer.
type statusError struct {
	status int
	typ    string
	msg    string
	host   string
	hint   string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.host, e.status)
	if e.typ != "" {
		s += " " + e.typ
	}
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.hint != "" {
		s += " (" + e.hint + ")"
	}
	return s
}

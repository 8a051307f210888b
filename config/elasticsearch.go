package config

import (
	"fmt"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// ElasticsearchOutput sends events with the _bulk API to Elasticsearch
// (7.17, 8, 9), OpenSearch (1, 2, 3, and Amazon OpenSearch Service with
// AWS SigV4) and _bulk-compatible servers such as VictoriaLogs. Each event
// becomes one document: its record's fields plus the event time under
// time_key (and the tag under tag_key, if set).
type ElasticsearchOutput struct {
	// Hosts are the servers' base URLs, http:// or https://, with an
	// optional path prefix: requests go to <host>/_bulk, e.g.
	// http://127.0.0.1:9428/insert/elasticsearch for VictoriaLogs. Requests
	// rotate over the hosts; a host that failed is skipped for
	// host_backoff.
	Hosts []string `yaml:"hosts"`
	// Index names each event's index. It may hold the event time's UTC %Y,
	// %m, %d and %H (and %% for a '%'), {tag} and {field:KEY} (a record
	// field; KEY may be a dotted path into nested maps). A placeholder
	// value is lowercased, with characters an index name cannot hold
	// replaced by '_'; a missing one renders as "unknown". Default
	// sluice-%Y.%m.%d, unless data_stream is set.
	Index string `yaml:"index"`
	// DataStream writes to a data stream instead of an index (op_type
	// create, @timestamp required). It may hold {tag} and {field:KEY} but
	// no time pattern: a data stream rolls over on its own. The server
	// needs an index template with data streams enabled that matches it
	// (ES 8 ships one for logs-*-*).
	DataStream string `yaml:"data_stream"`
	// OpType is the bulk action: "create" (default, the only one a data
	// stream accepts; 409 on an existing _id counts as delivered) or
	// "index" (an existing _id is overwritten).
	OpType string `yaml:"op_type"`
	// IDMode sets each document's _id: "stable" derives it from the event's
	// place in the disk queue and its bytes, so a batch sent again after a
	// crash or a timeout creates no duplicates; "none" lets the server
	// generate ids (cheaper to index, duplicates possible on re-sends);
	// "auto" (default) is stable with op_type create and none with index.
	IDMode string `yaml:"id_mode"`
	// Pipeline is the ingest pipeline to run (the pipeline query parameter).
	Pipeline string `yaml:"pipeline"`
	// TimeKey is the document field that holds the event time. Default
	// @timestamp. A record that has the field already keeps its own value.
	TimeKey string `yaml:"time_key"`
	// TimeFormat is rfc3339nano (default, 2024-01-02T03:04:05.123456789Z),
	// epoch_millis, epoch_seconds (with nine decimals) or epoch_nanos.
	TimeFormat string `yaml:"time_format"`
	// TagKey, if set, adds the event's tag under this field.
	TagKey string `yaml:"tag_key"`
	// MaxBulkBytes caps one request's body before compression. Default
	// 5 MiB; keep it under the server's http.max_content_length (100mb by
	// default, 10 MiB on small Amazon OpenSearch instances). An event
	// larger than it alone is dead-lettered (reason too_large).
	MaxBulkBytes int `yaml:"max_bulk_bytes"`
	// MaxBulkEvents caps the documents of one request. Default 5000.
	MaxBulkEvents int `yaml:"max_bulk_events"`
	// Compress is "gzip" (default) or "none": request bodies are sent with
	// Content-Encoding: gzip, as Beats and Logstash do by default.
	Compress string `yaml:"compress"`
	// CompressLevel is the gzip level, 1 (default, fastest) to 9.
	CompressLevel int `yaml:"compress_level"`
	// Username and Password are HTTP basic authentication.
	Username string `yaml:"username"`
	// Password of Username (basic authentication).
	Password Secret `yaml:"password"`
	// APIKey is an Elasticsearch API key, the base64 "encoded" value the
	// create API key call returns: sent as Authorization: ApiKey <api_key>.
	APIKey Secret `yaml:"api_key"`
	// Headers are sent with every request (e.g. VictoriaLogs' VL-Msg-Field,
	// a proxy's token).
	Headers []HTTPHeader `yaml:"headers"`
	// RequestTimeout bounds one request, response included. Default 60s,
	// the server's own bulk timeout.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// HostBackoff is how long a host that failed (connection error,
	// timeout, 502/503/504) is skipped while others are up; it doubles
	// with each consecutive failure, up to 2m. Default 10s.
	HostBackoff time.Duration `yaml:"host_backoff"`

	// TLS applies to https:// hosts (CA, client certificate, server name;
	// insecure_skip_verify only when set). enabled is implied by https://.
	TLS *TLS `yaml:"tls"`
	// AWS signs requests with SigV4 for Amazon OpenSearch Service, with
	// credentials from the default AWS chain. Exclusive with username and
	// api_key.
	AWS *AWSSigning `yaml:"aws"`
}

// HTTPHeader is one extra request header.
type HTTPHeader struct {
	// Name of the header, e.g. Authorization.
	Name string `yaml:"name"`
	// Value of the header (a secret: it may hold a token).
	Value Secret `yaml:"value"`
}

// AWSSigning configures AWS SigV4 request signing.
type AWSSigning struct {
	// Region of the domain or collection. Default: the AWS chain's region
	// (AWS_REGION, shared config), else the one in the host name
	// (*.REGION.es.amazonaws.com, *.REGION.aoss.amazonaws.com).
	Region string `yaml:"region"`
	// Service is "es" (default, OpenSearch Service domains) or "aoss"
	// (OpenSearch Serverless).
	Service string `yaml:"service"`
	// RoleARN, if set, is assumed (STS AssumeRole) with the chain's
	// credentials.
	RoleARN string `yaml:"role_arn"`
}

// Elasticsearch defaults.
const (
	DefaultElasticsearchIndex = "sluice-%Y.%m.%d"
	maxElasticsearchHosts     = 64
)

// DefaultElasticsearchOutput returns an ElasticsearchOutput with every
// default applied and no hosts.
func DefaultElasticsearchOutput() ElasticsearchOutput {
	return ElasticsearchOutput{
		Index:          DefaultElasticsearchIndex,
		OpType:         "create",
		IDMode:         "auto",
		TimeKey:        "@timestamp",
		TimeFormat:     "rfc3339nano",
		MaxBulkBytes:   5 << 20,
		MaxBulkEvents:  5000,
		Compress:       "gzip",
		CompressLevel:  1,
		RequestTimeout: 60 * time.Second,
		HostBackoff:    10 * time.Second,
	}
}

func (e *ElasticsearchOutput) setDefaults() { *e = DefaultElasticsearchOutput() }

// decoded drops the default index when data_stream is set and index is
// not: a data stream alone is a complete target.
func (e *ElasticsearchOutput) decoded(set func(key string) bool) {
	if e.DataStream != "" && !set("index") {
		e.Index = ""
	}
}

// StableIDs reports whether documents get ids derived from their queue
// position (id_mode stable, or auto with op_type create).
func (e *ElasticsearchOutput) StableIDs() bool {
	return e.IDMode == "stable" || ((e.IDMode == "auto" || e.IDMode == "") && e.OpType != "index")
}

// Validate checks e alone, with the rules Parse applies (for outputs built
// in code). It returns Errors, or nil.
func (e *ElasticsearchOutput) Validate() error {
	v := &checker{}
	e.check(v, "elasticsearch")
	if len(v.errs) > 0 {
		return v.errs.sorted()
	}
	return nil
}

func (e *ElasticsearchOutput) check(v *checker, p string) {
	https := 0
	if len(e.Hosts) == 0 {
		v.errorf(p+".hosts", "at least one host is required (e.g. http://127.0.0.1:9200)")
	} else if len(e.Hosts) > maxElasticsearchHosts {
		v.errorf(p+".hosts", "at most %d hosts, got %d", maxElasticsearchHosts, len(e.Hosts))
	}
	seen := map[string]string{}
	for i, h := range e.Hosts {
		hp := fmt.Sprintf("%s.hosts[%d]", p, i)
		u, err := ParseElasticsearchHost(h)
		if err != nil {
			v.errorf(hp, "invalid host %s: %v", v.q(hp, h), err)
			continue
		}
		if u.Scheme == "https" {
			https++
		} else if e.TLS != nil && e.TLS.Enabled {
			v.errorf(hp, "host %s is http:// but tls.enabled is set: use https://", v.q(hp, h))
		}
		if e.AWS != nil && u.Scheme != "https" {
			v.errorf(hp, "host %s is http://: AWS endpoints take https:// only", v.q(hp, h))
		}
		key := strings.TrimSuffix(u.String(), "/")
		if prev, dup := seen[key]; dup {
			v.errorf(hp, "duplicate host %s, already used by %s", v.q(hp, h), v.where(prev))
		} else {
			seen[key] = hp
		}
	}

	e.checkTarget(v, p)

	v.oneOf(p+".op_type", e.OpType, "create", "index")
	v.oneOf(p+".id_mode", e.IDMode, "auto", "stable", "none")
	if strings.ContainsAny(e.Pipeline, "/?#& ") {
		v.errorf(p+".pipeline", "invalid pipeline name %s", v.q(p+".pipeline", e.Pipeline))
	}
	if e.TimeKey == "" {
		v.errorf(p+".time_key", "must not be empty")
	}
	v.oneOf(p+".time_format", e.TimeFormat, "rfc3339nano", "epoch_millis", "epoch_seconds", "epoch_nanos")
	if e.TagKey != "" && e.TagKey == e.TimeKey {
		v.errorf(p+".tag_key", "%s is also time_key", v.q(p+".tag_key", e.TagKey))
	}
	if e.MaxBulkBytes < 1024 || e.MaxBulkBytes > 1<<30 {
		v.errorf(p+".max_bulk_bytes", "must be between 1KiB and 1GiB, got %d", e.MaxBulkBytes)
	}
	v.positiveInt(p+".max_bulk_events", e.MaxBulkEvents)
	v.oneOf(p+".compress", e.Compress, "gzip", "none")
	if e.CompressLevel < 1 || e.CompressLevel > 9 {
		v.errorf(p+".compress_level", "must be between 1 and 9, got %d", e.CompressLevel)
	}
	v.positive(p+".request_timeout", e.RequestTimeout)
	v.positive(p+".host_backoff", e.HostBackoff)

	// Authentication: one scheme at most.
	switch {
	case e.Username != "" && e.Password == "":
		v.errorf(p+".password", "required when username is set")
	case e.Username == "" && e.Password != "":
		v.errorf(p+".username", "required when password is set")
	}
	if e.APIKey != "" && e.Username != "" {
		v.errorf(p+".api_key", "api_key and username are exclusive: pick one authentication")
	}
	if e.AWS != nil {
		ap := p + ".aws"
		if e.Username != "" || e.APIKey != "" {
			v.errorf(ap, "aws signing is exclusive with username and api_key")
		}
		if e.AWS.Service != "" {
			v.oneOf(ap+".service", e.AWS.Service, "es", "aoss")
		}
		if e.AWS.RoleARN != "" && !strings.HasPrefix(e.AWS.RoleARN, "arn:") {
			v.errorf(ap+".role_arn", "invalid role ARN %s (want arn:aws:iam::ACCOUNT:role/NAME)", v.q(ap+".role_arn", e.AWS.RoleARN))
		}
		if strings.ContainsAny(e.AWS.Region, " /:") {
			v.errorf(ap+".region", "invalid region %s", v.q(ap+".region", e.AWS.Region))
		}
	}
	e.checkHeaders(v, p)

	v.tls(p+".tls", e.TLS, false)
	if t := e.TLS; t != nil && https == 0 && len(e.Hosts) > 0 &&
		(t.Enabled || t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		v.errorf(p+".tls", "tls settings apply to https:// hosts, and no host is https://")
	}
}

// checkTarget checks index, data_stream and their combinations.
func (e *ElasticsearchOutput) checkTarget(v *checker, p string) {
	ip, dp := p+".index", p+".data_stream"
	switch {
	case e.DataStream != "" && e.Index != "":
		if hasTimePattern(e.Index) {
			v.errorf(ip, "time pattern in index %s together with data_stream: a data stream rolls over on its own; remove index", v.q(ip, e.Index))
		} else {
			v.errorf(ip, "index and data_stream are exclusive: remove one")
		}
	case e.DataStream == "" && e.Index == "":
		v.errorf(ip, "index or data_stream is required")
	}
	if e.Index != "" {
		if err := checkIndexName(e.Index, true); err != nil {
			v.invalid(ip, e.Index, "index", fmt.Errorf("index %s: %w", v.q(ip, e.Index), err))
		}
	}
	if e.DataStream != "" {
		switch {
		case hasTimePattern(e.DataStream):
			v.errorf(dp, "time pattern in data_stream %s: a data stream rolls over on its own", v.q(dp, e.DataStream))
		default:
			if err := checkIndexName(e.DataStream, false); err != nil {
				v.invalid(dp, e.DataStream, "data stream", fmt.Errorf("data_stream %s: %w", v.q(dp, e.DataStream), err))
			}
		}
		if e.OpType == "index" {
			v.errorf(p+".op_type", "data streams accept only create, not index")
		}
		if e.TimeKey != "" && e.TimeKey != "@timestamp" {
			v.errorf(p+".time_key", "a data stream needs @timestamp, got %s", v.q(p+".time_key", e.TimeKey))
		}
		if e.TimeFormat == "epoch_seconds" || e.TimeFormat == "epoch_nanos" {
			v.errorf(p+".time_format", "a data stream's @timestamp takes rfc3339nano or epoch_millis, got %s", v.q(p+".time_format", e.TimeFormat))
		}
	}
}

func (e *ElasticsearchOutput) checkHeaders(v *checker, p string) {
	names := map[string]string{}
	for i, h := range e.Headers {
		hp := fmt.Sprintf("%s.headers[%d]", p, i)
		if !validHeaderName(h.Name) {
			v.errorf(hp+".name", "invalid header name %s", v.q(hp+".name", h.Name))
			continue
		}
		c := textproto.CanonicalMIMEHeaderKey(h.Name)
		if prev, dup := names[c]; dup {
			v.errorf(hp+".name", "duplicate header %s, already set by %s", v.q(hp+".name", h.Name), v.where(prev))
			continue
		}
		names[c] = hp + ".name"
		switch {
		case c == "Content-Type" || c == "Content-Encoding" || c == "Content-Length" || c == "Host" ||
			c == "Transfer-Encoding" || c == "Connection":
			v.errorf(hp+".name", "header %s is set by the output", v.q(hp+".name", h.Name))
		case c == "Authorization" && (e.Username != "" || e.APIKey != "" || e.AWS != nil):
			v.errorf(hp+".name", "header Authorization conflicts with the configured authentication")
		case strings.HasPrefix(c, "X-Amz-") && e.AWS != nil:
			v.errorf(hp+".name", "header %s is set by aws signing", v.q(hp+".name", h.Name))
		}
		if strings.ContainsAny(string(h.Value), "\r\n\x00") {
			v.errorf(hp+".value", "must not contain line breaks or NUL")
		}
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// ParseElasticsearchHost parses one hosts entry: an absolute http:// or
// https:// URL with a host, an optional path prefix and nothing else (no
// credentials, query or fragment).
func ParseElasticsearchHost(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("want an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("no host name")
	case u.User != nil:
		return nil, fmt.Errorf("credentials in the URL: use username and password (or api_key)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("no query or fragment allowed")
	case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/_bulk"):
		return nil, fmt.Errorf("give the base URL: /_bulk is appended")
	}
	if p := u.Port(); p != "" {
		if n, err := parsePort(p); err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q", p)
		}
	}
	return u, nil
}

// IndexPartKind is what one part of an index template renders.
type IndexPartKind uint8

// Index template part kinds.
const (
	IndexLiteral IndexPartKind = iota // literal text
	IndexYear                         // %Y: four-digit year (UTC)
	IndexMonth                        // %m: 01..12
	IndexDay                          // %d: 01..31
	IndexHour                         // %H: 00..23
	IndexTag                          // {tag}
	IndexField                        // {field:KEY}; Text is KEY
)

// IndexPart is one part of a parsed index or data stream template.
type IndexPart struct {
	Kind IndexPartKind
	Text string // the literal, or the field's KEY
}

// ParseIndexTemplate splits an index or data stream template into its
// parts: literal text, %Y %m %d %H (%% is a literal '%'), {tag} and
// {field:KEY}. Adjacent literals are merged.
func ParseIndexTemplate(s string) ([]IndexPart, error) {
	if s == "" {
		return nil, fmt.Errorf("empty")
	}
	var parts []IndexPart
	lit := func(t string) {
		if n := len(parts); n > 0 && parts[n-1].Kind == IndexLiteral {
			parts[n-1].Text += t
			return
		}
		parts = append(parts, IndexPart{Kind: IndexLiteral, Text: t})
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+1 == len(s) {
				return nil, fmt.Errorf("'%%' at the end (want %%Y, %%m, %%d, %%H or %%%%)")
			}
			i++
			switch s[i] {
			case 'Y':
				parts = append(parts, IndexPart{Kind: IndexYear})
			case 'm':
				parts = append(parts, IndexPart{Kind: IndexMonth})
			case 'd':
				parts = append(parts, IndexPart{Kind: IndexDay})
			case 'H':
				parts = append(parts, IndexPart{Kind: IndexHour})
			case '%':
				lit("%")
			default:
				return nil, fmt.Errorf("unknown time pattern %%%c (want %%Y, %%m, %%d, %%H or %%%%)", s[i])
			}
		case '{':
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return nil, fmt.Errorf("unclosed '{'")
			}
			ph := s[i+1 : i+j]
			i += j
			switch k, isField := strings.CutPrefix(ph, "field:"); {
			case ph == "tag":
				parts = append(parts, IndexPart{Kind: IndexTag})
			case isField && k != "":
				parts = append(parts, IndexPart{Kind: IndexField, Text: k})
			default:
				return nil, fmt.Errorf("unknown placeholder {%s} (want {tag} or {field:KEY})", ph)
			}
		case '}':
			return nil, fmt.Errorf("unmatched '}'")
		default:
			j := i
			for j < len(s) && s[j] != '%' && s[j] != '{' && s[j] != '}' {
				j++
			}
			lit(s[i:j])
			i = j - 1
		}
	}
	return parts, nil
}

// IndexForbidden are the bytes an index name cannot hold; placeholder
// values have them replaced by '_'.
const IndexForbidden = ` \/*?"<>|,#:`

func hasTimePattern(s string) bool {
	parts, err := ParseIndexTemplate(s)
	if err != nil {
		return strings.Contains(s, "%")
	}
	for _, p := range parts {
		if p.Kind >= IndexYear && p.Kind <= IndexHour {
			return true
		}
	}
	return false
}

// checkIndexName checks a template's syntax and the literal parts against
// the index naming rules: lowercase, none of IndexForbidden, not starting
// with '-', '_' or '+', not "." or "..", at most 255 bytes of literal text.
func checkIndexName(s string, timeOK bool) error {
	parts, err := ParseIndexTemplate(s)
	if err != nil {
		return err
	}
	n := 0
	for i, p := range parts {
		if p.Kind != IndexLiteral {
			continue
		}
		n += len(p.Text)
		if p.Text != strings.ToLower(p.Text) {
			return fmt.Errorf("must be lowercase")
		}
		if k := strings.IndexAny(p.Text, IndexForbidden); k >= 0 {
			return fmt.Errorf("must not contain %q", p.Text[k])
		}
		if i == 0 && strings.IndexByte("-_+", p.Text[0]) >= 0 {
			return fmt.Errorf("must not start with %q", p.Text[0])
		}
	}
	if !timeOK && hasTimePattern(s) {
		return fmt.Errorf("no time pattern allowed")
	}
	switch {
	case s == "." || s == "..":
		return fmt.Errorf("not a valid name")
	case n > 255:
		return fmt.Errorf("longer than 255 bytes")
	}
	return nil
}

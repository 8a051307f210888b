// Package vlogs runs a real VictoriaLogs (v1.52.1) as a child process: the
// Elasticsearch-compatible `_bulk` peer for happy-path, gzip and round-trip
// tests of the ES output, with LogsQL read-back of what was stored.
//
// # Invariants
//
//   - Start binds 127.0.0.1 only, on a free port, with a fresh t.TempDir()
//     storage path, and returns only once GET /health answers 200 (bounded
//     by readyTimeout). The process is stopped in t.Cleanup: SIGTERM, then
//     SIGKILL after stopTimeout, and it is always reaped.
//   - The binary is SLUICE_VICTORIALOGS, else `victoria-logs` on PATH, else
//     $HOME/go/bin/victoria-logs. If none exists the test is skipped, or
//     fails when SLUICE_REQUIRE_PEERS=1 (CI).
//   - Query, Count and WaitCount call /internal/force_flush first, so every
//     row whose _bulk request was answered is visible to them.
//   - The server runs with -retentionPeriod=100y: VictoriaLogs silently
//     drops (while still answering 201) rows older than the retention
//     (7d by default), which would lose fixtures with fixed old timestamps.
//
// # VictoriaLogs facts (verified on v1.52.1)
//
//   - The ES API lives under /insert/elasticsearch: an ES output whose host
//     is ESURL() and which appends "/_bulk" works. `GET ESURL()+"/"` answers
//     {"version":{"number":"8.9.0"}} with X-Elastic-Product: Elasticsearch.
//     `/{index}/_bulk` is not supported (400 "unsupported path"): the index
//     must be in the action line (VictoriaLogs ignores it anyway).
//   - Field mapping comes from the query args _msg_field, _time_field and
//     _stream_fields, OR from the headers VL-Msg-Field, VL-Time-Field and
//     VL-Stream-Fields (both verified). A query arg wins over the header.
//     _msg_field may list several fields, comma-separated: the first
//     non-empty one becomes _msg and is removed from the row.
//   - Defaults without them: the ES time field is NOT @timestamp: _time is
//     the ingestion time and @timestamp is kept as a plain string field;
//     the message field is _msg, so a document without it (or without any
//     of the configured message fields) is stored with _msg = "missing _msg
//     field; see https://docs.victoriametrics.com/victorialogs/keyconcepts/#message-field"
//     (the -defaultMsgValue flag); the row is not rejected.
//   - With _time_field=@timestamp the field is consumed into _time (RFC
//     3339 with any zone, kept to the nanosecond; also Unix seconds,
//     milliseconds or fractional numbers). A value that cannot be parsed
//     fails the WHOLE request with HTTP 400 (text/plain), yet the rows
//     before it in the same request were already ingested.
//   - Nested objects are flattened with dots ("kubernetes.pod"); every value
//     reads back as a string ("n":1 becomes "n":"1").
//   - Every item answers {"create":{"status":201}}, for index actions too.
//     A delete or update action fails the whole request with 400 (rows
//     before it are kept). There are never per-item errors or 429s.
//   - Content-Encoding: gzip works. A body without its final newline is
//     accepted (ES answers 400), and ES query args such as refresh or
//     filter_path are ignored (the answer is never filtered).
//   - GOTCHA: a body sent with Content-Type application/x-www-form-urlencoded
//     (curl -d's default) is consumed as a form and answered 200 with
//     "items":[]: nothing is stored. application/x-ndjson, application/json,
//     application/vnd.elasticsearch+x-ndjson;compatible-with=8 and no
//     Content-Type at all work.
//   - Visibility: rows become searchable only after an in-memory flush,
//     ~1 s after ingestion here; GET /internal/force_flush makes them
//     visible at once.
package vlogs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables.
const (
	EnvBinary       = "SLUICE_VICTORIALOGS"  // path of the victoria-logs binary
	EnvRequirePeers = "SLUICE_REQUIRE_PEERS" // "1": a missing binary fails the test
)

// InstallCommand installs the binary this package expects.
const InstallCommand = "go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1"

// Header names VictoriaLogs reads the field mapping from.
const (
	HeaderMsgField     = "VL-Msg-Field"
	HeaderTimeField    = "VL-Time-Field"
	HeaderStreamFields = "VL-Stream-Fields"
)

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	httpTimeout  = 30 * time.Second
)

// Fields says how VictoriaLogs maps an ES document onto its row.
type Fields struct {
	Msg    []string // _msg_field: the first non-empty one becomes _msg
	Time   string   // _time_field: parsed into _time
	Stream []string // _stream_fields: the fields that form _stream
}

// DefaultFields is what the agent's ES records look like: "message" (or
// "log", the Docker/CRI raw line) is the message, "@timestamp" the time,
// and no stream fields.
func DefaultFields() Fields {
	return Fields{Msg: []string{"message", "log"}, Time: "@timestamp"}
}

// Query returns the mapping as _bulk query args.
func (f Fields) Query() url.Values {
	v := url.Values{}
	if len(f.Msg) > 0 {
		v.Set("_msg_field", strings.Join(f.Msg, ","))
	}
	if f.Time != "" {
		v.Set("_time_field", f.Time)
	}
	if len(f.Stream) > 0 {
		v.Set("_stream_fields", strings.Join(f.Stream, ","))
	}
	return v
}

// Header returns the mapping as VL-* request headers, for ES outputs that
// build their own path and cannot add query args.
func (f Fields) Header() http.Header {
	h := http.Header{}
	if len(f.Msg) > 0 {
		h.Set(HeaderMsgField, strings.Join(f.Msg, ","))
	}
	if f.Time != "" {
		h.Set(HeaderTimeField, f.Time)
	}
	if len(f.Stream) > 0 {
		h.Set(HeaderStreamFields, strings.Join(f.Stream, ","))
	}
	return h
}

// Option configures Start.
type Option func(*config)

type config struct {
	fields Fields
	flags  []string
}

// WithFields sets the mapping BulkURL and Header carry (DefaultFields
// otherwise).
func WithFields(f Fields) Option { return func(c *config) { c.fields = f } }

// WithFlags adds command-line flags (e.g. "-defaultMsgValue=none").
func WithFlags(flags ...string) Option {
	return func(c *config) { c.flags = append(c.flags, flags...) }
}

// Server is one running VictoriaLogs.
type Server struct {
	url     string
	fields  Fields
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	client  *http.Client
}

// Binary returns the path of the victoria-logs binary, or an error naming
// where it looked.
func Binary() (string, error) {
	return findBinary(EnvBinary, "victoria-logs")
}

func findBinary(env, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", fmt.Errorf("%s=%s: not a file", env, p)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $%s, PATH or $HOME/go/bin", name, env)
}

// Start runs VictoriaLogs for the duration of t.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	c := config{fields: DefaultFields()}
	for _, o := range opts {
		o(&c)
	}
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("vlogs: %s=1 but %v (install: %s)", EnvRequirePeers, err, InstallCommand)
		}
		t.Skipf("vlogs: %v (install: %s; %s=1 makes this a failure)", err, InstallCommand, EnvRequirePeers)
	}
	dir := t.TempDir()
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		s, err := start(bin, dir, c)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("vlogs: %v", err)
				}
				if t.Failed() {
					t.Logf("vlogs: log tail:\n%s", tail(s.logPath, 4096))
				}
			})
			return s
		}
		lastErr = err
	}
	t.Fatalf("vlogs: %v", lastErr)
	return nil
}

func start(bin, dir string, c config) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	data, err := os.MkdirTemp(dir, "data-")
	if err != nil {
		return nil, fmt.Errorf("storage dir: %w", err)
	}
	logPath := filepath.Join(dir, "victoria-logs.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	args := append([]string{
		"-storageDataPath=" + data,
		"-httpListenAddr=" + addr,
		"-retentionPeriod=100y",
		"-loggerLevel=INFO",
	}, c.flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{
		url:     "http://" + addr,
		fields:  c.fields,
		logPath: logPath,
		cmd:     cmd,
		done:    make(chan struct{}),
		client:  &http.Client{Timeout: httpTimeout},
	}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(s.done)
	}()
	if err := s.waitReady(); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(logPath, 2048))
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			return fmt.Errorf("victoria-logs exited before it was ready: %v", s.cmd.ProcessState)
		default:
		}
		resp, err := c.Get(s.url + "/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("victoria-logs not ready at %s within %v (last: %v)", s.url, readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after a few seconds. It
// waits until the process is reaped and may be called more than once.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-s.done
	return fmt.Errorf("victoria-logs pid %d ignored SIGTERM for %v (killed)", pid, stopTimeout)
}

// URL is the base URL, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// ESURL is the base an ES client is configured with: it appends "/_bulk"
// (and GETs "/" for the product check).
func (s *Server) ESURL() string { return s.url + "/insert/elasticsearch" }

// BulkURL is the full _bulk URL with the server's Fields as query args,
// ready for a POST.
func (s *Server) BulkURL() string {
	return s.ESURL() + "/_bulk?" + s.fields.Query().Encode()
}

// Fields is the mapping BulkURL and Header carry.
func (s *Server) Fields() Fields { return s.fields }

// Header is the server's Fields as VL-* headers: what an ES output that
// appends its own path must send to get _msg and _time right.
func (s *Server) Header() http.Header { return s.fields.Header() }

// LogPath is the file holding the process's stdout and stderr.
func (s *Server) LogPath() string { return s.logPath }

// Flush makes every ingested row visible to queries
// (GET /internal/force_flush).
func (s *Server) Flush(t testing.TB) {
	t.Helper()
	if err := s.flush(); err != nil {
		t.Fatalf("vlogs: %v", err)
	}
}

func (s *Server) flush() error {
	resp, err := s.client.Get(s.url + "/internal/force_flush")
	if err != nil {
		return fmt.Errorf("force flush: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("force flush: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// Query runs a LogsQL query over all time (POST /select/logsql/query) and
// returns its rows. Values are as VictoriaLogs returns them: strings.
func (s *Server) Query(t testing.TB, logsql string) []map[string]any {
	t.Helper()
	rows, err := s.query(logsql)
	if err != nil {
		t.Fatalf("vlogs: %v", err)
	}
	return rows
}

func (s *Server) query(logsql string) ([]map[string]any, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	resp, err := s.client.PostForm(s.url+"/select/logsql/query", url.Values{"query": {logsql}})
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", logsql, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("query %q: %s: %s", logsql, resp.Status, bytes.TrimSpace(b))
	}
	var rows []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(line, &row); err != nil {
			return nil, fmt.Errorf("query %q: row %d: %w", logsql, len(rows)+1, err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("query %q: read: %w", logsql, err)
	}
	return rows, nil
}

// Count returns how many rows match logsql (a filter, optionally with
// pipes), over all time.
func (s *Server) Count(t testing.TB, logsql string) int {
	t.Helper()
	n, err := s.count(logsql)
	if err != nil {
		t.Fatalf("vlogs: %v", err)
	}
	return n
}

func (s *Server) count(logsql string) (int, error) {
	rows, err := s.query(logsql + " | count() sluice_n")
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("count %q: %d result rows", logsql, len(rows))
	}
	v, _ := rows[0]["sluice_n"].(string)
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("count %q: %v", logsql, rows[0])
	}
	return n, nil
}

// WaitCount waits until at least n rows match logsql and returns the count
// it saw; it fails t after timeout with the last count.
func (s *Server) WaitCount(t testing.TB, logsql string, n int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := s.count(logsql)
		if err != nil {
			t.Fatalf("vlogs: %v", err)
		}
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("vlogs: %d rows match %q after %v, want %d", got, logsql, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail returns up to the last n bytes of a file, for failure messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	if off := fi.Size() - n; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err.Error()
		}
	}
	b, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(b)
}

// Launch starts VictoriaLogs outside a test (the benchmark command), with
// its storage under dir; the caller stops it.
func Launch(dir string, opts ...Option) (*Server, error) {
	c := config{fields: DefaultFields()}
	for _, o := range opts {
		o(&c)
	}
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("%w (install: %s)", err, InstallCommand)
	}
	var lastErr error
	for range 3 {
		s, err := start(bin, dir, c)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// CountErr is Count returning its error.
func (s *Server) CountErr(logsql string) (int, error) { return s.count(logsql) }

// Package awsfake is an in-process stand-in for the three AWS services the
// streaming outputs write to: CloudWatch Logs (PutLogEvents and the group
// and stream calls), Kinesis Data Streams (PutRecords) and Data Firehose
// (PutRecordBatch). One httptest server answers all three, routing on
// X-Amz-Target, and speaks the awsJson1.1 protocol exactly as the
// aws-sdk-go-v2 clients send it: POST /, Content-Type
// application/x-amz-json-1.1, X-Amz-Target Logs_20140328.PutLogEvents,
// Kinesis_20131202.PutRecords or Firehose_20150804.PutRecordBatch, JSON
// bodies with base64 blobs for Kinesis and Firehose data. Errors are JSON
// {"__type": CODE, "message": ...} with the service's HTTP status and an
// X-Amzn-ErrorType header, which the SDK maps to its typed errors
// (*types.ThrottlingException, *types.InvalidParameterException, ...).
//
// # What it enforces
//
//   - SigV4: every request's signature is recomputed with the SDK's own
//     signer (aws/signer/v4) over the received method, path, signed
//     headers and body, with the configured secret; a missing signature,
//     an unknown access key, a wrong secret, a credential scope of another
//     service or region and a signing time more than 5 minutes off are
//     answered as AWS answers them (MissingAuthenticationTokenException,
//     UnrecognizedClientException, InvalidSignatureException; HTTP 400).
//   - The documented limits (see Limits), each violation answered with the
//     error and message shape the service documents: for CloudWatch Logs
//     InvalidParameterException ("Upload too large: N bytes exceeds limit
//     of 1048576", "Log event too large: ...", "Log events in a single
//     PutLogEvents request must be in chronological order.", "The batch
//     of log events in a single PutLogEvents request cannot span more
//     than 24 hours.") and model constraint messages ("1 validation error
//     detected: Value ... at 'logEvents' failed to satisfy constraint:
//     Member must have length less than or equal to 10000"); for Kinesis
//     ValidationException for model constraints (500 records, 1 MiB of
//     data, 1 to 256 characters of partition key) and
//     InvalidArgumentException for the sizes that count keys ("Records
//     size exceeds 5 MB limit"); for Firehose InvalidArgumentException
//     (its model has no ValidationException). Nothing of a refused request
//     is stored.
//   - CloudWatch Logs semantics: the group and the stream must exist
//     (ResourceNotFoundException "The specified log group does not
//     exist." / "... log stream ..."); events older than 14 days
//     (tooOldLogEventEndIndex, exclusive), before the group's retention
//     (expiredLogEventEndIndex, exclusive) or more than 2 hours ahead
//     (tooNewLogEventStartIndex, inclusive) are rejected while the others
//     are stored; the 24-hour span counts the valid events only; the
//     sequence token is ignored (never InvalidSequenceTokenException).
//   - Kinesis: records go to shards by the MD5 of their partition key,
//     with increasing sequence numbers per shard; a response lists every
//     record in request order. Firehose: one RecordId per record.
//
// # Fault injection
//
// SetMode(Down) answers every request with the service's unavailability
// error, SetMode(Hang) holds every request until the client gives up;
// FailNext answers the next N requests of an operation with a Fault;
// Script hooks decide per call (Call), per Kinesis or Firehose record
// (Record: a partial failure with an ErrorCode) and per log event
// (LogEvent: too old, too new, expired). Stored data is read back with
// LogEvents, Streams, KinesisRecords and FirehoseRecords.
package awsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Defaults of a new Server.
const (
	AccessKeyID     = "AKIDSLUICEFAKE000001"
	SecretAccessKey = "fake/secret/key/of/the/awsfake/server"
	Region          = "us-east-1"
	Account         = "123456789012"
	contentType     = "application/x-amz-json-1.1"
	maxBody         = 64 << 20
)

// Limits are the service limits the fake enforces; Start sets the
// documented ones.
type Limits struct {
	// CloudWatch Logs PutLogEvents.
	LogMaxEvents     int           // 10000
	LogMaxBatchBytes int           // 1048576, messages + 26 per event
	LogMaxEventBytes int           // 262144, message + 26
	LogMaxSpan       time.Duration // 24h, among the valid events
	LogMaxAge        time.Duration // 14 days: older is tooOld
	LogMaxAhead      time.Duration // 2h: later is tooNew
	// Kinesis PutRecords.
	KinesisMaxRecords      int // 500
	KinesisMaxRecordBytes  int // 1 MiB, data + partition key
	KinesisMaxRequestBytes int // 5 MiB, data + partition keys
	// Firehose PutRecordBatch.
	FirehoseMaxRecords      int // 500
	FirehoseMaxRecordBytes  int // 1,024,000 before base64
	FirehoseMaxRequestBytes int // 4 MiB
}

// DefaultLimits are the documented limits.
func DefaultLimits() Limits {
	return Limits{
		LogMaxEvents: 10000, LogMaxBatchBytes: 1048576, LogMaxEventBytes: 262144,
		LogMaxSpan: 24 * time.Hour, LogMaxAge: 14 * 24 * time.Hour, LogMaxAhead: 2 * time.Hour,
		KinesisMaxRecords: 500, KinesisMaxRecordBytes: 1 << 20, KinesisMaxRequestBytes: 5 << 20,
		FirehoseMaxRecords: 500, FirehoseMaxRecordBytes: 1000 << 10, FirehoseMaxRequestBytes: 4 << 20,
	}
}

// Mode is the state of the whole server.
type Mode int

const (
	Up   Mode = iota // answers normally
	Down             // answers every request with the service's unavailability error
	Hang             // holds every request until the client gives up
)

// Fault is an error answer.
type Fault struct {
	Status  int    // HTTP status; 400 when 0
	Type    string // __type, e.g. ThrottlingException
	Message string
}

// Common faults.
var (
	Throttling                    = Fault{Status: 400, Type: "ThrottlingException", Message: "Rate exceeded"}
	ServiceUnavailable            = Fault{Status: 503, Type: "ServiceUnavailableException", Message: "The server failed to fulfill the request. Please try again."}
	ProvisionedThroughputExceeded = Fault{Status: 400, Type: "ProvisionedThroughputExceededException", Message: "Rate exceeded for stream under account " + Account + "."}
	InternalFailure               = Fault{Status: 500, Type: "InternalFailure", Message: "Internal Service Failure"}
	KMSThrottling                 = Fault{Status: 400, Type: "KMSThrottlingException", Message: "Rate exceeded for KMS key"}
)

// LogEvent is one CloudWatch Logs event.
type LogEvent struct {
	Timestamp int64 // ms since the epoch
	Message   string
}

// Record is one Kinesis or Firehose record; the stored ones have
// ShardID and SequenceNumber (Kinesis) or RecordID (Firehose).
type Record struct {
	Data           []byte
	PartitionKey   string // Kinesis
	ShardID        string
	SequenceNumber string
	RecordID       string
}

// Verdict is what CloudWatch Logs does with one log event.
type Verdict uint8

const (
	Accept  Verdict = iota // stored (unless the service's own rules reject it)
	TooOld                 // tooOldLogEventEndIndex
	TooNew                 // tooNewLogEventStartIndex
	Expired                // expiredLogEventEndIndex
)

// Call is one authenticated, well-formed request that passed the limits,
// as the fake decoded it. Script.Call must not keep it.
type Call struct {
	Op      string // PutLogEvents, PutRecords, PutRecordBatch, CreateLogGroup, ...
	Group   string // PutLogEvents, CreateLogGroup, CreateLogStream, PutRetentionPolicy
	Stream  string // the log stream, Kinesis stream or Firehose delivery stream
	Events  []LogEvent
	Records []Record
}

// Script is the per-request behaviour tests set; nil hooks do nothing.
// Hooks run on the handler's goroutine, without the server's lock.
type Script struct {
	// Call may answer a well-formed call with a Fault (nothing stored).
	Call func(c *Call) *Fault
	// Record may fail the i-th record of a PutRecords or PutRecordBatch
	// call: a non-empty code makes it a failed entry of a 200 answer.
	Record func(op, stream string, i int, r *Record) (code, message string)
	// LogEvent may reject one event of a PutLogEvents call. The answer can
	// only say "the first k", "from k on": a TooOld or Expired event
	// rejects every event before it too, a TooNew one every event after.
	LogEvent func(group, stream string, e LogEvent) Verdict
}

// Key is one accepted credential.
type Key struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	closed chan struct{}

	mu       sync.Mutex
	region   string
	keys     map[string]Key
	mode     Mode
	failNext []failRule
	script   Script
	limits   Limits
	now      func() time.Time
	requests map[string]int // op -> requests received (any answer)
	answered map[string]int // error code -> answers
	authFail int
	discard  bool // store nothing (benchmarks)

	groups   map[string]*logGroup
	kinesis  map[string]*kinesisStream
	firehose map[string]*deliveryStream
	recordID atomic.Uint64
}

type failRule struct {
	op string // "" for any
	n  int
	f  Fault
}

// Start starts a server with the default credentials and region and the
// documented limits; it stops at the test's end.
func Start(t testing.TB) *Server {
	s := &Server{
		closed:   make(chan struct{}),
		region:   Region,
		keys:     map[string]Key{AccessKeyID: {AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}},
		limits:   DefaultLimits(),
		now:      time.Now,
		requests: map[string]int{},
		answered: map[string]int{},
		groups:   map[string]*logGroup{},
		kinesis:  map[string]*kinesisStream{},
		firehose: map[string]*deliveryStream{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.closed)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// URL is the endpoint to give the SDK (BaseEndpoint).
func (s *Server) URL() string { return s.srv.URL }

// SetRegion sets the region credential scopes must name.
func (s *Server) SetRegion(r string) { s.mu.Lock(); s.region = r; s.mu.Unlock() }

// SetKeys replaces the accepted credentials.
func (s *Server) SetKeys(keys ...Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = map[string]Key{}
	for _, k := range keys {
		s.keys[k.AccessKeyID] = k
	}
}

// SetMode sets the server's mode.
func (s *Server) SetMode(m Mode) { s.mu.Lock(); s.mode = m; s.mu.Unlock() }

// SetScript replaces the hooks.
func (s *Server) SetScript(sc Script) { s.mu.Lock(); s.script = sc; s.mu.Unlock() }

// SetLimits changes the enforced limits.
func (s *Server) SetLimits(edit func(*Limits)) { s.mu.Lock(); edit(&s.limits); s.mu.Unlock() }

// SetDiscard makes the server store nothing it accepts (benchmarks):
// answers are unchanged.
func (s *Server) SetDiscard(d bool) { s.mu.Lock(); s.discard = d; s.mu.Unlock() }

// SetClock replaces the server's clock (event age checks, signing time).
func (s *Server) SetClock(now func() time.Time) { s.mu.Lock(); s.now = now; s.mu.Unlock() }

// FailNext answers the next n requests of op (e.g. "PutLogEvents"; ""
// for any) with f, after authentication and before decoding.
func (s *Server) FailNext(op string, n int, f Fault) {
	s.mu.Lock()
	s.failNext = append(s.failNext, failRule{op: op, n: n, f: f})
	s.mu.Unlock()
}

// Requests returns how many requests of op were received, whatever the
// answer ("" for all).
func (s *Server) Requests(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == "" {
		n := 0
		for _, v := range s.requests {
			n += v
		}
		return n
	}
	return s.requests[op]
}

// Answered returns how many requests were answered with the error code
// (e.g. InvalidParameterException), injected faults included.
func (s *Server) Answered(code string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.answered[code] }

// AuthFailures returns how many requests were refused for their
// signature or credentials.
func (s *Server) AuthFailures() int { s.mu.Lock(); defer s.mu.Unlock(); return s.authFail }

var services = map[string]string{ // X-Amz-Target prefix -> signing name
	"Logs_20140328":     "logs",
	"Kinesis_20131202":  "kinesis",
	"Firehose_20150804": "firehose",
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	prefix, op, _ := strings.Cut(target, ".")
	service, known := services[prefix]
	s.mu.Lock()
	s.requests[op]++
	s.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	switch {
	case err != nil:
		return // the client went away
	case r.Method != http.MethodPost || r.URL.Path != "/":
		s.writeFault(w, Fault{Status: 404, Type: "UnknownOperationException", Message: "Unknown operation"})
		return
	case !known:
		s.writeFault(w, Fault{Type: "UnknownOperationException", Message: fmt.Sprintf("Unknown target %q", target)})
		return
	case len(body) > maxBody:
		s.writeFault(w, Fault{Status: 413, Type: "SerializationException", Message: "Request entity too large"})
		return
	}
	if f := s.verify(r, body, service); f != nil {
		s.mu.Lock()
		s.authFail++
		s.mu.Unlock()
		s.writeFault(w, *f)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != contentType {
		s.writeFault(w, Fault{Type: "SerializationException", Message: fmt.Sprintf("Unexpected Content-Type %q (want %s)", ct, contentType)})
		return
	}
	s.mu.Lock()
	mode := s.mode
	var fault *Fault
	for i := range s.failNext {
		if fr := &s.failNext[i]; fr.n > 0 && (fr.op == "" || fr.op == op) {
			fr.n--
			f := fr.f
			fault = &f
			break
		}
	}
	s.mu.Unlock()
	switch {
	case mode == Hang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	case mode == Down:
		s.writeFault(w, unavailable(service))
		return
	case fault != nil:
		s.writeFault(w, *fault)
		return
	}
	var out any
	var f *Fault
	switch service {
	case "logs":
		out, f = s.logs(op, body)
	case "kinesis":
		out, f = s.kinesisOp(op, body)
	case "firehose":
		out, f = s.firehoseOp(op, body)
	}
	if f != nil {
		s.writeFault(w, *f)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.writeFault(w, Fault{Status: 500, Type: "InternalFailure", Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// unavailable is what a service answers when it is down.
func unavailable(service string) Fault {
	if service == "kinesis" {
		return InternalFailure
	}
	return ServiceUnavailable
}

var reqSeq atomic.Uint64

func requestID() string {
	n := reqSeq.Add(1)
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", n)
}

func (s *Server) writeFault(w http.ResponseWriter, f Fault) {
	if f.Status == 0 {
		f.Status = 400
	}
	s.mu.Lock()
	s.answered[f.Type]++
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]string{"__type": f.Type, "message": f.Message})
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.Header().Set("X-Amzn-ErrorType", f.Type)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(f.Status)
	w.Write(b)
}

// decode decodes a request body; a body that is not the JSON of the shape
// is a SerializationException, as the services answer it.
func decode(body []byte, v any) *Fault {
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return &Fault{Type: "SerializationException", Message: err.Error()}
	}
	return nil
}

// constraint is the message of a model constraint violation.
func constraint(value, field, rule string) string {
	if len(value) > 64 {
		value = value[:64] + "..."
	}
	return fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, field, rule)
}

// script returns the current hooks, limits and clock.
func (s *Server) snapshot() (Script, Limits, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.script, s.limits, s.now()
}

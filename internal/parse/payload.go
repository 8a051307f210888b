package parse

import (
	"bytes"
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/internal/record"
)

// FieldSet is what an input splices into a record after parsing a
// payload: a record.Fields or a Parser.
type FieldSet interface {
	Len() int
	Pairs() []byte
	Value(key []byte) ([]byte, bool)
}

// Payload is an input's payload handling, the same for every input: the
// configured parser (or parse_json, the json parser without a failure
// marker), and else the {field:KEY} lookups of its tag template. It
// belongs to the input's reader goroutine (one per connection for the
// forward input).
type Payload struct {
	p      Parser // nil: no parser
	kind   string // the parser's type, the marker's value
	mark   bool   // a failure adds parse_error (not for parse_json)
	fields record.Fields
	failed *metrics.Counter
}

// KeyParseError is the field a payload the configured parser could not
// parse gains; its value is the parser's type.
const KeyParseError = "parse_error"

// NewPayload returns the payload handling of input id: c is its parser
// section (nil: none); parseJSON stands for the json parser with no
// failure marker. Failures are counted in
// sluice_input_payload_parse_failures_total{input,parser}.
func NewPayload(id string, c *Config, parseJSON bool, set *metrics.Set) (*Payload, error) {
	pl := &Payload{}
	switch {
	case c != nil:
		p, err := New(*c)
		if err != nil {
			return nil, fmt.Errorf("parser: %w", err)
		}
		pl.p, pl.kind, pl.mark = p, c.Type, true
	case parseJSON:
		p, err := New(Config{Type: "json"})
		if err != nil {
			return nil, err
		}
		pl.p, pl.kind = p, "json"
	}
	if pl.p != nil && set != nil {
		pl.failed = set.GetOrCreateCounter(fmt.Sprintf(`sluice_input_payload_parse_failures_total{input=%q,parser=%q}`, id, pl.kind))
	}
	return pl, nil
}

// Stores reports whether parsed fields are stored in the record (a parser
// is configured), as opposed to only looked up for the tag.
func (pl *Payload) Stores() bool { return pl.p != nil }

// Result is the outcome of Payload.Parse.
type Result struct {
	// Fields holds the payload's fields: to store when Stores, else only
	// for {field:KEY}; nil if none.
	Fields FieldSet
	// Time is the event time the parser took from the line, if HasTime.
	Time    int64
	HasTime bool
	// Failed: the configured parser rejected the payload; the record gets
	// parse_error: Kind.
	Failed bool
}

// Kind is the configured parser's type ("" if none).
func (pl *Payload) Kind() string { return pl.kind }

// Parse handles one payload (a trailing "\n" or "\r\n" is not part of
// it). keys are the tag's {field:KEY} keys, looked up when no parser is
// configured; skip the record's own keys.
func (pl *Payload) Parse(msg []byte, keys [][]byte, skip *record.Keys) Result {
	if pl.p == nil {
		if len(keys) > 0 && pl.fields.Find(msg, keys, skip) {
			return Result{Fields: &pl.fields}
		}
		return Result{}
	}
	line := bytes.TrimSuffix(msg, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if !pl.p.Parse(line, skip) {
		if pl.failed != nil {
			pl.failed.Inc()
		}
		return Result{Failed: pl.mark}
	}
	t, ok := pl.p.Time()
	return Result{Fields: pl.p, Time: t, HasTime: ok}
}

package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluice-agent/sluice/internal/multiline"
	"github.com/sluice-agent/sluice/internal/parse"
)

// Parser is the parser section of an input: how its log payload (the log
// field) is turned into record fields (package internal/parse). A line the
// parser cannot parse keeps its raw field, gains parse_error: <type>, and
// is counted; it is never dropped.
type Parser struct {
	// Type is json, logfmt (also Go's slog and logrus text), regex, nginx,
	// apache, syslog (RFC 5424 or 3164), syslog_rfc3164, syslog_rfc5424 or
	// klog.
	Type string `yaml:"type"`
	// Pattern is the regex parser's RE2 expression; its named groups
	// become fields.
	Pattern string `yaml:"pattern"`
	// Types converts fields of the regex and logfmt parsers: int, float,
	// bool, string or time:<layout>.
	Types []ParserType `yaml:"types"`
	// TimeKey names the field that holds the event time (the built-in
	// parsers have theirs).
	TimeKey string `yaml:"time_key"`
	// TimeLayout is the format of time_key: a Go time layout
	// (2006-01-02 15:04:05) or rfc3339, rfc3339nano, unix, unix_ms,
	// unix_us, unix_ns.
	TimeLayout string `yaml:"time_layout"`
	// TimeZone is the IANA zone (Europe/Berlin) of times written without
	// an offset. Default UTC.
	TimeZone string `yaml:"time_zone"`
	// KeepTimeKey keeps the time field in the record (by default a time
	// that converted is removed: the event time carries it).
	KeepTimeKey bool `yaml:"keep_time_key"`
}

// ParserType is one field conversion of a parser.
type ParserType struct {
	// Field is the field to convert.
	Field string `yaml:"field"`
	// Type is what it becomes: int, float, bool, string or time:<layout>.
	Type string `yaml:"type"`
}

// ParseConfig returns the internal/parse configuration p describes; nil
// for a nil p (no parser section).
func (p *Parser) ParseConfig() *parse.Config {
	if p == nil {
		return nil
	}
	c := &parse.Config{
		Type: p.Type, Pattern: p.Pattern, TimeKey: p.TimeKey, TimeLayout: p.TimeLayout,
		TimeZone: p.TimeZone, KeepTimeKey: p.KeepTimeKey,
	}
	if len(p.Types) > 0 {
		c.Types = make(map[string]string, len(p.Types))
		for _, t := range p.Types {
			c.Types[t.Field] = t.Type
		}
	}
	return c
}

// checkParser validates an input's parser section (nil: none) against
// parse_json, which is the json parser's older spelling.
func (v *checker) checkParser(p string, ps *Parser, parseJSON bool) {
	if ps == nil {
		return
	}
	pp := p + ".parser"
	if parseJSON {
		v.errorf(pp, "set either parse_json or parser (parse_json: true is parser: {type: json})")
	}
	seen := map[string]bool{}
	for i, t := range ps.Types {
		tp := fmt.Sprintf("%s.types[%d]", pp, i)
		if t.Field == "" {
			v.errorf(tp+".field", "must not be empty")
		} else if seen[t.Field] {
			v.errorf(tp+".field", "duplicate field %s", v.q(tp+".field", t.Field))
		}
		seen[t.Field] = true
	}
	if _, err := parse.New(*ps.ParseConfig()); err != nil {
		v.errorf(pp, "%v", err)
	}
}

// Multiline is the multiline section of a file input: consecutive lines of
// one stream that form one message (a stack trace) are joined into one
// event, inside the input and before its offsets are committed (package
// internal/multiline).
type Multiline struct {
	// Rules names built-in rules: java, go, python, ruby, javascript.
	Rules []string `yaml:"rules"`
	// Custom rules: a start regex and a continuation regex (RE2); without
	// continue, every line up to the next start belongs to the group.
	Custom []MultilineRule `yaml:"custom"`
	// FlushTimeout emits a group that saw no new line for this long.
	// Default 1s.
	FlushTimeout time.Duration `yaml:"flush_timeout"`
	// MaxBytes caps a joined group (it is emitted truncated, the rest
	// counted). Default 1 MiB, and at most the input's max_line_bytes.
	MaxBytes int `yaml:"max_bytes"`
	// MaxLines caps the lines of a group; 0: no cap but max_bytes.
	MaxLines int `yaml:"max_lines"`
}

// MultilineRule is a user multiline rule.
type MultilineRule struct {
	// Name of the rule, in metrics and logs.
	Name string `yaml:"name"`
	// Start is an RE2 regex matching the first line of a message.
	Start string `yaml:"start"`
	// Continue, if set, is an RE2 regex matching the lines that belong to
	// the message after its first; without it, every line up to the next
	// start does.
	Continue string `yaml:"continue"`
}

// JoinerConfig returns the internal/multiline configuration m describes.
func (m *Multiline) JoinerConfig() multiline.Config {
	c := multiline.Config{Rules: m.Rules, FlushTimeout: m.FlushTimeout, MaxBytes: m.MaxBytes, MaxLines: m.MaxLines}
	for _, r := range m.Custom {
		c.User = append(c.User, multiline.Rule{Name: r.Name, Start: r.Start, Continue: r.Continue})
	}
	return c
}

// checkMultiline validates a file input's multiline section (nil: none).
func (v *checker) checkMultiline(p string, m *Multiline, maxLine int) {
	if m == nil {
		return
	}
	mp := p + ".multiline"
	if len(m.Rules) == 0 && len(m.Custom) == 0 {
		v.errorf(mp, "needs rules (built-in: java, go, python, ruby, javascript) or custom rules")
		return
	}
	if m.FlushTimeout < 0 {
		v.errorf(mp+".flush_timeout", "must not be negative, got %s", m.FlushTimeout)
	}
	if m.MaxBytes < 0 || m.MaxLines < 0 {
		v.errorf(mp, "max_bytes and max_lines must not be negative")
	}
	if m.MaxBytes > maxLine && maxLine > 0 {
		v.errorf(mp+".max_bytes", "must not exceed the input's max_line_bytes (%d), got %d", maxLine, m.MaxBytes)
	}
	if _, err := multiline.New(m.JoinerConfig()); err != nil {
		// A bad regexp says where in the pattern.
		v.errorf(mp, "%s", strings.TrimPrefix(err.Error(), "multiline: "))
	}
}

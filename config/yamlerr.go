package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// YAML syntax errors. yaml.v3 reports an error at the line where the node
// or token being parsed starts (its "context": the flow mapping, the block
// mapping, the quoted string), not where the problem is, and counts that
// line from 0 for errors of its parser; only when the context starts on
// the first line does it report the problem's line instead. yamlError
// finds the lines it needs by parsing again: with a line before the file
// (the context is then never on the first line) and, for the parser's
// errors, from the context's line on (where it is then on the first line,
// so that the problem's line is reported). It shows the problem's line for
// the parser's errors (the context's too, for a flow collection that
// starts on an earlier line) and the token's for the scanner's, and adds a
// hint for the most common cause of a flow collection error: an unquoted
// ${VAR}, whose braces YAML reads as a nested flow mapping.

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of yaml.v3's parser, whose line
// numbers are 0-based (its scanner's are 1-based), and whether the parser
// reports them with a context (a node that starts earlier).
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": false,
	"did not find expected <stream-start>":   false,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         false,
	"found duplicate %YAML directive":        false,
	"found incompatible YAML document":       false,
	"found undefined tag handle":             true,
}

// flowProblems are the parser's messages about a flow collection, with
// what the collection is called in the message.
var flowProblems = map[string]string{
	"did not find expected ',' or '}'": "flow mapping { }",
	"did not find expected ',' or ']'": "flow sequence [ ]",
}

// yamlError turns a YAML syntax error in data into an *Error with the line
// of the problem.
func yamlError(file string, data []byte, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		e.File = file
		return e
	}
	line, msg := rawYAMLError(err)
	withContext, parser := yamlParserProblems[msg]
	switch {
	case !parser && line == 0 && strings.HasPrefix(msg, "unknown anchor '"):
		line = aliasLine(data, strings.TrimSuffix(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced"))
	case !parser:
		// A scanner error: the line of the token being scanned (the
		// opening quote of an unclosed string, say) is the one to show,
		// which yaml.v3 reports (1-based) unless the token is on the first
		// line, when it reports where scanning failed instead.
		if n, m, ok := reparse(append([]byte("\n"), data...)); ok && m == msg && n > 1 {
			line = n - 1
		}
	case !withContext:
		line++
	default:
		ctx, problem := problemLine(data, line, msg)
		line = problem
		if what, ok := flowProblems[msg]; ok {
			if problem != ctx {
				msg += fmt.Sprintf(" in the %s that starts at line %d", what, ctx)
			}
			if v := unquotedVar(data, ctx, problem); v != "" {
				msg += fmt.Sprintf(" (hint: quote %q inside { } or [ ])", v)
			}
		}
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

// rawYAMLError returns the line yaml.v3 printed (0 if none) and the problem.
func rawYAMLError(err error) (int, string) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// reparse returns the raw line and problem of parsing data, ok false if it
// parses or fails otherwise than with a yaml.v3 error.
func reparse(data []byte) (int, string, bool) {
	_, err := parseYAML(data)
	var e *Error
	if err == nil || errors.As(err, &e) {
		return 0, "", false
	}
	n, msg := rawYAMLError(err)
	return n, msg, true
}

// problemLine returns the 1-based lines of the context (the node being
// parsed) and of the problem of a parser error msg that yaml.v3 reported
// at raw line raw.
func problemLine(data []byte, raw int, msg string) (ctx, problem int) {
	// raw is the context's 0-based line, or the problem's when the context
	// is on the first line. With a line before the file the context is
	// never on the first line, so the raw line is always the context's
	// (0-based in the longer file, so 1-based in data).
	ctx = raw + 1
	if n, m, ok := reparse(append([]byte("\n"), data...)); ok && m == msg && n > 0 {
		ctx = n
	}
	// From the context's line on, the context is on the first line: the
	// raw line is the problem's, 0-based from there (none: that line).
	start := lineStart(data, ctx)
	if start < 0 {
		return ctx, ctx
	}
	if n, m, ok := reparse(data[start:]); ok && m == msg {
		return ctx, ctx + n
	}
	return ctx, ctx
}

// lineStart returns the offset of the 1-based line n in data, or -1.
func lineStart(data []byte, n int) int {
	off := 0
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data[off:], '\n')
		if j < 0 {
			return -1
		}
		off += j + 1
	}
	return off
}

// lineText returns the 1-based line n of data, without its newline.
func lineText(data []byte, n int) string {
	start := lineStart(data, n)
	if start < 0 {
		return ""
	}
	l := data[start:]
	if i := bytes.IndexByte(l, '\n'); i >= 0 {
		l = l[:i]
	}
	return string(l)
}

// unquotedVar returns the first ${...} outside quotes and comments on the
// lines from to to of data (the problem's line first), or "".
func unquotedVar(data []byte, from, to int) string {
	lines := []int{to}
	for n := from; n < to; n++ {
		lines = append(lines, n)
	}
	for _, n := range lines {
		if v := unquotedVarIn(lineText(data, n)); v != "" {
			return v
		}
	}
	return ""
}

// unquotedVarIn returns the first ${...} of one line outside '...', "..."
// and a # comment, or "".
func unquotedVarIn(l string) string {
	var quote byte
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return ""
		case c == '$' && strings.HasPrefix(l[i:], "${"):
			start := i
			if i > 0 && l[i-1] == '$' {
				start-- // $${: a literal ${, quoted the same way
			}
			if j := strings.IndexByte(l[i:], '}'); j > 0 {
				return l[start : i+j+1]
			}
			return l[start:]
		}
	}
	return ""
}

// aliasLine returns the 1-based line of the first alias *name in data, or 0.
func aliasLine(data []byte, name string) int {
	re, err := regexp.Compile(`(?m)(?:^|[\s\[{,:])\*` + regexp.QuoteMeta(name) + `(?:$|[\s\]},])`)
	if err != nil {
		return 0
	}
	loc := re.FindIndex(data)
	if loc == nil {
		return 0
	}
	return bytes.Count(data[:loc[0]+1], []byte("\n")) + 1
}

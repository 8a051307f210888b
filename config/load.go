package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem found in a config file.
type Error struct {
	File string // file name as given to Parse or Load; may be empty
	Line int    // 1-based line of the offending value; 0 if unknown
	Path string // field path such as outputs[1].buffer.max_bytes; may be empty
	Msg  string
}

// Error formats the problem as "file:line: path: msg", leaving out the
// parts that are unknown ("line N: path: msg" without a file name).
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	case e.File != "":
		b.WriteString(e.File)
		b.WriteString(": ")
	case e.Line > 0:
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config file, in line order. It is
// returned as an error only when it is non-empty.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the individual problems, for errors.As and for callers
// that print one problem per line.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sorted orders problems by line, keeping the discovery order for equal
// lines; problems without a line come last.
func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Line, es[j].Line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
	return es
}

// Load reads and parses the config file at path, expanding ${VAR} from the
// process environment. See Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes, expands, defaults and validates a config file's contents,
// expanding ${VAR} from the process environment. filename only names the
// file in error messages. On failure the error is an Errors listing every
// problem found.
func Parse(data []byte, filename string) (*Config, error) {
	return ParseWithEnv(data, filename, os.LookupEnv)
}

// ParseWithEnv is Parse with the environment given by lookup (nil means an
// empty environment).
func ParseWithEnv(data []byte, filename string, lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	root, err := parseYAML(data)
	if err != nil {
		return nil, Errors{yamlError(filename, data, err)}
	}
	d := &decoder{file: filename, lookup: lookup, lines: map[string]int{}, failed: map[string]bool{}, raw: map[string]string{}}
	c := DefaultConfig()
	c.File = filename
	if root != nil {
		d.config(root, &c)
		d.bufferDefaults(&c) // buffer.go: segment and chunk sizes scaled to max_bytes
	}
	for _, e := range validate(&c, d.lines, d.raw) {
		if !d.underFailed(e.Path) {
			d.errs = append(d.errs, e)
		}
	}
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	return &c, nil
}

// parseYAML returns the single document's root node, or nil for an empty
// file.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{Line: extra.Line, Msg: "multiple YAML documents are not supported"}
	case !errors.Is(err, io.EOF):
		return nil, err
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

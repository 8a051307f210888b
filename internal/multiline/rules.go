package multiline

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// verdict is a rule's answer to a line offered to its open group.
type verdict uint8

const (
	vReject verdict = iota // the line is not the group's: the rule is out
	vCont                  // the line belongs to the group
	vHold                  // a blank line the group may go on after
	vEnd                   // the line belongs to the group and ends it
)

// matcher is one rule. start reports whether line opens a group and the
// rule's state after it; next judges a line offered to an open group in
// state st and returns the state after it (ignored unless vCont or
// vHold). vHold is honoured only for empty lines. Matchers are stateless:
// the Joiner keeps their states.
type matcher interface {
	start(line []byte) (st uint32, ok bool)
	next(st uint32, line []byte) (uint32, verdict)
}

// builtins maps the names of the built-in rules to their matchers.
var builtins = map[string]matcher{
	"java":       javaRule{},
	"go":         goRule{},
	"python":     pythonRule{},
	"ruby":       rubyRule{},
	"javascript": jsRule{},
}

// aliases maps other accepted names to built-in names.
var aliases = map[string]string{"node": "javascript", "nodejs": "javascript", "js": "javascript", "golang": "go"}

// builtin returns the matcher named name and its canonical name.
func builtin(name string) (matcher, string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		n = a
	}
	if m, ok := builtins[n]; ok {
		return m, n, nil
	}
	return nil, "", fmt.Errorf("multiline: unknown rule %q (known: %s)", name, strings.Join(Builtins(), ", "))
}

// Builtins returns the names of the built-in rules, sorted.
func Builtins() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// indent returns the number of leading spaces and tabs of b.
func indent(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// hasPrefix reports whether b starts with p.
func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// hasSuffix reports whether b ends with s.
func hasSuffix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[len(b)-len(s):]) == s
}

// digits returns the number of leading ASCII digits of b.
func digits(b []byte) int {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// errorHeader reports whether b holds an exception's first line: a word
// ending in Exception, Error or Throwable followed by ':' or the end of
// the line ("java.lang.IllegalStateException: boom", "TypeError: x",
// "Exception in thread "main" java.lang.StackOverflowError").
func errorHeader(b []byte) bool {
	if errorWordBefore(b, len(b)) {
		return true
	}
	for i := 0; i < len(b); {
		k := bytes.IndexByte(b[i:], ':')
		if k < 0 {
			return false
		}
		if errorWordBefore(b, i+k) {
			return true
		}
		i += k + 1
	}
	return false
}

// errorWordBefore reports whether b[:i] ends with an error class name.
func errorWordBefore(b []byte, i int) bool {
	if i < 5 {
		return false
	}
	var w string
	switch b[i-1] {
	case 'n':
		w = "Exception"
	case 'r':
		w = "Error"
	case 'e':
		w = "Throwable"
	default:
		return false
	}
	return hasSuffix(b[:i], w)
}

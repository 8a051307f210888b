package multiline

import (
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

// errorHeader reports whether b is an exception's first line: its first
// word is a class name ending in Exception, Error or Throwable, followed
// by ':' or the end of the line ("java.lang.IllegalStateException: boom",
// "java.lang.StackOverflowError", "TypeError: x", "Uncaught Error: x"),
// or b starts with "Exception in thread ".
func errorHeader(b []byte) bool {
	if hasPrefix(b, "Exception in thread ") {
		return true
	}
	if hasPrefix(b, "Uncaught ") {
		b = b[len("Uncaught "):]
	}
	n := 0
	for n < len(b) && classByte(b[n]) {
		n++
	}
	if n == 0 || n < len(b) && b[n] != ':' {
		return false
	}
	w := b[:n]
	return hasSuffix(w, "Exception") || hasSuffix(w, "Error") || hasSuffix(w, "Throwable")
}

// classByte reports whether c may be part of a qualified class name.
func classByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '$'
}

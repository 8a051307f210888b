package multiline

import "bytes"

// goRule joins Go runtime crashes and stack dumps: a header ("panic: ",
// "fatal error: ", "runtime: ", "SIGQUIT: quit", net/http's "http: panic
// serving ...") with its indented and "[signal ...]" lines, then the
// goroutine dumps ("goroutine 1 [running]:", function lines
// "main.main()", "\t/src/main.go:12 +0x1d", "created by ..."), blank
// lines between them. A "goroutine N [...]:" line opens a group of its
// own (debug.Stack, SIGQUIT dumps).
type goRule struct{}

// States of goRule.
const (
	goHeader uint32 = iota // the header lines, before the first goroutine
	goStack                // in the goroutine dumps
)

func (goRule) start(b []byte) (uint32, bool) {
	if len(b) == 0 {
		return 0, false
	}
	switch b[0] {
	case 'p':
		if hasPrefix(b, "panic: ") {
			return goHeader, true
		}
	case 'f':
		if hasPrefix(b, "fatal error: ") {
			return goHeader, true
		}
	case 'r':
		if hasPrefix(b, "runtime: ") {
			return goHeader, true
		}
	case 'g':
		if goroutineHeader(b) {
			return goStack, true
		}
	case 'S':
		if signalHeader(b) {
			return goHeader, true
		}
	}
	return goHeader, httpPanic(b)
}

// httpPanic reports whether b is net/http's "http: panic serving
// 10.0.0.1:5678: msg", at the start or after the first words (a log
// package prefix: "2024/05/02 10:15:02.123456 server.go:12: ").
func httpPanic(b []byte) bool {
	const p = "http: panic serving "
	for i, n := 0, 0; n < 4; n++ {
		if hasPrefix(b[i:], p) {
			return true
		}
		k := bytes.IndexByte(b[i:], ' ')
		if k < 0 {
			return false
		}
		i += k + 1
	}
	return false
}

func (goRule) next(st uint32, b []byte) (uint32, verdict) {
	if len(b) == 0 {
		return st, vHold
	}
	if b[0] == '\t' || goroutineHeader(b) || hasPrefix(b, "runtime stack:") ||
		hasPrefix(b, "goroutine running on other thread") {
		return goStack, vCont
	}
	if st == goHeader {
		if hasPrefix(b, "[signal ") || hasPrefix(b, "PC=") || hasPrefix(b, "fatal error: ") ||
			hasPrefix(b, "runtime: ") {
			return goHeader, vCont
		}
		return st, vReject
	}
	if hasPrefix(b, "created by ") || hasPrefix(b, "...additional frames elided...") || funcLine(b) {
		return goStack, vCont
	}
	return st, vReject
}

// goroutineHeader reports whether b is "goroutine 1 [running]:" (or a
// variant such as "goroutine 7 gp=0xc0000 m=0 mp=0x5e [running]:").
func goroutineHeader(b []byte) bool {
	return hasPrefix(b, "goroutine ") && digits(b[len("goroutine "):]) > 0 && hasSuffix(b, "]:")
}

// signalHeader reports whether b is "SIGQUIT: quit" or the like.
func signalHeader(b []byte) bool {
	if !hasPrefix(b, "SIG") {
		return false
	}
	i := 3
	for i < len(b) && b[i] >= 'A' && b[i] <= 'Z' {
		i++
	}
	return i > 3 && hasPrefix(b[i:], ": ")
}

// funcLine reports whether b is a stack frame's function line:
// "main.(*T).serve(0xc000010000, {0x6d1e28, 0x0})", no space before the
// first '(' and a ')' at the end.
func funcLine(b []byte) bool {
	if len(b) < 3 || b[len(b)-1] != ')' || b[0] == ' ' {
		return false
	}
	p := bytes.IndexByte(b, '(')
	return p > 0 && bytes.IndexByte(b[:p], ' ') < 0
}

package multiline

// javaRule joins JVM stack traces: a header line naming an exception
// (see errorHeader), then frames ("\tat pkg.Class.method(File.java:12)"),
// "Caused by: ..." and "\tSuppressed: ..." chains, "\t... 12 more" and
// logback's "... 5 common frames omitted". .NET traces ("   at X.Y() in
// /src/a.cs:line 12", " ---> System.Z: inner") take the same form. A
// continuation line with no header before it (a header this rule does
// not recognise) opens a group of its own, so the frames still come as
// one event.
type javaRule struct{}

func (javaRule) start(b []byte) (uint32, bool) {
	return 0, javaCont(b) || errorHeader(b)
}

func (javaRule) next(_ uint32, b []byte) (uint32, verdict) {
	if javaCont(b) {
		return 0, vCont
	}
	return 0, vReject
}

// javaCont reports whether b continues a JVM stack trace.
func javaCont(b []byte) bool {
	i := indent(b)
	r := b[i:]
	if len(r) == 0 {
		return false
	}
	switch r[0] {
	case 'a':
		return i > 0 && hasPrefix(r, "at ")
	case 'C':
		return hasPrefix(r, "Caused by: ")
	case 'S':
		return hasPrefix(r, "Suppressed: ")
	case 'W':
		return hasPrefix(r, "Wrapped by: ") // logback, root cause first
	case '.':
		return i > 0 && hasPrefix(r, "... ") && digits(r[4:]) > 0
	case '[':
		return i > 0 && hasPrefix(r, "[CIRCULAR REFERENCE")
	case '-': // .NET: " ---> System.X: inner", "--- End of inner exception stack trace ---"
		return i > 0 && (hasPrefix(r, "---> ") || hasPrefix(r, "--- End of "))
	}
	return false
}

package multiline

// jsRule joins JavaScript (Node.js, V8) errors: a header line naming an
// error ("TypeError: x", see errorHeader), its "    at fn (file:1:2)"
// frames and "    ... 4 lines matching cause stack trace ..." lines,
// the "{ ... }" block util.inspect prints after the last frame (error
// properties, "[cause]: Error: ..." with its own frames), and Node's
// "Node.js v20.1.0" after an uncaught error. Node's crash report before
// the header ("/app/x.js:3", the source line, the caret line, a blank
// line) is joined too. An indented "at " line with no header opens a
// group.
type jsRule struct{}

// States of jsRule; jsProps carries the brace depth above jsDepth.
const (
	jsHeader uint32 = iota // after the header: frames follow
	jsFrames               // in the frames
	jsAfter                // after the "{ ... }" block
	jsSrc                  // after "/app/x.js:3": the source line follows
	jsCode                 // after the source line: the caret line follows
	jsCaret                // after the caret line: blank, then the header
	jsProps                // in the "{ ... }" block, depth st>>jsDepth
)

const (
	jsDepth    = 8
	jsMaxDepth = 64
	jsVersion  = "Node.js v"
)

func (jsRule) start(b []byte) (uint32, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if i := indent(b); i > 0 {
		return jsFrames, hasPrefix(b[i:], "at ")
	}
	if b[0] == '/' || b[0] == 'f' || b[0] == 'n' || b[0] == '<' {
		if jsLocation(b) {
			return jsSrc, true
		}
	}
	return jsHeader, errorHeader(b)
}

func (jsRule) next(st uint32, b []byte) (uint32, verdict) {
	i := indent(b)
	switch st & (1<<jsDepth - 1) {
	case jsHeader, jsFrames:
		switch {
		case i > 0 && hasPrefix(b[i:], "at "):
			if hasSuffix(b, " {") {
				return jsProps | 1<<jsDepth, vCont
			}
			return jsFrames, vCont
		case i > 0 && hasPrefix(b[i:], "... "):
			return jsFrames, vCont
		case st == jsFrames && len(b) == 0:
			return jsFrames, vHold
		case st == jsFrames && hasPrefix(b, jsVersion):
			return st, vEnd
		}
	case jsAfter:
		switch {
		case len(b) == 0:
			return jsAfter, vHold
		case hasPrefix(b, jsVersion):
			return st, vEnd
		}
	case jsSrc:
		if len(b) > 0 {
			return jsCode, vCont
		}
	case jsCode:
		switch {
		case i < len(b) && b[i] == '^':
			return jsCaret, vCont
		case len(b) == 0: // no caret line (code run by eval or JSON.parse)
			return jsCaret, vHold
		}
	case jsCaret:
		switch {
		case len(b) == 0:
			return jsCaret, vHold
		case errorHeader(b):
			return jsHeader, vCont
		}
	case jsProps:
		d := st >> jsDepth
		if i == 0 && (len(b) == 0 || b[0] != '}' && b[0] != ']') {
			return st, vReject // the block is indented
		}
		if r := b[i:]; len(r) > 0 && (r[0] == '}' || r[0] == ']') {
			d--
		}
		if hasSuffix(b, "{") || hasSuffix(b, "[") {
			d++
		}
		switch {
		case d == 0:
			return jsAfter, vCont
		case d > jsMaxDepth:
			d = jsMaxDepth
		}
		return jsProps | d<<jsDepth, vCont
	}
	return st, vReject
}

// jsLocation reports whether b is the location line of Node's crash
// report: a path, file:// or node: URL followed by ":<line>", alone.
func jsLocation(b []byte) bool {
	if !(b[0] == '/' || b[0] == '<' || hasPrefix(b, "file://") || hasPrefix(b, "node:")) {
		return false
	}
	n := 0
	for n < len(b) && b[len(b)-1-n] >= '0' && b[len(b)-1-n] <= '9' {
		n++
	}
	if n == 0 || n == len(b) || b[len(b)-1-n] != ':' {
		return false
	}
	for _, c := range b {
		if c == ' ' || c == '\t' {
			return false
		}
	}
	return true
}

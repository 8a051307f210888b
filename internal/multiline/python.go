package multiline

// pythonRule joins Python tracebacks: "Traceback (most recent call
// last):", the indented frames ("  File "x.py", line 3, in f" and the
// source, caret and "[Previous line repeated N more times]" lines), the
// final unindented exception line ("ValueError: bad"), and chained
// tracebacks after "During handling of the above exception, another
// exception occurred:" or "The above exception was the direct cause of
// the following exception:", blank lines around them. Exception groups
// ("  + Exception Group Traceback ...") end with their last indented
// line. An indented "File "..."" line with no header opens a group.
type pythonRule struct{}

// States of pythonRule.
const (
	pyTrace uint32 = iota // in the frames: the next unindented line is the exception
	pyGroup               // in an exception group: all indented
	pyErr                 // after the exception line: only a chain goes on
	pyChain               // after a chain sentence: a new traceback follows
)

const (
	pyHeader     = "Traceback (most recent call last):"
	pyGroupHdr   = "+ Exception Group Traceback (most recent call last):"
	pyDuring     = "During handling of the above exception, another exception occurred:"
	pyDirectCaus = "The above exception was the direct cause of the following exception:"
)

func (pythonRule) start(b []byte) (uint32, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if b[0] == 'T' {
		return pyTrace, hasPrefix(b, pyHeader)
	}
	if i := indent(b); i > 0 {
		switch r := b[i:]; {
		case hasPrefix(r, `File "`):
			return pyTrace, true
		case hasPrefix(r, pyGroupHdr):
			return pyGroup, true
		}
	}
	return 0, false
}

func (pythonRule) next(st uint32, b []byte) (uint32, verdict) {
	switch st {
	case pyTrace, pyGroup:
		switch {
		case len(b) == 0:
			return st, vReject
		case indent(b) > 0:
			return st, vCont
		case st == pyTrace:
			return pyErr, vCont
		}
	case pyErr, pyChain:
		switch {
		case len(b) == 0:
			return st, vHold
		case hasPrefix(b, pyDuring) || hasPrefix(b, pyDirectCaus):
			return pyChain, vCont
		case st == pyChain && hasPrefix(b, pyHeader):
			return pyTrace, vCont
		case st == pyChain && indent(b) > 0 && hasPrefix(b[indent(b):], pyGroupHdr):
			return pyGroup, vCont
		}
	}
	return st, vReject
}

package multiline

import "bytes"

// rubyRule joins Ruby backtraces: the header "app.rb:3:in `m': msg
// (Class)" (Ruby 3.4 quotes 'm'), did_you_mean's "Did you mean?" lines,
// error_highlight's snippet (a blank line, the code, a line of carets),
// then the "\tfrom app.rb:7:in `<main>'" frames (or Rails' indented
// "app/x.rb:5:in `show'"). Ruby 2.5 to 2.7's reversed form on a
// terminal, "Traceback (most recent call last):", "\t1: from ..." and
// the header last, is joined too. A "from" frame with no header opens a
// group.
type rubyRule struct{}

// States of rubyRule.
const (
	rbHeader  uint32 = iota // after the header
	rbBlank                 // after the header and a blank line: a snippet may follow
	rbSnippet               // after error_highlight's code line: carets follow
	rbFrames                // in the frames
	rbReverse               // in a reversed trace: the header ends it
)

func (rubyRule) start(b []byte) (uint32, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if i := indent(b); i > 0 {
		return rbFrames, hasPrefix(b[i:], "from ") && rubyFrame(b[i+5:])
	}
	if b[0] == 'T' && hasPrefix(b, pyHeader) {
		return rbReverse, true
	}
	return rbHeader, rubyHeader(b)
}

func (rubyRule) next(st uint32, b []byte) (uint32, verdict) {
	i := indent(b)
	switch st {
	case rbHeader:
		switch {
		case len(b) == 0:
			return rbBlank, vHold
		case hasPrefix(b, "Did you mean?"):
			return rbHeader, vCont
		case i > 0 && (hasPrefix(b[i:], "from ") || rubyFrame(b[i:])):
			return rbFrames, vCont
		case i > 0:
			return rbHeader, vCont // did_you_mean's candidates
		}
	case rbBlank:
		switch {
		case len(b) == 0:
			return rbBlank, vHold
		case i > 0 && hasPrefix(b[i:], "from "):
			return rbFrames, vCont
		}
		return rbSnippet, vCont
	case rbSnippet:
		if i < len(b) && b[i] == '^' {
			return rbFrames, vCont
		}
	case rbFrames:
		if hasPrefix(b, "Did you mean?") {
			return rbHeader, vCont
		}
		if i > 0 && (hasPrefix(b[i:], "from ") || rubyFrame(b[i:])) || i > 0 && hasPrefix(b[i:], "... ") {
			return rbFrames, vCont
		}
	case rbReverse:
		switch {
		case i > 0 && (digits(b[i:]) > 0 || hasPrefix(b[i:], "... ")):
			return rbReverse, vCont
		case i == 0 && rubyFrame(b):
			return rbReverse, vEnd
		}
	}
	return st, vReject
}

// rubyFrame reports whether b holds a Ruby frame, "path:12:in `m'" or
// "path:12:in 'm'", at the first ":<digits>:in " of the line.
func rubyFrame(b []byte) bool {
	for i := 0; i < len(b); {
		k := bytes.Index(b[i:], []byte(":in "))
		if k < 0 || i+k+4 >= len(b) {
			return false
		}
		k += i
		if q := b[k+4]; q == '`' || q == '\'' {
			d := k
			for d > 0 && b[d-1] >= '0' && b[d-1] <= '9' {
				d--
			}
			if d < k && d > 0 && b[d-1] == ':' {
				return true
			}
		}
		i = k + 4
	}
	return false
}

// rubyHeader reports whether b starts with a frame: its first word is
// "path:12:in" and a quote follows.
func rubyHeader(b []byte) bool {
	s := bytes.IndexByte(b, ' ')
	if s < 0 || s+1 == len(b) || b[s+1] != '`' && b[s+1] != '\'' || !hasSuffix(b[:s], ":in") {
		return false
	}
	d := s - 3
	n := 0
	for d-n > 0 && b[d-n-1] >= '0' && b[d-n-1] <= '9' {
		n++
	}
	return n > 0 && d-n > 1 && b[d-n-1] == ':'
}

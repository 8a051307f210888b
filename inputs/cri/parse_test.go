package cri

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
)

// TestParseFormatsExamples: the lines of formats.md §4.1.
func TestParseFormatsExamples(t *testing.T) {
	tests := []struct {
		line, content, stream, time string
		partial                     bool
	}{
		{"2016-10-06T00:17:09.669794202Z stdout P log content 1", "log content 1", "stdout", "2016-10-06T00:17:09.669794202Z", true},
		{"2016-10-06T00:17:09.669794203Z stderr F log content 2", "log content 2", "stderr", "2016-10-06T00:17:09.669794203Z", false},
		{"2024-01-02T03:04:05.1+09:00 stdout F hello", "hello", "stdout", "2024-01-01T18:04:05.1Z", false},
	}
	var p parser
	for _, tc := range tests {
		var l tail.Line
		if err := p.Parse([]byte(tc.line), &l); err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		if string(l.Content) != tc.content || string(l.Stream) != tc.stream || l.Partial != tc.partial ||
			!l.HasTime || l.Time != mustTime(t, tc.time) || l.Truncated {
			t.Errorf("%q: got %+v (content %q)", tc.line, l, l.Content)
		}
	}
}

// TestParseEdgeCases: the edge cases of formats.md §4.1 and the choices
// documented in the package doc.
func TestParseEdgeCases(t *testing.T) {
	const ts = "2024-01-02T03:04:05Z"
	tests := map[string]struct {
		line, content, stream string
		partial               bool
	}{
		"empty F":                 {ts + " stdout F ", "", "stdout", false},
		"F without space":         {ts + " stdout F", "", "stdout", false},
		"empty P":                 {ts + " stderr P ", "", "stderr", true},
		"CRLF on F":               {ts + " stdout F windows\r", "windows", "stdout", false},
		"only CR":                 {ts + " stdout F \r", "", "stdout", false},
		"CR kept on P":            {ts + " stdout P piece\r", "piece\r", "stdout", true},
		"inner CR kept":           {ts + " stdout F a\rb", "a\rb", "stdout", false},
		"extra tags":              {ts + " stdout P:x:y more", "more", "stdout", true},
		"F with future tag":       {ts + " stdout F:z done", "done", "stdout", false},
		"spaces in content":       {ts + " stdout F  two  spaces ", " two  spaces ", "stdout", false},
		"untagged old format":     {ts + " stdout hello world", "hello world", "stdout", false},
		"untagged one word":       {ts + " stderr oops", "oops", "stderr", false},
		"lower-case tag":          {ts + " stdout f x", "f x", "stdout", false},
		"untagged empty":          {ts + " stdout ", "", "stdout", false},
		"no content field":        {ts + " stdout", "", "stdout", false},
		"tabs kept":               {ts + " stdout F a\tb", "a\tb", "stdout", false},
		"binary kept":             {ts + " stdout F \x00\xff\xfe", "\x00\xff\xfe", "stdout", false},
		"json content":            {ts + ` stdout F {"a":1}`, `{"a":1}`, "stdout", false},
		"negative offset":         {"2024-01-02T03:04:05-07:30 stdout F x", "x", "stdout", false},
		"no fraction, local zone": {"2024-01-02T03:04:05+09:00 stdout F x", "x", "stdout", false},
	}
	var p parser
	for name, tc := range tests {
		var l tail.Line
		if err := p.Parse([]byte(tc.line), &l); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(l.Content) != tc.content || string(l.Stream) != tc.stream || l.Partial != tc.partial || !l.HasTime {
			t.Errorf("%s: got content %q stream %q partial %v", name, l.Content, l.Stream, l.Partial)
		}
	}
	var l tail.Line
	must(t, p.Parse([]byte("2024-01-02T03:04:05-07:30 stdout F x"), &l))
	if want := time.Date(2024, 1, 2, 10, 34, 5, 0, time.UTC).UnixNano(); l.Time != want {
		t.Errorf("offset not applied: %d, want %d", l.Time, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		line string
		err  error
	}{
		"empty":              {"", errNoStream},
		"timestamp only":     {"2024-01-02T03:04:05Z", errNoStream},
		"not a time":         {"hello stdout F x", errBadTime},
		"date only":          {"2024-01-02 stdout F x", errBadTime},
		"no zone":            {"2024-01-02T03:04:05 stdout F x", errBadTime},
		"bad offset":         {"2024-01-02T03:04:05+0900 stdout F x", errBadTime},
		"ten digits":         {"2024-01-02T03:04:05.1234567890Z stdout F x", errBadTime},
		"empty fraction":     {"2024-01-02T03:04:05.Z stdout F x", errBadTime},
		"Feb 30":             {"2024-02-30T03:04:05Z stdout F x", errBadTime},
		"hour 24":            {"2024-01-02T24:04:05Z stdout F x", errBadTime},
		"leading space":      {" 2024-01-02T03:04:05Z stdout F x", errBadTime},
		"unknown stream":     {"2024-01-02T03:04:05Z stdin F x", errBadStream},
		"upper-case stream":  {"2024-01-02T03:04:05Z STDOUT F x", errBadStream},
		"stream suffix":      {"2024-01-02T03:04:05Z stdoutx F x", errBadStream},
		"two spaces":         {"2024-01-02T03:04:05Z  stdout F x", errBadStream},
		"truncated stream":   {"2024-01-02T03:04:05Z std", errBadStream},
		"json-file line":     {`{"log":"x\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}`, errNoStream},
		"json-file w/ space": {`{"log":"a b\n","stream":"stdout"}`, errBadTime},
	}
	var p parser
	for name, tc := range tests {
		var l tail.Line
		if err := p.Parse([]byte(tc.line), &l); !errors.Is(err, tc.err) {
			t.Errorf("%s: error %v, want %v", name, err, tc.err)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	var p parser
	var l tail.Line
	good := []byte("2024-01-02T03:04:05.123456789Z stdout F " + strings.Repeat("x", 200))
	bad := []byte("2024-01-02T03:04:05.123456789Z stdin F x")
	if n := testing.AllocsPerRun(100, func() {
		_ = p.Parse(good, &l)
		_ = p.Parse(bad, &l)
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// TestLongLine: a line longer than the read buffer keeps its header and
// max bytes of content, says whether it was cut, and a line whose header
// does not parse comes back raw.
func TestLongLine(t *testing.T) {
	var p parser
	const max = 1000
	feed := func(line string, piece int) (tail.Line, error) {
		ll := p.Long(max)
		for b := []byte(line); len(b) > 0; {
			n := min(piece, len(b))
			ll.Write(b[:n])
			b = b[n:]
		}
		return ll.End()
	}
	body := strings.Repeat("0123456789", 500)
	for _, piece := range []int{1, 7, 100, 1 << 20} {
		l, err := feed("2024-01-02T03:04:05Z stderr P "+body, piece)
		if err != nil || string(l.Content) != body[:max] || !l.Truncated || !l.Partial || string(l.Stream) != "stderr" {
			t.Fatalf("piece %d: %v %+v", piece, err, l)
		}
		l, err = feed("2024-01-02T03:04:05Z stdout F "+body[:max], piece)
		if err != nil || string(l.Content) != body[:max] || l.Truncated || l.Partial {
			t.Fatalf("piece %d exact: %v %+v", piece, err, l)
		}
		// A "\r" at the cut is content, not a CRLF.
		l, err = feed("2024-01-02T03:04:05Z stdout F "+body[:max-1]+"\r"+body, piece)
		if err != nil || string(l.Content) != body[:max-1]+"\r" || !l.Truncated {
			t.Fatalf("piece %d CR at the cut: %v %q", piece, err, l.Content[len(l.Content)-3:])
		}
		l, err = feed("2024-01-02T03:04:05Z stdout F "+body[:max-1]+"\r", piece)
		if err != nil || string(l.Content) != body[:max-1] || l.Truncated {
			t.Fatalf("piece %d CRLF: %v %+v", piece, err, l)
		}
		l, err = feed("garbage"+body, piece)
		if err == nil || string(l.Content) != ("garbage" + body)[:max] || !l.Truncated {
			t.Fatalf("piece %d malformed: %v %d %v", piece, err, len(l.Content), l.Truncated)
		}
	}
}

// FuzzParseCRI: Parse never panics, never allocates a Content that is not
// a view of its input, and agrees with a straightforward reference
// parser; the LongLine gives the same result for lines it keeps whole.
func FuzzParseCRI(f *testing.F) {
	for _, s := range []string{
		"2016-10-06T00:17:09.669794202Z stdout P log content 1",
		"2016-10-06T00:17:09.669794203Z stderr F log content 2",
		"2024-01-02T03:04:05.1+09:00 stdout F hello",
		"2024-01-02T03:04:05Z stdout F ",
		"2024-01-02T03:04:05Z stdout F x\r",
		"2024-01-02T03:04:05Z stdout P:a:b x",
		"2024-01-02T03:04:05Z stderr old style line",
		"2024-01-02T03:04:05Z stdout",
		"2024-13-02T03:04:05Z stdout F x",
		`{"log":"x\n","stream":"stdout"}`,
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p parser
		var l tail.Line
		err := p.Parse(b, &l)
		want, wantErr := refParse(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, reference %v", b, err, wantErr)
		}
		if err != nil {
			return
		}
		if string(l.Content) != string(want.Content) || string(l.Stream) != string(want.Stream) ||
			l.Partial != want.Partial || l.Time != want.Time || !l.HasTime {
			t.Fatalf("%q: got %+v, reference %+v", b, l, want)
		}
		if !within(b, l.Content) {
			t.Fatalf("%q: content is not a view of the line", b)
		}
		ll := p.Long(len(b) + 1)
		ll.Write(b)
		l2, err2 := ll.End()
		if err2 != nil || string(l2.Content) != string(l.Content) || l2.Partial != l.Partial || l2.Truncated {
			t.Fatalf("%q: long line %+v %v, want %+v", b, l2, err2, l)
		}
	})
}

// within reports whether sub lies inside b's memory.
func within(b, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(b))
}

// refParse is the CRI grammar written plainly, with time.Parse.
func refParse(b []byte) (tail.Line, error) {
	s := string(b)
	ts, rest, ok := strings.Cut(s, " ")
	if !ok {
		return tail.Line{}, errNoStream
	}
	norm := []byte(ts)
	if len(norm) > 10 && norm[10] == 't' {
		norm[10] = 'T'
	}
	if n := len(norm); n > 0 && norm[n-1] == 'z' {
		norm[n-1] = 'Z'
	}
	tm, err := time.Parse(time.RFC3339Nano, string(norm))
	// time.Parse accepts a few shapes the strict parser refuses (a ","
	// fraction): strictTime narrows it to RFC 3339 as containerd writes it.
	if err != nil || !strictTime(string(norm)) {
		return tail.Line{}, errBadTime
	}
	if _, off := tm.Zone(); abs(tm.Unix()+int64(off)) > 9223372036-2*86400 {
		return tail.Line{}, errBadTime
	}
	stream, rest, _ := strings.Cut(rest, " ")
	if stream != "stdout" && stream != "stderr" {
		return tail.Line{}, errBadStream
	}
	l := tail.Line{Stream: []byte(stream), Time: tm.UnixNano(), HasTime: true}
	if len(s) == len(ts)+1+len(stream) {
		return l, nil
	}
	tags, content, _ := strings.Cut(rest, " ")
	first, _, _ := strings.Cut(tags, ":")
	switch first {
	case "P":
		l.Partial = true
	case "F":
	default:
		content = rest
	}
	if !l.Partial {
		content = strings.TrimSuffix(content, "\r")
	}
	l.Content = []byte(content)
	return l, nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// strictTime is the shape ParseTime accepts: 2006-01-02T15:04:05, an
// optional 1-9 digit fraction, Z or ±hh:mm.
func strictTime(s string) bool {
	if len(s) < 20 || (s[10] != 'T') || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	r := s[19:]
	if strings.HasPrefix(r, ".") {
		n := 1
		for n < len(r) && r[n] >= '0' && r[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		r = r[n:]
	}
	if r == "Z" {
		return true
	}
	if len(r) != 6 || (r[0] != '+' && r[0] != '-') || r[3] != ':' {
		return false
	}
	for _, i := range []int{1, 2, 4, 5} {
		if r[i] < '0' || r[i] > '9' {
			return false
		}
	}
	return r[1:3] <= "23" && r[4:6] <= "59"
}

package tail

import (
	"context"
	"unicode/utf8"
)

// emit cuts l (which started at file offset start and ended before end)
// to MaxLineBytes, has the source build its event and adds it to the
// writer; with Config.Multiline, l goes to its stream's joiner instead,
// which emits it or its group when complete. Add never fails: what it
// holds is appended by the next flush. l.Time must be set.
func (t *Tail) emit(f *file, l *Line, start, end int64) {
	t.cut(f, l, start)
	if t.ml != nil {
		t.addMultiline(f, l, start, end)
		return
	}
	t.w.Add(f.src.meta.Event(l))
}

// cut cuts l to MaxLineBytes (on a UTF-8 boundary) and counts it if it
// was truncated, here or before.
func (t *Tail) cut(f *file, l *Line, start int64) {
	if len(l.Content) > t.maxLine {
		l.Content = l.Content[:t.maxLine]
		l.Truncated = true
	}
	if l.Truncated {
		l.Content = trimPartialRune(l.Content)
		t.m.truncated.Inc()
		if ok, n := t.warnTrunc.allow(t.now); ok {
			t.log.Warn("line longer than max_line_bytes truncated", "path", f.path, "offset", start, "max_line_bytes", t.maxLine, "suppressed", n)
		}
	}
}

// malformed emits a line the format could not parse as it is (cut to
// MaxLineBytes), with an empty stream and the read time. It is never
// joined (multiline or partial), and not emitted again if an earlier run
// handed it off (f.skipHi).
func (t *Tail) malformed(f *file, raw []byte, truncated bool, start int64, perr error) {
	if start < f.skipHi {
		return
	}
	t.m.parseErrors.Inc()
	if ok, n := t.warnParse.allow(t.now); ok {
		t.log.Warn("malformed line, emitted raw", "path", f.path, "offset", start, "err", perr, "suppressed", n)
	}
	t.line = Line{Content: raw, Time: t.now.UnixNano(), HasTime: true, Truncated: truncated}
	t.cut(f, &t.line, start)
	t.w.Add(f.src.meta.Event(&t.line))
}

// trimPartialRune drops an incomplete UTF-8 sequence left at the end of b
// by a byte-count cut.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// touch records that f's handoff offset may have moved: the next
// successful flush commits it.
func (t *Tail) touch(f *file) {
	if !f.touched {
		f.touched = true
		t.touched = append(t.touched, f)
	}
}

// flush hands every added event to the queues; only then are the touched
// files' handed-off offsets committed (commitFlushed). A failed Flush
// leaves the events in the writer and stalls reading until a retry
// succeeds.
func (t *Tail) flush(ctx context.Context) error {
	if err := t.w.Flush(ctx); err != nil {
		t.stalled = true
		return err
	}
	t.stalled = false
	if len(t.touched) == 0 {
		return nil
	}
	t.commits = t.commits[:0]
	for _, f := range t.touched {
		f.touched = false
		t.commits = append(t.commits, t.commitState(f))
	}
	clear(t.touched)
	t.touched = t.touched[:0]
	t.commitFlushed(t.commits)
	clear(t.commits)
	return nil
}

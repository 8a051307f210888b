// Package multiline joins the lines of one stack trace (or of any event
// written over several lines) into one event. A Joiner serves one
// stream, such as the stdout of one container: the caller keeps one per
// (file, stream) or per Forward tag, and feeds it the stream's lines in
// order, after joining partial lines.
//
// # Invariants
//
//   - Nothing is lost or reordered: every line given to Add comes out in
//     exactly one Event, in input order, byte for byte, unless its group
//     was truncated (below). A group's Line is its lines joined with "\n".
//   - A line held is never behind a committed position: Pending returns
//     the start tag of the first line the Joiner still holds, so a caller
//     whose committed offset (or Forward ack) stays at or before it
//     commits only lines already emitted. Position tags are opaque to the
//     Joiner; Event.Start and Event.End give back those of the first and
//     last line.
//   - A line that opens no group and continues none passes straight
//     through, in the same Add call, with no copy: Event.Line is the
//     caller's line. The built-ins read only the start of a line (its
//     first words: go's net/http check skips at most 4), never scan it
//     whole: about 55 ns of CPU a line with every built-in rule on
//     (BenchmarkNoMatch), and no allocation. User rules cost what their
//     regexp costs.
//   - Bounded memory: a group holds at most MaxBytes of content (and at
//     most MaxLines lines, if set), plus the last group emitted (kept
//     until the next call), so at most about 2 × MaxBytes per Joiner;
//     buffers of more than 64 KiB are not kept for reuse.
//   - Truncation is counted: a line that would take a group past MaxBytes
//     is cut there (at a UTF-8 boundary), the line past MaxLines dropped,
//     and the group is emitted at once with Truncated set. The group's
//     further lines (while its rules accept them) are dropped and counted
//     in Stats.DroppedLines and DroppedBytes: one runaway trace becomes
//     one cut event, not a flood of fragments. A first line over MaxBytes
//     is emitted cut, from the caller's buffer.
//   - A held group leaves only by Add (a line that does not continue it,
//     or one a rule says ends it) or by Flush (idle for FlushTimeout, or
//     forced): never by itself, since the Joiner has no goroutine or
//     timer.
//
// # Goroutines and ownership
//
// A Joiner is used on one goroutine (the input's reader); it has no
// locks and starts nothing. It owns its buffers. The caller owns the
// line passed to Add, which the Joiner reads only during the call, and
// the out slice, to which events are appended (pass out[:0] to reuse
// it: then Add allocates nothing after warm-up). An Event's Line aliases
// the caller's line or the Joiner's buffer, and is valid until the next
// call to Add or Flush.
//
// # Rules
//
// A rule says which line opens a group and, for an open group, whether
// the next line continues it. The built-ins are hand-written matchers
// (no regexp): java (also Kotlin and Scala traces on the JVM), go,
// python, ruby and javascript (alias node); each type's doc lists what
// it matches. User rules are two RE2 patterns (see Rule). When several
// rules open a group on the same line, all of them follow it and it
// goes on while any accepts its lines; it ends at the last line one of
// them accepted. So java and javascript, both taking "TypeError: x",
// coexist.
//
// Most built-ins also open a group on a continuation line with no
// header before it ("\tat ...", "goroutine 7 [running]:"), so a trace
// whose first line was not recognised still comes as two events, not
// forty.
//
// Blank lines: an empty line inside a group (between goroutine dumps,
// around Python's "During handling of the above exception" sentence,
// before "Node.js v20.1.0") is held until the next line shows whether
// the group goes on; if it ends instead, each held empty line is emitted
// as an event of its own after the group, and the group ends at its last
// accepted line. At most 4 such lines are held in a row.
//
// # Flushing
//
// Flush emits a group that saw no line for FlushTimeout. Add reads no
// clock: the idle time runs from the first Flush after the group's last
// line, so with Flush called every d a group waits between FlushTimeout
// and FlushTimeout+d. At the end of a stream (file finished, connection
// closed) call Flush with force.
//
// # Known limitations
//
//   - A header is recognised on its own line only: the log line before a
//     trace ("ERROR [http-1] checkout failed") stays a separate event
//     unless a user rule in the first line mode joins it (Start matching
//     the logger's timestamp). Exception messages over several lines are
//     joined only as far as the rule knows the form (not Java's).
//   - A line whose first word ends in Exception, Error or Throwable,
//     followed by ':' or nothing, opens a java or javascript group (so do
//     Python's last lines, "ValueError: bad"): such a line with no trace
//     waits for the next line (or FlushTimeout) before it is emitted, and
//     is copied once. An exception named later in a line ("... failed:
//     java.io.IOException: reset") is not a header; its frames still join
//     into one event of their own.
//   - A Ruby header is recognised when its first word is "path:12:in"
//     (a path without spaces).
//   - A Ruby header followed by a blank line takes the next line as
//     error_highlight's code snippet, even when it is not.
//   - The first line mode of a user rule holds every line until the next
//     one arrives: each line is copied once and delayed.
package multiline

// Package docker tails Docker's json-file container logs
// (<root>/<id>/<id>-json.log and its rotated siblings <id>-json.log.N) and
// hands each line to the pipeline as an event.
//
// The file following (discovery, fingerprints, rotation, offsets, turns,
// partial-line joining, the hand-off and the checkpoint) is package tail;
// this package supplies Docker's layout, line format and metadata.
//
// # Invariants
//
//   - Every guarantee of package tail holds: at least once (an offset is
//     committed only after Writer.Flush accepted every line before it, and
//     written to offsets.json only after Router.Sync), identity by
//     fingerprint (never by path or inode alone), rotation by rename and by
//     copytruncate, rotations made while stopped read oldest first, lost
//     data counted, bounded memory, atomic offsets file.
//   - Layout (layout.go): container directories right below the root; in
//     each, the live <id>-json.log (rank 0) and the rotated <id>-json.log.N
//     (rank N, so .N is read before .N-1 before the live file). Compressed
//     rotations (.N.gz) and every other file are never read as logs.
//     The agent's own container is never read (self.go: its id from
//     /proc/self/mountinfo or cgroup, or $SLUICE_SELF_CONTAINER_ID, "none"
//     to read it): reading its own output back would loop every line.
//   - Format (parse.go, longline.go): one JSON object per line; a "log"
//     without its trailing "\n" is a partial chunk. Parsing does not
//     allocate; a line longer than the read buffer is parsed as a stream
//     and never held whole.
//   - Metadata (container.go): config.v2.json is re-read at each scan of the
//     container's directory when its mtime or size changed (Docker replaces
//     it by rename, which also triggers that scan at once); until it can be
//     read the name is the short id. The record (record.go) has the same
//     shape as the forward input's for Docker's fluentd driver.
//
// # Record layout
//
// Each event's Time is the line's "time" (the read time if it has none).
// Its Record is a msgpack map; the forward input produces the same shape
// from Docker's fluentd log driver:
//
//	"log"            str  the line without its trailing "\n"; partial lines
//	                      joined; with multiline, a group's lines joined
//	                      with "\n" (no trailing "\n"); cut to MaxLineBytes
//	                      (on a UTF-8 boundary). For a malformed line: the
//	                      raw JSON line (never joined).
//	"stream"         str  "stdout" or "stderr" ("" for a malformed line)
//	"container_id"   str  full id, the name of the container directory
//	"container_name" str  config.v2.json "Name" without its leading "/";
//	                      the 12-char short id if that file is unusable
//	"labels"         map  str→str, config.v2.json Config.Labels; only with
//	                      IncludeLabels and if the container has labels
//	<field>...       any  with ParseJSON, when "log" is one JSON object: its
//	                      top-level fields (nested objects and arrays as
//	                      msgpack maps and arrays, integers as int64, other
//	                      numbers as float64). "log" keeps the original text;
//	                      a field named like one of the keys above is not
//	                      merged (its value is still in "log"); the first of
//	                      repeated keys wins.
//
// The json-file "attrs" object is not copied (labels come from
// config.v2.json).
//
// # Parsing
//
// The line parser is hand-written and does not allocate: keys in any order,
// unknown keys skipped, Docker's escapes (\u003c, \u0009, \ufffd, \u2028,
// surrogate pairs) decoded into a reused buffer, RFC 3339 times with any
// number of fraction digits. A line that does not parse is emitted with the
// raw line in "log" (see tail); reading continues. A line longer than the
// read buffer goes to a streaming parser of the same grammar that keeps at
// most MaxLineBytes of "log" (and of the raw line, for a malformed one) but
// still finds "stream" and "time" after it.
//
// Docker splits lines longer than 16 KiB into chunks whose "log" does not
// end in "\n"; tail joins them per stream (stdout and stderr interleave
// independently) and emits them once the chunk ending in "\n" arrives,
// with the first chunk's time. A group with no continuation for
// PartialFlushTimeout is emitted as it is.
//
// # Multiline
//
// With multiline (DockerInput.Multiline, the "multiline:" section), the
// lines of one message, such as a stack trace, are joined into one event
// per container and stream, after the chunks are joined and before the
// hand-off (package tail, "Multiline"; the rules are internal/multiline's:
// java, go, python, ruby, javascript, and custom start/continue regexps).
// The joiner gets each line's message without its trailing "\n"; the
// event's "log" is the group's lines joined with "\n", without a trailing
// "\n" (as every "log" of this input), its Time the first line's, cut to
// max_bytes (default min(1 MiB, MaxLineBytes)). The committed offset never
// passes the start of a line held in an open group: after a restart or a
// crash the group is read again and emitted once, whole, and the other
// stream's lines handed off meanwhile are not emitted twice. A group is
// emitted when a line does not continue it, flush_timeout (default 1 s)
// after its last line, or when its file is finished: a trace cut by a
// rotation is two events, the first at the rotated file's end. A group
// held when the agent stops is not emitted; it is read again at the next
// start.
//
// # Tags
//
// DockerInput.Tag is compiled once (internal/record, as is the payload
// conversion of ParseJSON). Without {field:KEY} the rendered tag is cached
// per container and stream. {field:KEY} reads a top-level field of a
// JSON-object payload (whether or not ParseJSON is set: without it, only
// the template's keys are extracted, the rest of the payload is checked but
// not converted); strings render as is, numbers and booleans in JSON form,
// anything else (and a key named like a record key) as "unknown".
//
// # Metrics
//
// Those of package tail, with the label input="<id>" (with multiline:
// sluice_input_multiline_groups_total, _truncated_total, _timeouts_total).
//
// # Known limitations
//
// Those of package tail, and:
//
//   - Docker's compressed rotations (.N.gz) are never read. A rotated file
//     already open is read to its end through its descriptor even after
//     compression removed it; one compressed while the agent was stopped is
//     lost, and counted (as an estimate from its last known size).
//   - A line split across a rotation (its chunks in two files) is emitted
//     as two lines; so is a multiline group (two events).
//   - Only regular files under the root are read: a <id>-json.log that
//     is a symlink out of the root (or a FIFO, a device, a symlinked
//     container directory leading out of it) is refused, logged once and
//     counted in sluice_input_files_refused_total; a symlinked container
//     directory is never descended into, even within the root.
//   - Config.PollInterval keeps its name but is, with inotify working, the
//     period of the fallback scan divided by ten (see tail).
package docker

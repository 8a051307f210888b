// Package docker tails Docker's json-file container logs
// (<root>/<id>/<id>-json.log and its rotated siblings <id>-json.log.N) and
// hands each line to the pipeline as an event.
//
// # Invariants
//
//   - At least once. An offset is committed only after every line before it
//     was accepted by pipeline.Writer.Flush: read a batch, Add each event
//     (Add never fails), Flush, and only then advance the file's handed-off
//     offset. A failed Flush keeps its events in the Writer; the reader
//     retries that Flush with back-off before it reads anything else, so no
//     line read is ever dropped or skipped. The
//     handed-off offset never passes the start of an incomplete partial
//     group or of a physical line still being read. The checkpoint
//     goroutine snapshots the handed-off offsets, calls Router.Sync (fsync
//     of every queue) and only then writes the offsets file. A crash replays
//     lines after the last checkpoint (duplicates), it never skips any.
//   - Files are identified by a fingerprint: the first 1 KiB (fewer while
//     the file is shorter; an empty file is not tracked until it has data),
//     prefix-matched. Path, device and inode are hints only. An open file
//     descriptor pins its inode, so while a file is open its inode is
//     trusted; a closed or saved entry is only ever matched by fingerprint
//     (or, for an unchanged rotated file, by path, inode, size and mtime
//     together), so a reused inode is read as the new file it is.
//   - Rotation by rename: the renamed file is read to its end through the
//     same descriptor, then closed. Per container, files are read oldest
//     first (.N before .N-1 before the live file; a deleted file being
//     finished before all of them), so lines keep their order per container,
//     also after a restart that finds rotations made while stopped.
//   - Copytruncate (the live file shrank below what was read, or its head
//     no longer matches): the copy is found by fingerprint and read on from
//     the saved offset; the truncated file is a new file read from 0. Data
//     that can no longer be read (a file deleted or truncated before it was
//     read, found at start or by a scan) is logged and counted as an
//     estimate in sluice_input_files_lost_bytes_total.
//   - Bounded memory: one reader goroutine serves every file round-robin
//     with one fixed 256 KiB read buffer and one pipeline.Writer, reading at
//     most 256 KiB of one container per turn and flushing after each turn;
//     one checkpoint goroutine. A physical line longer than the buffer is
//     parsed as a stream and never held whole; a joined or single line is cut
//     to MaxLineBytes. Per file, only pending partial groups (at most
//     MaxLineBytes each, one per stream) are held.
//   - Offsets files are written tmp, fsync, rename, fsync of the directory.
//     Entries of files gone for more than an hour are dropped.
//
// # Record layout
//
// Each event's Time is the line's "time" (the read time if it has none).
// Its Record is a msgpack map; the forward input produces the same shape
// from Docker's fluentd log driver:
//
//	"log"            str  the line without its trailing "\n"; partial lines
//	                      joined; cut to MaxLineBytes (on a UTF-8 boundary).
//	                      For a malformed line: the raw JSON line.
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
// number of fraction digits. A line that does not parse is counted in
// sluice_input_parse_errors_total, logged (rate-limited) and emitted with
// the raw line in "log"; reading continues. Blank lines are skipped.
//
// Docker splits lines longer than 16 KiB into chunks whose "log" does not
// end in "\n"; they are joined per stream (stdout and stderr interleave
// independently) and emitted once the chunk ending in "\n" arrives, with
// the first chunk's time. A group with no continuation for
// PartialFlushTimeout is emitted as it is.
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
// With the label input="<id>": sluice_input_lines_total (physical lines),
// sluice_input_bytes_total, sluice_input_parse_errors_total,
// sluice_input_truncated_lines_total, sluice_input_partial_joins_total,
// sluice_input_rotations_total, sluice_input_files_lost_bytes_total and the
// gauge sluice_input_files_tracked (open files).
//
// # Known limitations
//
//   - Discovery polls every PollInterval (no inotify); a new file is picked
//     up within one interval. A file created and deleted between two scans
//     is never seen.
//   - While a partial group is pending, the committed offset stays at its
//     start, so after a crash lines of the other stream read in the
//     meantime are emitted again. A dangling partial at shutdown is not
//     emitted; it is re-read at the next start.
//   - A line split across a rotation (its chunks in two files) is emitted
//     as two lines.
//   - Docker's compressed rotations (.N.gz) are never read. A rotated file
//     already open is read to its end through its descriptor even after
//     compression removed it; one compressed while the agent was stopped is
//     lost, and counted (as an estimate from its last known size).
//   - Two files of one container with identical first bytes (up to 1 KiB)
//     are indistinguishable; Docker's timestamped lines make that
//     practically impossible.
//   - With many containers logging partial lines at once, memory grows by
//     up to MaxLineBytes per pending group.
package docker

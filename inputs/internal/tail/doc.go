// Package tail follows the log files of one file input (Docker json-file,
// later Kubernetes CRI) and hands their lines to the pipeline: discovery,
// file identity, rotation, reading, partial-line joining, the transactional
// hand-off and the offsets checkpoint, and optionally multiline joining
// (Config.Multiline, package internal/multiline). An input supplies three hooks
// (hooks.go): a Format that parses its physical lines, a Layout that says
// which files under its root belong to which source and in which order,
// and per source a Source that builds the records and tags. A Layout may
// also be a SourceFilter, to leave some sources unread (never watched,
// listed or opened). Formats share the allocation-free RFC 3339 parser
// TimeParser.
//
// # Invariants
//
//   - At least once. An offset is committed only after every line before it
//     was accepted by pipeline.Writer.Flush: read a batch, Add each event
//     (Add never fails), Flush, and only then advance the file's handed-off
//     offset (commitFlushed, the one place offsets move forward). A failed
//     Flush keeps its events in the Writer; the reader retries that Flush
//     with back-off before it reads anything else, so no line read is ever
//     dropped or skipped. The handed-off offset never passes the start of
//     an incomplete partial group, of a line held in an open multiline
//     group (the joiner's Pending) or of a physical line still being read.
//     The checkpoint goroutine snapshots the handed-off offsets, calls
//     Router.Sync (fsync of every queue) and only then writes the offsets
//     file: what survives power loss. A crash never skips a line.
//   - What reached the buffer is the record of what was handed off: after
//     every successful Flush, commitFlushed appends the moved offsets to
//     the position journal (inputs/internal/journal; written to the OS, not
//     fsynced, trusted only within the boot that wrote it). A restart after
//     kill -9 applies the journal over the last checkpoint and reads
//     nothing the queues already hold; after a reboot it resumes from the
//     checkpoint (duplicates: at most one CheckpointInterval of lines).
//     See checkpoint.go for how the two are kept consistent.
//   - Held lines are read again, and only they. While one stream holds a
//     group (partial or multiline) the others go on: their lines after
//     the group's start are handed off while the committed offset waits
//     at that start. The saved entry then also records, per holding
//     stream, where its handed-off lines end ("read" and "streams" in
//     checkpoint.go); a restart (or a crash, through the journal) reads
//     from the committed offset and skips, per stream, the lines before
//     that bound, so the held group is read again and emitted once,
//     whole, and no line of the other streams twice. A group held at
//     shutdown is not emitted: the lines written while stopped may
//     continue it.
//   - Files are identified by a fingerprint: the first 1 KiB (fewer while
//     the file is shorter; an empty file is not tracked until it has data),
//     prefix-matched. Path, device and inode are hints only. An open file
//     descriptor pins its inode, so while a file is open its inode is
//     trusted; a closed or saved entry is only ever matched by fingerprint
//     (or, for an unchanged rotated or parked file, by path, inode, size
//     and mtime together), so a reused inode is read as the new file it
//     is.
//   - Rotation by rename: the renamed file is read to its end through the
//     same descriptor, then closed. Per source, files are read oldest first
//     (highest Layout rank first; a deleted file being finished before all
//     of them), so lines keep their order per source, also after a restart
//     that finds rotations made while stopped. A file that is no longer
//     rank 0 (live) is finished at its end (its last line emitted without
//     "\n", its pending partial and multiline groups emitted: a trace cut
//     by a rotation is two events, the second from the newer file) and
//     closed only once it is
//     sealed: the runtime writes to its old descriptor until it reopens
//     (the kubelet renames, then asks containerd to reopen), so a renamed
//     file is sealed when a newer file of its source has data (checked
//     before the read that finishes it), or RotateWait (default 5 s) after
//     its last data; a deleted one (no link left) at once, one that
//     vanished from the listing but still has a name (moved away) after
//     RotateWait. A scan lists a directory again when a listed name
//     vanished before its stat (a rename racing the listing), so a
//     rotated file is not taken for deleted. Until then an incomplete last
//     line waits for its end, and the newer files wait too.
//   - Copytruncate (the live file shrank below what was read, or its head
//     no longer matches): the copy is found by fingerprint and read on from
//     the saved offset; the truncated file is a new file read from 0. Data
//     that can no longer be read (a file deleted or truncated before it was
//     read, found at start or by a scan) is logged and counted as an
//     estimate in sluice_input_files_lost_bytes_total.
//   - Bounded descriptors: at most the open files cap of log files are
//     open at once, per input and, through one pool, for all the inputs of
//     the process together (see Open files). Closing an idle file
//     ("parking" it) keeps everything but the descriptor; it is reopened,
//     verified by fingerprint, when it changed. A file is never parked
//     with data not read yet, nor while it is being finished after a
//     rotation or deletion.
//   - Bounded memory: one reader goroutine serves every source round-robin
//     with one fixed 256 KiB read buffer and one pipeline.Writer, reading at
//     most about 256 KiB of one source per turn and flushing after each
//     turn; one checkpoint goroutine. A physical line longer than the buffer
//     is streamed to the Format (see Long lines) and never held whole by
//     the core; a joined or single line is cut to MaxLineBytes. Per file,
//     only pending partial groups (at most MaxLineBytes each, at most 4,
//     one per stream) and, with multiline, one joiner per stream (at most
//     4; a group holds at most MaxBytes <= MaxLineBytes, a joiner about
//     twice that, buffers over 64 KiB freed after use; dropped when the
//     file is finished) are held.
//   - Only regular files under the allowed roots are read
//     (Config.AllowedRoots, by default the root alone). A log file that is
//     a symlink is resolved (filepath.EvalSymlinks) and read only if its
//     target lies under an allowed root (as /var/log/containers links into
//     /var/log/pods); else it is refused, reason symlink_outside_root. A
//     FIFO, device, socket or directory is refused, reason not_regular. The
//     scan's check and the open cannot be raced apart: the resolved path is
//     opened with O_NOFOLLOW|O_NONBLOCK (a symlink swapped in is not
//     followed, a FIFO never blocks the reader), and the descriptor is
//     fstat-ed and kept only if it is a regular file with the device and
//     inode the scan checked. Symlinked directories are never descended
//     into (no loop can hang a scan, no source is seen twice); one leading
//     out of the allowed roots is refused as symlink_outside_root. Each
//     refusal is logged and counted once per path, until a full scan no
//     longer finds it refused.
//   - Offsets files (<data_dir>/inputs/<id>/offsets.json, format in
//     checkpoint.go) are written tmp, fsync, rename, fsync of the directory.
//     An unreadable one is moved aside to offsets.json.bad and every file is
//     read from its start. Entries of files gone for more than an hour are
//     dropped.
//
// # Goroutines and who owns what
//
// Run's goroutine is the reader. It owns every source and file (except
// file.saved), the Writer, the read buffer, the watcher and the input's
// hooks: Format, Layout and Source methods are only ever called on it, so
// they need no locking and keep scratch buffers. The checkpoint goroutine
// owns only the snapshot it writes (under ckMu). Tail.mu guards what the
// two share: file.saved (the entry the offsets file gets), the sources map
// and each source's files slice, and gen, the count of published changes
// (a checkpoint with nothing new writes nothing). fsnotify's goroutine only
// sends on its channels, which the reader drains.
//
// # Reading
//
// The reader serves the dirty sources round-robin: a turn reads the
// source's active file (its oldest open one), splits it into physical
// lines at "\n", parses, joins, builds events (Source.Event), adds them to
// the Writer and flushes. A source is dirty when a write event names one
// of its files, when a scan saw one of its open files change size or stop
// being live, when a file was just opened, or while its last turn still
// consumed data. A source whose directory has no inotify watch is made
// dirty every 100 ms (polled). When nothing is dirty the reader sleeps
// until an event, the next poll or the next scan.
//
// # Discovery
//
// Source directories sit Layout.Depth levels below the root (those a
// SourceFilter rejects are skipped before they are watched); the source's
// key (its path below the root) is what the offsets file stores (as
// "container_id"). Every directory from the root down is watched (inotify,
// through fsnotify) before it is listed, so nothing created after a
// listing goes unnoticed. A create, rename or removal scans the directory
// concerned at once; a write to a file not tracked yet (it was empty when
// created) scans its source. The full scan of the whole tree remains the
// fallback, every PollInterval while some directory could not be watched
// and every 10 × PollInterval while all are; an inotify queue overflow
// triggers one at once. If inotify is unavailable or adding a watch fails
// (the user's watch limit), that is logged once and the directories
// concerned are polled, as before inotify was used.
//
// # Open files
//
// Descriptors on log files are tokens of one pool shared by every Tail of
// the process (fdcap.go): the docker and CRI inputs draw on the same
// RLIMIT_NOFILE, and the rest of the agent (buffer segments being written
// and read, sockets, offsets and journal files, config files) must still
// be able to open files. The pool's budget is the soft RLIMIT_NOFILE (Go
// raises it to the hard limit at start-up) minus a reserve of
// max(256, 25%), at most half the limit: 1024 gives 768, 4096 gives 3072,
// 65536 gives 49152 (an unlimited limit counts as 2^20). Each input's cap
// is Config.MaxOpenFiles (the max_open_files option), bounded by the
// budget; 0, the default, means the budget. The budget is read again
// when no Tail is running. The gauge sluice_input_files_open_limit shows
// the cap in force, and Run logs it.
//
// A file is opened by the scan (to read its head and match it, see
// Discovery). Needing a descriptor at the cap (or with the pool
// exhausted), the input parks one of its own idle files: the least
// recently active live file (no data read from it for the longest time)
// among those read to their end (checked with fstat: a file with data
// not read yet is never parked, its source is made dirty instead), not
// in a physical line longer than the read buffer, and preferably with no
// partial group pending (a parked one keeps its groups in memory; they
// are still emitted at PartialFlushTimeout). A rotated or deleted file
// being finished is never parked, nor a file of the source being matched.
// A parked file keeps its identity: device, inode, fingerprint, offsets,
// size and mtime (from fstat when it was closed), pending partial groups.
// It is in the offsets file like an open one.
//
// A parked file is reopened when a scan finds it changed: a write event
// for its path (inotify watches its directory, so this is prompt), a
// rename or create in its directory, or the full scan. Unchanged (same
// path, device, inode, size and mtime), it stays closed; otherwise it is
// matched by fingerprint among the source's log files exactly as a saved
// entry is at start: grown at its path, it is reopened and read on from
// its offset; renamed (rotated), it is found under its new name and read
// to its end before the new live file; copied and truncated, the copy
// claims it and is read on from the offset while the truncated file is a
// new file read from 0; shorter than its offset with a matching head, it
// is read again from 0; found nowhere, it is gone and what is known to
// be unread is counted as lost.
//
// If nothing can be parked (every open file has unread data or is being
// finished), the open is deferred: the source's newer log files are not
// opened either (no file is read before an older one), nothing of it is
// counted as lost, and sluice_input_files_open_deferred_total counts it.
// Deferred sources are scanned again as soon as a descriptor may be free
// (a file finished or parked anywhere in the pool, a file of this input
// read to its end), one after the other until one is deferred again, and
// at every full scan. An open failing with EMFILE or ENFILE (the rest of
// the process used more than the reserve) is treated the same way, after
// one idle file is closed and the open tried once more; it is logged,
// rate-limited. A directory listing failing so is retried once after an
// idle file is closed; a source directory that still cannot be listed
// (for want of descriptors, or permission) keeps its files as they are,
// none taken for gone.
//
// Sharing: a running Tail refused by the pool while it holds less than
// its fair share (the budget divided by the running Tails) makes the
// others park idle files down to their share (their readers are woken);
// a Tail woken by a release retries its deferred opens. Tails driven by
// hand (Scan, Drain) draw on the pool without a share.
//
// Other descriptors: fsnotify holds one inotify descriptor per input for
// all its watches (a watch is not a descriptor; it counts against
// fs.inotify.max_user_watches), registered with the Go runtime's poller
// (one epoll descriptor for the process). A scan holds one descriptor at
// a time, while it lists a directory (os.ReadDir closes it); Lstat, Stat
// and EvalSymlinks hold none. The position journal holds one, the
// checkpoint two for a moment (the offsets file and its directory). All
// of these come out of the reserve.
//
// # Long lines
//
// The core does the splitting: a physical line for which a full read
// buffer holds no "\n" is handed to a LongLine from Format.Long, in pieces
// as they are read (never containing "\n"), and finished with End at its
// "\n". The LongLine keeps what it needs within about MaxLineBytes. So a
// format whose fields can follow a long payload parses as a stream
// (json-file: "stream" and "time" may come after a megabytes-long "log"),
// and one with a fixed header (CRI: "<time> <stream> <P|F> ") simply
// keeps the header and the first MaxLineBytes of the content.
//
// # Joining
//
// Format.Parse marks a line Partial when its message continues in the next
// line of the same stream (json-file: "log" without its "\n"; CRI: P).
// Partial lines are joined per stream (stdout and stderr interleave
// independently) and emitted with the first line's time once a line that
// is not partial arrives. A group with no continuation for
// PartialFlushTimeout is emitted as it is. A line the Format cannot parse
// is counted in sluice_input_parse_errors_total, logged (rate-limited) and
// emitted raw, with an empty stream and the read time; blank lines are
// skipped.
//
// # Multiline
//
// With Config.Multiline, each line coming out of partial joining (cut to
// MaxLineBytes) goes to the joiner of its file and stream
// (internal/multiline; created on the stream's first line, at most 4 per
// file, a fifth stream's lines pass alone), tagged with its start offset
// (a partial group's first piece's) and the offset after it. What the
// joiner emits takes the line's place: Source.Event builds the record of
// each event, its Content the group's lines joined with "\n", its time
// the first line's; a line no rule takes passes through in the same call,
// without a copy or an allocation. Malformed lines are never joined.
//
//   - The committed offset stays at or before every joiner's Pending (see
//     the invariants: held lines are read again after a restart, and
//     only they).
//   - FlushTimeout: the reader calls Flush on every joiner of every file
//     where it expires partial groups, at least every 100 ms while a
//     group is held (the loop wakes for it as for partial groups), so a
//     group is emitted between FlushTimeout and FlushTimeout + 100 ms
//     after its last line, parked files included.
//   - A file finished (no longer live, sealed and read to its end) has its
//     groups flushed at once (Flush with force) after its partial groups,
//     and its joiners dropped; the newer file starts with new ones.
//   - MaxBytes defaults to min(1 MiB, MaxLineBytes) and is cut to
//     MaxLineBytes: a group is never longer than a line may be.
//
// # Metrics
//
// With the label input="<id>": sluice_input_lines_total (physical lines),
// sluice_input_bytes_total, sluice_input_parse_errors_total,
// sluice_input_truncated_lines_total, sluice_input_partial_joins_total,
// with multiline sluice_input_multiline_groups_total (events of two lines
// or more), sluice_input_multiline_truncated_total (groups cut at
// MaxBytes or MaxLines, the rest of them dropped) and
// sluice_input_multiline_timeouts_total (groups emitted by FlushTimeout),
// sluice_input_rotations_total, sluice_input_files_lost_bytes_total,
// sluice_input_files_refused_total (with reason="symlink_outside_root" or
// "not_regular"; see the invariants), for the open files cap
// sluice_input_files_closed_idle_total (files parked),
// sluice_input_files_reopened_total (parked files reopened),
// sluice_input_files_open_deferred_total (opens deferred at the cap), and
// the gauges sluice_input_files_open (log files open),
// sluice_input_files_open_limit (the cap) and sluice_input_files_tracked
// (files followed: open and parked).
//
// # Known limitations
//
//   - A file created and deleted before the reader handles its create
//     event (or, unwatched, between two scans) is never seen.
//   - While a partial or multiline group is pending, the committed offset
//     stays at its start: a restart re-reads (and skips, see the
//     invariants) the other streams' lines since. A dangling partial or a
//     held group at shutdown is not emitted; it is re-read at the next
//     start. After a reboot the checkpoint's bounds are used, which match
//     its offset: what is re-read is at most one CheckpointInterval, as
//     without groups.
//   - A trace split across a rotation (its lines in two files) is emitted
//     as two events: the rotated file's groups are flushed at its end.
//   - A line split across a rotation (its pieces in two files) is emitted
//     as two lines.
//   - A rotated file already open is read to its end through its
//     descriptor even after it was removed; one removed (or compressed,
//     which the Layout does not list) while the agent was stopped is lost,
//     and counted (as an estimate from its last known size).
//   - Two files of one source with identical first bytes (up to 1 KiB) are
//     indistinguishable; timestamped lines make that practically
//     impossible.
//   - With many sources logging partial lines at once, memory grows by up
//     to MaxLineBytes per pending group.
//   - Every write to a watched log file is an inotify event, which fsnotify
//     turns into a Go value (with a path string); under heavy logging that
//     costs CPU in fsnotify's goroutine. The reader handles at most 1024
//     events between two rounds.
//   - Data written to a parked file that is then renamed and deleted, or
//     truncated without a copy, before a scan reopens it is lost, and
//     counted only as far as a scan saw it (the estimate is from the last
//     known size, normally the one at parking). The write event that
//     reopens a file normally comes first: the window is the reader's
//     delay in handling events.
//   - With more files growing at once than the cap, files are parked and
//     reopened in turn: a few system calls per reopen (a directory scan,
//     open, a 1 KiB read), and each growth waits for its source's scan.
//     Without inotify, a parked file's growth is seen only by the full
//     scan (every PollInterval), as it is not polled.
//   - A file copied (not truncated) under a rotated name while parked is
//     taken for its rotation: the copy is read on from the offset and
//     finished, and the live file, whose head matches, is ignored until
//     its content changes (the same as for a saved entry at start).
//   - The fair share is coarse: a Tail above its share parks only idle
//     files, so one whose files all have unread data keeps them until
//     they are read.
//   - A full scan costs a few system calls per source directory (about
//     35 µs each on the test VM: 3,000 sources take ~110 ms every 10 s, 1.1%
//     of a core). With watches unavailable, scans run every PollInterval and
//     every polled source costs a read every 100 ms, as before inotify.
package tail

// Package forward is the Fluentd Forward protocol v1 input: a server that
// Docker's fluentd log driver, ECS FireLens, Fluent Bit, Fluentd and any
// Forward client can send to, on TCP (default 127.0.0.1:24224, optionally
// TLS), on a unix socket, with the UDP heartbeat on the TCP port number.
//
// # Invariants
//
//   - An ack means "on disk": it is sent only after the events of its
//     request were appended to every queue they route to AND an fsync
//     covering them finished. Each connection goroutine decodes every
//     complete request in its read buffer into its own pipeline.Writer,
//     calls Writer.Flush, then Writer.Sync (group commit: every connection
//     waiting on a queue shares one fsync, started at once rather than at
//     the fsync interval), and only then writes the {"ack": chunk} replies
//     of those requests (the chunk echoed byte for byte). Requests without
//     a chunk are not waited for. ack_after: write drops the fsync wait:
//     the ack then survives kill -9, not power loss. Under overflow
//     "drop_oldest" a full queue may still drop acked chunks later (counted
//     in sluice_buffer_dropped_*): an ack promises storage, not that the
//     queue's size cap will never apply. A line held in memory (a partial
//     fragment, a line in an open multiline group) is never covered by an
//     ack: see "Acks and partial lines" and "Acks and multiline".
//   - Nothing is lost while a queue refuses appends (full disk, overflow
//     "block" at its cap): Flush keeps what it did not append, the
//     connection retries it with back-off and reads nothing meanwhile, so
//     the client is held back. Only when the connection's context ends
//     (5 s into shutdown) does it give up: the acks stay withheld (a client
//     that asked for them resends) and the held events are counted in
//     sluice_input_discarded_events_total.
//   - Nothing is acknowledged that a later stage refuses: an event whose
//     entry is larger than the smallest buffer segment can store
//     (pipeline.Router.MaxEventBytes, derived from segment_bytes), or whose
//     record nests maps and arrays deeper than MaxRecordDepth (65), is
//     refused before Add, counted in
//     sluice_input_refused_events_total{reason="event_bytes"|"nesting_depth"}
//     and logged (rate-limited); the other events of its request are stored
//     and the request is acked, as for invalid events.
//   - Requests are batched across the read buffer: Docker's driver writes one
//     Message per event, and all the events that arrived together are added
//     and flushed once (a request with a chunk still gets its ack in the
//     same round). A flush happens whenever the buffer holds no further
//     complete request.
//   - Memory is bounded per connection and across connections. Per
//     connection: the read buffer starts at 64 KiB and grows only while one
//     request does not fit, never beyond max_message_bytes (a request
//     announcing more is refused as soon as its header is read, before its
//     bytes arrive); decompression stops at max_decompressed_bytes (a gzip
//     bomb is refused); at most 16 partial lines of at most
//     max_partial_bytes each are held, and with multiline at most 16
//     streams' groups of at most max_bytes each (see Memory budget).
//     Buffers shrink back as soon as they are empty. Across connections:
//     what they buffer beyond a fixed baseline comes out of one memory
//     budget, max_buffered_bytes (see Memory budget). Refusals are logged,
//     counted (sluice_input_limit_violations_total{limit=...}) and close
//     the connection after the earlier requests were flushed and acked;
//     the refused request is never acked.
//   - Accepting never waits on an output: listeners are bound when Run
//     starts (before anything else happens), a connection that finds no
//     slot is closed at once (below), and with the default drop_oldest
//     overflow a queue never blocks a connection.
//   - Connections that send nothing cannot lock clients out (see
//     Connection slots).
//   - Nothing is dropped silently: invalid events (time not an integer or
//     EventTime, record not a map, tag not a string) are skipped like
//     Fluentd's skip_invalid_event, counted and logged (rate-limited), and
//     their request is still acked, as in_forward does, because resending
//     cannot fix them. Non-array values are skipped and counted. Bytes that
//     are not msgpack, and a corrupt compressed payload, close the
//     connection without an ack for that request.
//   - Run returns only after every connection goroutine exited. At shutdown
//     each connection reads on for 250 ms, flushes, sends its last acks and
//     closes; after 5 s more, stuck ones are cut.
//
// # Protocol
//
// All four modes (Message, Forward, PackedForward, CompressedPackedForward
// with gzip, several members, or zstd), integer and EventTime times, str or
// bin entries, option maps present, absent or empty, compressed "text",
// Fluent Bit's [[time, metadata], record] entries (metadata dropped), and
// the msgpack nil heartbeat are decoded by internal/wire. Requests are
// parsed in place in the read buffer; when one is incomplete, a resumable
// framer of this package follows it as more bytes arrive, so a large
// request that trickles in is scanned once, not once per read, and one that
// announces more than max_message_bytes is refused from its header.
//
// With security configured, the handshake follows Fluentd 1.14's in_forward
// byte for byte: HELO {nonce: 16 random bytes, auth: 16 random bytes,
// keepalive: true}, then the PING is checked for shape, shared key digest,
// and (with users) username and password digest, answered by
// ["PONG", true, "", self_hostname, digest], or by
// ["PONG", false, "invalid ping message" | "shared_key mismatch" |
// "username/password mismatch", "", ""] and a close.
//
// # Connection slots
//
// TCP (and TLS) connections share max_connections slots (default 1024);
// the unix socket has max_unix_connections (default 1024) of its own, so
// TCP clients cannot take the slots of the socket Docker's driver and
// FireLens use. One remote IP address holds at most
// max_connections_per_source (default 128) TCP connections; connections
// from the node itself are exempt: from a loopback address, or from the
// very address they connect to (what a local process such as dockerd gets
// when it dials one of the node's addresses). Every container's driver
// connection comes from there, 200 containers are 200 connections of that
// one "source", so a per-source limit would break a busy node; they are
// bounded by max_connections alone. Containers on a bridge network that
// dial the host have their own addresses and are counted each.
//
// Idle connections are not timed out while there is room. Docker's driver
// (fluent-logger-golang) opens one connection at container start (or at
// its first line, with fluentd-async) and keeps it open and idle between
// lines, for hours if the container is quiet; it only learns that the
// agent closed it when a later write fails, and in the default mode
// without acks a write into a connection closed with a FIN "succeeds" and
// that line is lost. So a connection is closed only to make room, when a
// new one finds its pool (or its source's slots) full, choosing:
//
//  1. a connection that never completed a request (any valid Forward
//     request, the nil heartbeat included) or, with security, the Forward
//     handshake: the one whose last byte (or connect) is oldest first,
//     however young it is. Silent floods, slow-loris requests and
//     unauthenticated peers go first; a new connection is last in that
//     line, so even against a flood that reconnects what it loses it has
//     as many evictions as its pool has slots to send its first request;
//  2. else one that completed a request and has sent nothing for
//     idle_timeout (default 60s) while waiting for data (never one busy
//     with a request), the longest idle first;
//  3. else none: the new connection is refused.
//
// The closed connection is reset (SO_LINGER 0), not closed with a FIN, and
// so is a refused one: after a reset the client's next write fails at
// once, and fluent-logger-golang reconnects and sends that line again,
// instead of losing it into a half-closed connection. (On the unix socket
// a write to a closed peer fails at once anyway.) A never-used driver
// connection may thus be evicted during a flood and its first line is
// still delivered; once it has sent, it is behind every silent
// connection in the order. Evictions are counted in
// sluice_input_connections_evicted_total{reason="unused"|"idle"},
// refusals in sluice_input_limit_violations_total{limit="connections" |
// "unix_connections" | "connections_per_source"}, and both logged at most
// every 10 s (with how many were not logged).
//
// Without tls or security nothing is expected of a client before its first
// event, so there is no first-byte deadline: a container that stays quiet
// for minutes after it started keeps its connection (until a flood needs
// the slot, above). With tls, the TLS handshake, and with security, the
// Forward handshake too (HELO to PING), must complete within
// handshake_timeout (default 10s) of the connect, or the connection is
// closed (sluice_input_handshake_failures_total and
// sluice_input_connections_evicted_total{reason="handshake_timeout"});
// unauthenticated connections are evicted first before that, so peers that
// reconnect every handshake_timeout cannot keep the input full either.
// Failed handshakes are logged at most every 10 s.
//
// # Memory budget
//
// All connections of the input share one budget, max_buffered_bytes.
// By default (0) it is a quarter of the container's memory limit (cgroup
// v2 memory.max, or v1 memory.limit_in_bytes; the smallest from the
// agent's cgroup up to the root of the hierarchy it sees), at least 4 MiB
// and at most 1 GiB, and 256 MiB when there is no limit: 64 MiB in the
// shipped manifests' 256 MiB pod. The agent also sets the Go runtime's
// soft memory limit (GOMEMLIMIT) to 90% of the container's limit unless
// GOMEMLIMIT is set, so that garbage is collected before the kernel's OOM
// killer steps in. Each forward input has its own budget; set it
// explicitly to share a pod's memory between several.
//
// A connection reserves from the budget, before allocating it:
//
//   - the growth of its read buffer beyond 64 KiB, when a request does not
//     fit: the whole size the request is known to have (a PackedForward
//     payload's bin header gives it at once; a Forward array's size is
//     learnt as it arrives, and the buffer doubles), released as soon as
//     the buffer is empty again. A request whose known size exceeds the
//     whole budget is refused as soon as that is known;
//   - the output of a CompressedPackedForward request: at first up to the
//     connection's last expansion ratio (8 at first) times the request's
//     size, at least 64 KiB. If it is larger, a gzip payload is
//     decompressed once into nothing, only to measure it (a gzip bomb is
//     refused there, having allocated nothing; this costs a second
//     decompression for that request only), and its exact size is
//     reserved; a zstd payload is tried again with four times more (twice
//     that: its history window is counted too). Released when its events
//     were handed on.
//
// The events a request yields are handed to the queues every 1 MiB, so the
// Writer's copy of a large request stays small.
//
// A reservation that does not fit waits: reading from that connection
// pauses, so TCP back-pressure holds its client back. Waiters are served
// first fit: connections that already hold budget (a request that turned
// out larger than first known), then connections that completed a request
// before, then those that never did (what a flood is made of); within
// each, the smallest first. A waiter that is not served within
// buffer_wait_timeout (default 10s), or whose request alone needs more
// than the whole budget, is refused: its connection is reset (a client's
// next write fails at once), the request is not acked (a client that asked
// for acks sends it again), the reason ("timeout", "too_large", "deadlock"
// or "stalled") is logged at most every 10 s and the refusal counted in
// sluice_input_limit_violations_total{limit="memory"}. A connection that
// holds budget for an incomplete request and sends nothing for
// buffer_wait_timeout is closed the same way ("stalled"), so a client
// that announces a large request and stops halfway holds the budget only
// that long.
//
// It cannot deadlock: a connection that holds nothing waits holding
// nothing; one that holds budget and needs more has priority over those
// that hold none; and if every connection holding budget is waiting for
// more than is free (none of them can finish), the youngest of them is
// refused at once ("deadlock") and its budget goes to the others.
//
// Outside the budget, per connection: 64 KiB of read buffer, up to 64 KiB
// of decompression output kept between requests, the Writer's encoded
// events (at most about 1 MiB plus one event, per output, while a request
// is handled; the Writer keeps up to 4 MiB of recycled buffers), partial
// lines, multiline groups, the goroutine, and the kernel's socket buffers.
// So the input's memory is at most max_buffered_bytes plus about 130 KiB
// per open connection (and the Writer's buffers per busy one, and the
// partial lines and multiline groups it holds), plus garbage not yet
// collected, which GOMEMLIMIT keeps in check. With 16 concurrent gzip
// bombs and 40 clients holding half-sent 15 MB requests against the
// default budget of a 256 MiB pod (64 MiB) and GOMEMLIMIT at 230 MiB, the
// agent's live heap stays around 60 to 100 MB and its peak RSS under
// 240 MiB (1.4 GB before the budget) while well-behaved clients' events
// all arrive (test TestMemoryBudgetRSS in test/e2e;
// TestMemoryBudgetUnderAttack here).
//
// Multiline groups are outside the budget, as partial lines are: a
// connection holds them while idle, between requests (up to
// flush_timeout), and the budget's deadlock rule relies on its holders
// being busy with a request. They are bounded per connection instead: at
// most 16 streams (a 17th closes the least recently used one's group),
// each holding at most max_bytes of lines, plus the records of its first
// line and of up to 4 blank lines it holds, without their logs (a record
// with more than 64 KiB besides its log is not joined); the joiner also
// keeps the buffer of the last group it emitted, up to max_bytes, until
// its next one (one idle after a group over 64 KiB is dropped). So at most
// 16 x (2 x max_bytes + 320 KiB), about 37 MiB with the default max_bytes
// of 1 MiB, on a connection interleaving 16 runaway traces; a Docker
// driver connection holds one or two streams' groups, usually a few KiB.
//
// # Records
//
// A record of Docker's fluentd driver (a map with str container_id, source
// and log; formats.md §2.1) is stored in the docker input's shape:
//
//	log             the line, no trailing newline (partial lines joined)
//	stream          "stdout" or "stderr" (the driver's source)
//	container_id    full id
//	container_name  without the leading "/" (the short id if absent)
//	labels          map of the driver's extra attributes (its labels,
//	                labels-regex, env and env-regex log-opts), sorted by
//	                key; absent when there are none
//	ecs_cluster, ecs_task_arn, ecs_task_definition, ec2_instance_id
//	                FireLens fields, kept top-level as sent
//	partial_*       only on a fragment that could not be joined (below)
//	...             with parse_json, the fields of a JSON object log
//	                payload, top-level; keys already present (and repeated
//	                payload keys) are dropped, the first wins; log is kept
//
// The driver cannot tell labels from env variables, so both land in labels.
// Any other record (Fluent Bit, Fluentd, FireLens through another router)
// is stored as sent, byte for byte; with parse_json its JSON log payload's
// fields are appended the same way. The event time is the entry's time.
//
// Partial lines: Docker splits lines over 16 KiB into fragments with
// partial_message "true", partial_id, partial_ordinal and partial_last. They
// are held per partial_id and stored as one line when partial_last "true"
// arrives (sluice_input_partial_reassemblies_total), with the first
// fragment's time and fields. A line longer than max_partial_bytes is
// truncated (counted as limit partial_bytes). If the last fragment does not
// come within partial_timeout, or the connection ends, what arrived is
// stored as the line (sluice_input_partial_incomplete_total).
//
// Multiline (multiline:, the docker input's section: built-in rules java,
// go, python, ruby, javascript, custom start and continue regexes,
// flush_timeout, max_bytes, max_lines; package internal/multiline): the
// log of each record, after partial lines are joined and before
// parse_json or the parser (the docker input's order), goes to a joiner
// per connection and stream: the client's tag with the record's
// container_id and source (stdout or stderr) when it has them. Docker's
// driver opens one connection per container, but FireLens and Fluent Bit
// multiplex containers on one, so the stream comes from the record, not
// the connection. A joined event keeps its first line's record (a Docker
// record's labels, FireLens fields, any other record's fields in their
// order) and time, with log replaced by the lines joined with "\n"; a line
// no rule takes is stored as it would be without multiline, and blank
// lines a group held and then let go keep their own records and times. A
// held group is stored when a line ends it; flush_timeout (default 1s)
// after its last line, the connection's read deadline waking it with no
// further byte (sluice_input_multiline_timeouts_total); when its
// connection ends or the input stops (never dropped); or when a 17th
// stream on the connection needs a joiner, the least recently used one's
// group. A group over max_bytes (default 1 MiB) or max_lines is stored
// truncated once, the rest of it dropped, counted and logged
// (rate-limited). Not joined, and stored after what their stream holds:
// records without a str log, records with more than 64 KiB besides their
// log, and fragments stored as such (below).
//
// Acks and partial lines: a fragment held in memory is not durable, so it
// must not be acked; but Docker's driver with fluentd-request-ack waits for
// each fragment's ack before it sends the next one, so withholding the ack
// until the line is complete would stall the container forever. A fragment
// that arrives in a request with a chunk is therefore never held: it is
// stored at once, as its own event that keeps its partial_* fields (after
// what was held for the same partial_id, if anything), and then acked
// (sluice_input_partial_unjoined_total). Reassembly happens when no ack is
// requested: Docker's default, and FireLens.
//
// Acks and multiline: for the same reason, a line held in an open group
// is not durable, so it must not be acked; but Docker's driver with
// fluentd-request-ack (fluent-logger-golang) waits for each ack before it
// sends the next line, so withholding the ack until the group ends would
// stall the container for flush_timeout per line. The groups that a
// request with a chunk gave lines to are therefore closed at the end of
// that request: their events are stored, then flushed, and only then is
// the request acked (sluice_input_multiline_cut_total{reason="ack"}
// counts the groups still open there). Lines are joined only within such
// a request: a Forward or PackedForward request carrying a whole trace is
// joined, but Docker's driver with acks sends one line per request, so
// none of its lines is joined. Joining across requests happens when no
// ack is requested: Docker's default, and FireLens.
//
// Tags: the client's tag, or the tag template (Tag) with {tag}, {name},
// {id}, {short_id}, {stream}, {label:KEY}, {field:KEY} (a record field, or a
// field of a JSON log payload even without parse_json: then only the
// template's keys are extracted from it); a placeholder without a value
// renders as "unknown". Templates and the JSON payload conversion are
// internal/record's, shared with the docker input.
//
// # Metrics
//
// All labelled input="<id>": sluice_input_connections (gauge),
// sluice_input_connections_total, sluice_input_bytes_total,
// sluice_input_requests_total, sluice_input_events_total (stored events),
// sluice_input_acks_total, sluice_input_invalid_events_total,
// sluice_input_invalid_requests_total, sluice_input_protocol_errors_total,
// sluice_input_handshake_failures_total (TLS and Forward handshakes),
// sluice_input_partial_reassemblies_total,
// sluice_input_partial_incomplete_total, sluice_input_partial_unjoined_total,
// sluice_input_multiline_groups_total (events of two lines or more),
// sluice_input_multiline_truncated_total (groups cut at max_bytes or
// max_lines), sluice_input_multiline_timeouts_total (groups stored by
// flush_timeout), sluice_input_multiline_cut_total{reason="ack" |
// "max_groups" | "close"} (open groups stored at the end of a request with
// a chunk, to make room for another stream, at the connection's end),
// sluice_input_connections_evicted_total{reason="unused" | "idle" |
// "handshake_timeout"},
// sluice_input_limit_violations_total{limit="message_bytes" |
// "decompressed_bytes" | "connections" | "unix_connections" |
// "connections_per_source" | "partial_bytes" | "memory"}, and for the
// memory budget sluice_input_memory_budget_bytes (max_buffered_bytes),
// sluice_input_memory_reserved_bytes, sluice_input_memory_waiting
// (connections waiting for budget, gauges) and
// sluice_input_memory_waits_total (reservations that had to wait).
//
// # Known limitations
//
//   - Under overflow "block", a full queue stalls the connections that feed
//     it (and so Docker's driver, and the container): that is the policy.
//   - JSON-encoded Forward requests (a connection whose first byte is '{' or
//     '[') are refused with a logged error; only msgpack is supported.
//   - TLS applies to the TCP listener only; the unix socket is plain.
//   - Per-client shared keys, allow_anonymous_source and deny_keepalive of
//     Fluentd's <security> are not supported: one shared key, any source,
//     keepalive always on.
//   - Reassembly is per connection: if the driver reconnects in the middle
//     of a long line, the fragments before and after are stored as two
//     incomplete lines. So is multiline joining: a trace the driver sends
//     over two connections is stored as two events. With acks, lines are
//     joined only within a request (see Acks and multiline).
//   - Under attack the budget is shared with the attacker: clients that
//     hold it (a large request sent slowly, within buffer_wait_timeout
//     between bytes) can make legitimate large requests wait and be
//     refused; they are resent by clients that asked for acks. Requests
//     of up to 60 KiB (decompressed: 64 KiB) need no budget and are never
//     refused for memory: Docker's driver sends one line of at most 16 KiB
//     per request.
//   - The budget counts what the input buffers, not the rest of the agent
//     (buffers, outputs), nor the per-connection baseline above, nor
//     garbage awaiting collection; GOMEMLIMIT bounds the latter. Kernel
//     socket buffers of connections whose reading is paused are charged
//     to the pod as well (a few hundred KiB each at most).
//   - Eviction cannot protect against a peer that behaves like a client: one
//     that sends a valid request (a nil heartbeat is enough) on each of its
//     connections at least every idle_timeout holds them. From other hosts
//     max_connections_per_source bounds it; local processes are trusted
//     with TCP on loopback (the unix socket, 0660, is the path to prefer).
//   - A reset can be lost on a real network (it is not retransmitted);
//     then a remote client's first write after an eviction can still be
//     lost, as with any close. On loopback and the unix socket it is not.
//     A line written in the instant the agent evicts a connection idle for
//     idle_timeout can be lost the same way (without acks).
//   - Data a client sent that was still in kernel buffers when the agent
//     stops (after the 250 ms drain) is not read: clients that request acks
//     resend it; Docker's driver without acks does not.
package forward

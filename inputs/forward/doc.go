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
//     queue's size cap will never apply.
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
//   - Memory is bounded per connection: the read buffer starts at 64 KiB and
//     grows only while one request does not fit, never beyond
//     max_message_bytes (a request announcing more is refused as soon as its
//     header is read, before its bytes arrive); decompression stops at
//     max_decompressed_bytes (a gzip bomb is refused); at most 16 partial
//     lines of at most max_partial_bytes each are held. Buffers shrink back
//     when idle. Refusals are logged, counted
//     (sluice_input_limit_violations_total{limit=...}) and close the
//     connection after the earlier requests were flushed and acked.
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
// sluice_input_connections_evicted_total{reason="unused" | "idle" |
// "handshake_timeout"} and
// sluice_input_limit_violations_total{limit="message_bytes" |
// "decompressed_bytes" | "connections" | "unix_connections" |
// "connections_per_source" | "partial_bytes"}.
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
//     incomplete lines.
//   - Peak memory is bounded per connection, so the total is bounded by
//     max_connections plus max_unix_connections times about
//     max_message_bytes plus max_decompressed_bytes in the worst case.
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

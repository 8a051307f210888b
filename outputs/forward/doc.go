// Package forward is the "forward" output: a Fluentd Forward protocol v1
// client that sends the chunks of one disk queue to Fluentd, Fluent Bit or
// Sluice servers.
//
// # Invariants
//
//   - It is built on the delivery engine (outputs/internal/delivery): one
//     engine worker per in-flight slot (max_in_flight × servers), one
//     request per queued chunk.
//   - A chunk is settled with its queue only after the server
//     answered {"ack": id} for it (require_ack, the default). With
//     require_ack false a chunk is acked once its bytes were written to the
//     socket: a server crash or a rejected request then loses it, which is
//     the weaker guarantee that setting asks for.
//   - Each chunk is one request [tag, bin(entries), {"size", "chunk"}]
//     (PackedForward), or with compress gzip one gzip member and
//     "compressed": "gzip" (CompressedPackedForward). The entries are sent
//     byte for byte as the queue stored them ([EventTime, record], the form
//     released Fluentd accepts); they are never decoded.
//   - The chunk id is wire.ChunkID(wire.NewChunkID(output id, segment,
//     offset)), base64 of 16 bytes of SHA-512 over the chunk's queue
//     position: a chunk resent after a failure or a restart carries the
//     same id.
//   - Memory is bounded by the engine: MaxInFlight chunks per server,
//     summed over the servers, are being sent, plus the engine's bound on
//     chunks held (delivery.max_in_flight_bytes). Chunks in flight are kept
//     in memory and resent from there when their connection fails; the
//     queue is rewound only when Run returns.
//   - Nothing waits forever: dial, TLS and the handshake share
//     ConnectTimeout, every write has a deadline of AckTimeout, and the
//     oldest unacked chunk of a connection has AckTimeout to be acked
//     before the connection is declared broken, closed, and all of its
//     in-flight chunks are retried.
//
// # Scheduling and health
//
// One goroutine per server owns its connection (one per server; several
// chunks in flight, acks matched by id in any order). A separate loop owns
// the schedule: the engine's workers (Send) hand it one request each, and
// it gives each to a server chosen by smooth weighted round-robin among
// the healthy active servers that have a free in-flight slot, then reports
// the server's verdict back to the waiting Send. Standby servers get chunks only while
// every active server is down.
//
// A server is down after a failed connect, TLS or security handshake, a
// failed write, an ack timeout, or a connection closed with chunks in
// flight. A down server is probed every HeartbeatInterval by a connect plus
// handshake (as Fluentd's heartbeat_type transport); a successful probe
// marks it up and becomes its connection. Up and down transitions are logged
// once each, never per chunk.
//
// A chunk whose send failed is retried by the engine after an exponential
// back-off with full jitter (uniform in [0, min(RetryMax,
// RetryInitial·2^(n-1))] after the n-th failure), on whichever server is
// picked then. MaxRetries 0 retries forever (the data waits on disk);
// MaxRetries n gives up after n+1 failed sends: the events go to the
// output's dead-letter queue with reason "max_retries" (dropped, counted,
// when it is disabled), and the queue counts them as dead-lettered, never
// as delivered. Chunks handed to a server that went down before writing
// them are re-dispatched at once and do not count as failures.
//
// When the server's HELO says keepalive false, every chunk gets its own
// connection and handshake, one request each.
//
// # Discovery
//
// With a discovery section, servers also come from DNS (SRV, or A/AAAA of
// host:port), re-resolved every interval by one goroutine that hands each
// result to the schedule loop; see discovery.go for the record mapping.
// A new address joins the balancing at once. A vanished one is drained: no
// new chunk; those it holds are acked, or failed and retried elsewhere by
// the engine; with none left its worker stops and it is removed. A failed
// resolution keeps the last known set (logged, counted in
// sluice_forward_discovery_errors_total). Static servers are never
// removed. The engine's workers are max_in_flight × (static servers +
// max_servers).
//
// # Known limitations
//
//   - Delivery is at least once: a chunk whose ack was lost (connection
//     broken after the server stored it, ack timeout, restart) is sent
//     again. At most MaxInFlight duplicates per broken connection.
//   - When every healthy server is at MaxInFlight, a chunk goes to whichever
//     server frees a slot first, so under saturation the split follows the
//     servers' ack rates rather than their weights (a slow server gets
//     less). Weights hold exactly while servers keep up.
//   - Chunks are not resent in their original order after a failure.
//   - A chunk the server always rejects (for example, larger than Fluent
//     Bit's buffer_max_size, which makes it close the connection) is retried
//     forever unless MaxRetries is set.
//   - Only gzip compression; zstd (Fluentd ≥ 1.19) is not offered.
package forward

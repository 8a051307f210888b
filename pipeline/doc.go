// Package pipeline routes events from inputs to the per-output disk queues.
//
// # Invariants
//
//   - An Event is already in wire form: its Record is a msgpack map and its
//     Time is nanoseconds since the epoch. Routing never decodes the record
//     except to look up one field for a route condition.
//   - Each input goroutine owns one Writer. A Writer encodes every routed
//     event once, as a Forward entry [EventTime, record], into a chunk builder
//     per (output, tag); no locks are taken until Flush.
//   - Writer.Flush appends every pending chunk to its output's queue and
//     returns only when every queue accepted it (written to the OS, fsynced
//     when the queue's policy is "always"). An input may consider its data
//     handed off only after Flush returned nil; it commits its own offsets (or
//     sends Forward acks) after that, and after Router.Sync for offsets that
//     must survive power loss.
//   - Nothing is dropped silently: an event that matches no route and no
//     default output is counted in sluice_events_unrouted_total; an event
//     too large for any chunk of an output's queue (its frame must fit one
//     segment) is refused for that output only, counted in
//     sluice_events_too_large_total and logged; drops caused by a full
//     queue are counted by the queue itself.
//   - Chunks are cut before they pass the output's chunk_bytes, so only a
//     single event larger than chunk_bytes makes a larger chunk. Encode
//     buffers kept between Flushes are bounded (4 MiB per Writer).
//
// # Known limitations
//
//   - With overflow "block", a full queue stalls the inputs that feed it, and
//     with them the other outputs those inputs feed. That is the policy's
//     purpose; "drop_oldest" (the default) never stalls.
package pipeline

// Package pipeline routes events from inputs to the per-output disk queues.
//
// # Invariants
//
//   - An Event is already in wire form: its Record is a msgpack map and its
//     Time is nanoseconds since the epoch. Routing never decodes the
//     record: a route's field/value and when: (package internal/cond) read
//     the fields they test in place, without allocating.
//   - Processors (package processors, NewRouter's WithProcessors) run in
//     Writer.Add before routing, on the input's goroutine: in order, each
//     on the event the previous left; a dropped event is counted by its
//     processor and not routed; a rewrite_tag re-runs the list under the
//     new tag and the routes see the final tag. Which processors can apply
//     is cached per tag with the routes, so for a tag none matches Add
//     costs what it did without processors. A changed record is encoded
//     once, in the Writer's reused buffers, and that is what is stored.
//     Throttle budgets belong to the Router and are shared by all its
//     Writers; a Writer that moves to another Router (Swap) uses the new
//     Router's processors and budgets from its next batch on.
//   - Router.DryRun shows an event's way through the processors and the
//     routes without touching a queue (agent route).
//   - Each input goroutine owns one Writer. A Writer encodes every routed
//     event once, as a Forward entry [EventTime, record], into a chunk builder
//     per (output, tag); no locks are taken until Flush.
//   - The hand-off is transactional. Writer.Add never fails, blocks or
//     touches a queue: a chunk that would pass its output's chunk size is
//     sealed and held. Writer.Flush is the one step that appends, and the
//     one that can fail: it appends every held chunk in the order the chunks
//     were cut and returns nil only when every queue accepted them (written
//     to the OS; fsynced when the queue's policy is "always"). A failed Flush
//     keeps what it did not append, in order; the next Flush continues with
//     exactly that, so every chunk is appended once and none is skipped.
//     What a Writer holds is bounded by what its input adds between two
//     successful Flushes, which is why inputs stop reading while a Flush
//     fails.
//   - An input commits a position (a file offset) or acknowledges data (a
//     Forward ack) only for events added before a Flush that returned nil.
//     For acks, it then calls Writer.Sync, which waits for an fsync that
//     covers the chunks this Writer appended (group commit across every
//     waiter of the queue; no interval timer): an ack means "on disk".
//     File offsets are made durable by their input's own checkpoint, which
//     syncs the queues (Router.Sync) before it writes them.
//   - After a failed Flush an input retries the same data: it keeps its
//     position where it was committed, does not read on, and calls Flush
//     again with back-off. An input that must give up (its client is gone,
//     shutdown) calls Writer.Discard and counts what it dropped; a file
//     input simply re-reads from its committed offset at the next start.
//   - An event larger than an output's queue can ever store (its frame must
//     fit one segment) is refused by Add for that output, counted in
//     sluice_events_too_large_total and logged. Inputs that acknowledge
//     data check Router.MaxEventBytes before Add, so the refusal happens
//     before the ack, never after.
//   - Nothing is dropped silently: an event that matches no route and no
//     default output is counted in sluice_events_unrouted_total; drops
//     caused by a full queue are counted by the queue itself.
//   - Chunks are cut before they pass the output's chunk_bytes, so only a
//     single event larger than chunk_bytes makes a larger chunk. Encode
//     buffers kept between Flushes for reuse are bounded (4 MiB per
//     Writer); in steady state Add and Flush do not allocate.
//
// # Known limitations
//
//   - With overflow "block", a full queue stalls the inputs that feed it, and
//     with them the other outputs those inputs feed. That is the policy's
//     purpose; "drop_oldest" (the default) never stalls.
package pipeline

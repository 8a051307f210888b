// Package buffer is the per-output durable disk queue: inputs append
// chunks, the output reads them in order, sends them and acks them; a
// chunk's bytes leave the disk only after its ack (or an overflow drop).
//
// # Invariants
//
//   - A chunk is one frame: a 12-byte header (magic "SLQ\x01", uint32
//     payload length, CRC32-Castagnoli over the length and the payload),
//     then the payload: uint32 event count, uint16 tag length, the tag and
//     the entries bytes exactly as appended (concatenated msgpack Forward
//     entries), so the forward output sends them without re-encoding.
//     All integers are little-endian (see frame.go).
//   - Frames live in append-only segment files named %020d.seg by sequence
//     number. A frame never spans segments; a segment is closed when the
//     next frame would pass SegmentBytes, and no frame may be larger.
//     Existing segments are never written again after Open: each Open
//     starts a new active segment, so a torn write can only damage the tail
//     of the newest segment of the previous run.
//   - A chunk's ID is the (segment, offset) of its frame: ordered, stable
//     across restarts.
//   - The acknowledged position is the end of the contiguous prefix of
//     acked chunks. It lives in the file "ack", in two CRC-protected slots
//     written alternately in place, never through tmp+rename; the newest
//     valid slot wins. It is written on every advance and fsynced per the
//     fsync policy. Acks may arrive out of order; they are kept in memory
//     until the prefix reaches them.
//   - An output settles each chunk it read (Settle): delivered (Ack),
//     partly dead-lettered, or dropped (Discard), each counted apart; only
//     a fully delivered chunk counts as acked. "Acked" below means settled.
//   - A segment file is deleted only when every chunk in it is acked, or by
//     the DropOldest overflow policy (counted and logged). The active
//     segment is never dropped. DropOldest first deletes the oldest
//     segments holding no chunk in flight (read by Next, not settled), so a
//     batching output does not lose the chunks it is building a request or
//     object from; only when that cannot make room are segments with
//     chunks in flight dropped too (logged at error level). MaxBytes counts segment file sizes and must
//     hold at least two segments.
//   - After a restart, reading resumes at the persisted ack position:
//     every chunk not acked (durably) is delivered again. Delivery is at
//     least once; duplicates are only ever unacked chunks.
//   - Open verifies every frame from the ack position on. A damaged tail of
//     the last segment is truncated; a damaged frame elsewhere is skipped
//     by resynchronising on the next magic whose frame passes its CRC; an
//     unreadable segment file is renamed to .bad. All of it is logged and
//     counted; Open fails only on real I/O errors, so the agent cannot
//     crash-loop on its own buffer. A missing or damaged ack file means
//     "replay everything still on disk".
//   - Durability: with FsyncAlways, Append returns after its frame is
//     fsynced (concurrent appenders share one fsync: group commit); with the
//     interval policy, Run fsyncs every FsyncInterval when dirty, and Sync
//     forces an fsync. New and deleted segments are followed by a directory
//     fsync before the sync completes. A failed fsync is sticky: every later
//     Append and Sync returns it, because what reached the disk is unknown.
//
// # Ownership and concurrency
//
// One mutex, Queue.mu, guards all state. Append (any goroutine) owns the
// write side: the active segment, rotation and drops. Next and Rewind
// belong to the single consumer and own the read cursor; Ack may be called
// from any goroutine. Slow I/O runs with the mutex released: fsyncs (one
// syncer at a time, others wait on a sync.Cond and share the next round)
// and Next's reads (validated afterwards against a cursor generation).
// Waiting Next, Append (Block) and WaitEmpty calls wait on channels closed
// by appends and acks, so they respect their contexts.
//
// # Known limitations
//
//   - Open reads one pending segment at a time into memory: recovery needs
//     up to SegmentBytes of RAM and reads every pending byte once.
//   - Each Open starts a new segment, so frequent restarts leave small
//     segments (deleted normally once acked).
//   - One unacked chunk keeps its whole segment, and every later one, on
//     disk; with Block this can stall appends until it is acked.
//   - Resynchronisation trusts the first magic whose frame passes its CRC;
//     a complete frame stored inside a damaged frame's entries would be
//     delivered as a chunk.
//   - The number of chunks inside a damaged region is unknown: corruption
//     counters count damaged regions, not chunks.
//   - With the interval policy a crash can lose up to FsyncInterval of
//     appends (and of ack progress, which only causes duplicates).
//   - Uses flock(2) to keep two queues off one directory: Unix only.
package buffer

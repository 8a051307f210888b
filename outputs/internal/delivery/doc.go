// Package delivery is the engine every output is built on: it reads chunks
// from the output's queue, splits them into events, fills batches through
// the output's Encoder, sends them with the output's Sink on a few worker
// goroutines, retries what the destination did not take, dead-letters what
// it refused for good, and settles each chunk with the queue once every
// event of it has an outcome. An output is then only "encode a batch, send
// it, classify each event's result".
//
// # Invariants
//
//   - A chunk is settled (buffer.Queue.Settle) exactly once, after every one
//     of its events is final: delivered (the destination accepted it),
//     dead-lettered (refused for good and stored durably in the dead-letter
//     queue first), or dropped (counted by reason: refused with the
//     dead-letter queue disabled or failing, or a chunk whose entries do
//     not decode). A chunk whose events went into several batches is
//     settled when the last of them is final. Unsettled chunks stay on
//     disk and are sent again after a restart: delivery is at least once.
//   - An event is only ever retried for a reason the Sink reported: a whole
//     request that failed (Send returned an error: connection, timeout,
//     throttling, 5xx, authentication) retries every event of the batch;
//     a per-event Retry retries only that event. Retries wait an
//     exponential back-off with full jitter (uniform in [0,
//     min(RetryMax, RetryInitial·2^(n-1))] before the n-th retry, at least
//     what a RetryAfterError asks), and happen forever unless MaxRetries is
//     set, which turns the (MaxRetries+1)-th failure into a dead-letter
//     with reason "max_retries".
//   - A rejected event never blocks its queue: it leaves the batch, goes to
//     the dead-letter queue and the rest moves on.
//   - Memory is bounded: the chunks held between Next and Settle total at
//     most MaxInFlightBytes of entries (plus one chunk being fetched), and
//     there are exactly Workers+1 batches (encoders): Workers being sent and
//     one being filled. The bound also keeps the queue's drop_oldest policy
//     off chunks in flight (see buffer's doc), because validation keeps it
//     at most a quarter of the queue.
//   - A batch is sent when its Encoder reports it full, FlushInterval after
//     its first event, or as soon as no more input is ready after Drain or,
//     for Eager outputs, whenever a worker is free.
//
// # Ownership and concurrency
//
// Run's goroutine (the loop) owns every piece of state: the chunks held,
// the open batch, the retry groups and the settle bookkeeping; Encoder.Add
// runs on it. A fetch goroutine calls Source.Next and hands chunks over a
// channel. Workers goroutines call Sink.Send, one batch each at a time,
// and hand the batch back; a batch (its Encoder, events and results) is
// touched by one goroutine at a time, handed over by channels.
//
// # Shutdown
//
// The agent first calls Drain (open batches are sent at once) and waits for
// the queue to empty within its grace period; then it cancels Run's
// context: Run stops taking chunks, cancels requests in flight (their
// chunks stay unsettled on disk), waits for every goroutine it started,
// rewinds the source and returns.
//
// # Dead-letter queue
//
// A buffer.Queue under <data_dir>/deadletter/<output id> (FsyncAlways,
// drop_oldest at its own max bytes). Each event keeps its tag and time; its
// record gains one member, "_dead_letter": {"output", "reason", "detail",
// "at"}. Events are appended and fsynced before the chunk they came from
// is settled.
package delivery

// Package kafka is the "kafka" output: a Kafka producer on franz-go
// (github.com/twmb/franz-go/pkg/kgo), built on the delivery engine
// (outputs/internal/delivery): the engine batches, retries, dead-letters
// and settles; this package turns a batch into records, produces them and
// maps each record's outcome to its event's result.
//
// # Invariants
//
//   - One event is one record: topic from the topic template (per event,
//     sanitized to Kafka's topic characters), key from key_field (or
//     none), value the record as JSON (internal/codec/jsonl, with
//     time_key and tag_key) or, with format raw, the raw_key field without
//     its trailing newline (JSON when the field is missing, counted),
//     headers the tag (tag_header), static values and record fields, and
//     timestamp the event time (CreateTime).
//   - A chunk is acknowledged to its queue only when every record of it
//     was acknowledged by the broker: Send produces every record of the
//     batch (kgo.Client.Produce, one promise per record) and returns only
//     once every promise was called, or when its context ends. With the
//     defaults (acks all, idempotent producer) an acknowledged record is
//     on every in-sync replica, and the producer's own retries never
//     write a record twice.
//   - Per record: success is delivered; a broker refusal of the records
//     themselves (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE,
//     INVALID_RECORD, INVALID_TIMESTAMP, INVALID_TOPIC_EXCEPTION) is
//     final; everything else is retried by the engine with its back-off:
//     timeouts, retriable broker errors, an unreachable cluster, a topic
//     that does not exist (yet), refused credentials or ACLs and broker
//     settings the producer cannot use (the last three logged at error
//     level at most every 30s: the data waits on disk until they are
//     fixed). A batch whose every record failed for a retriable reason
//     fails as a whole (the engine logs and counts a failed request).
//   - The producer fails every buffered record of a partition with the
//     error of the batch the broker refused (to keep the idempotent
//     sequence gapless), so a final error does not name its culprit:
//     before an event is dead-lettered its record is produced again alone
//     through a second client (the probe, made on first use, one record
//     at a time), and the broker's verdict on it alone is its result.
//     Only the refused events themselves reach the dead-letter queue.
//   - An event whose record alone (key, value, headers and their
//     overhead, plus a batch's) is over max_message_bytes is dead-lettered
//     (too_large) without being sent, as is one whose topic renders to an
//     invalid name (invalid_topic, longer than 249 characters) or whose
//     record does not decode (undecodable).
//   - Nothing waits forever: the records of a batch carry a context whose
//     deadline is delivery_timeout, so the producer fails those it has not
//     sent yet (or that got an answer) once it passes; franz-go's own
//     delivery timeout is not used because it counts from the record's
//     timestamp, which is the event time. A record sent without an answer
//     is never failed by the producer (the idempotent producer must learn
//     its outcome; the request times out after request_timeout and is
//     retried). When Run's context ends, Send returns at once.
//   - A broker outage fills only this output's queue: the engine holds at
//     most max_in_flight_bytes of it, the producer only the records of the
//     batches being sent.
//
// # Ownership and memory
//
// An encoder's records (kgo.Record structs), their header slices and the
// buffer holding the JSON values and formatted keys and headers belong to
// its flight; Add fills them on the engine's loop, Send hands
// &recs[i] to the producer on a worker and waits. Values, keys and header
// values that are strings in the record (the raw line, a string key, the
// tag) are views into the queue's chunk, which the queue allocated for the
// engine and never reuses; JSON is transcoded into the flight's buffer,
// sized once (max_batch_bytes + 64 KiB: a batch ends before that unless
// its last event is larger than 64 KiB, so the buffer does not grow by
// copying itself) and reused batch after batch; records that point into
// an old buffer after a growth keep it alive and unchanged. Nothing is allocated per event in the
// steady state but what the producer allocates itself. The promise finds
// its record's index from the record's address in the flight's array.
// When Send returns before every promise (its context ended), the flight
// is abandoned to the producer and the encoder starts a new one, so that
// no record the producer still holds is overwritten; Run closes the
// client after the engine stopped, which fails those records.
//
// Topics are interned per encoder (by tag for templates without
// {field:KEY}, by rendered name otherwise), so a record's Topic string is
// not allocated per event.
//
// # Producer settings
//
// acks (all), the idempotent producer (on), compression (zstd at level 1,
// falling back to none for a broker that cannot take it),
// max_message_bytes as the batch limit (ProducerBatchMaxBytes), linger
// (0: the engine hands over whole batches, and records arriving while
// requests are in flight are batched anyway), request_timeout
// (ProduceRequestTimeout), dial_timeout, client_id, topic auto-creation
// in metadata requests (on), TLS and SASL PLAIN / SCRAM-SHA-256 /
// SCRAM-SHA-512. Retries back off like the Java client (100ms doubling to
// 1s) and metadata is refreshed at most every second (franz-go: up to 5s
// each), so a dead broker is left and a batch deadline is noticed within
// about a second. The producer buffers at most (workers+1) ×
// max_batch_events records, so Produce never blocks on its buffer; the
// partitioner is franz-go's default (keys hashed with murmur2 like the
// Java client, unkeyed records sticky per partition). Client telemetry
// (KIP-714) is off. franz-go's own logs go to the agent's log at debug
// level (errors at warn).
//
// The delivery engine runs with workers 4, flush_interval 100ms, eager
// batches and max_in_flight_bytes 16 MiB (unless set): with batches of
// at most 5000 events and 1 MiB, that is every batch being sent and the
// one being filled, without holding more of the queue in memory.
//
// # Metrics
//
// The engine's series (sluice_output_*), plus
// sluice_output_kafka_record_errors_total{error} per failed record by the
// broker's error name (or timeout, canceled, client_closed),
// sluice_output_kafka_isolated_records_total and
// sluice_output_kafka_raw_fallback_events_total.
package kafka

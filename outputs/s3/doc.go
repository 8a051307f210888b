// Package s3 is the "s3" output: it archives events to Amazon S3 or an
// S3-compatible store (versitygw, MinIO, Ceph RGW, ...) as objects of JSON
// lines or raw log lines, gzip or zstd compressed, on the delivery engine
// (outputs/internal/delivery): one batch of the engine becomes one object
// per distinct key.
//
// # Invariants
//
//   - At least once: a chunk is settled with its queue only after every
//     object holding one of its events was stored: PutObject, or
//     CompleteMultipartUpload, returned success. A crash (or a failed
//     upload) before that leaves the chunk unsettled on disk; it is sent
//     again after the restart, in a new object under a new key (another
//     {unique}, another {index}, the same time partitions). So a re-sent
//     object holds the same events as one that may already be stored:
//     duplicates are whole events, never torn lines, and readers that
//     need exactly-once must deduplicate (e.g. on tag, time and content).
//   - An object holds events of one key: the key template rendered with
//     each event's tag and UTC event time, up to {unique} and {index}.
//     Events of several keys in one batch (interleaved tags, an hour
//     boundary) become several objects, uploaded by Send at most 4 at a
//     time; each event's result is its own object's, so when only some
//     objects fail, only their events are retried (into new objects).
//     A batch holds at most max_open_objects keys: an event of one more
//     key closes it.
//   - An object is closed (the batch sealed) when its batch holds
//     max_object_bytes of uncompressed content, or as many queued entry
//     bytes as one batch may hold in flight (the engine's in-flight bound
//     less 8 MiB, at least half of it), or flush_interval (default 5m)
//     after its first event, or at once after Drain.
//   - Memory: the engine holds the queued chunks of every batch until it
//     is settled, so its in-flight bound defaults, for s3, to workers ×
//     (max_object_bytes + 8 MiB) (config.S3InFlightBytes): a full object
//     never stalls the queue's reading. Content is compressed while it is
//     added, in blocks of 256 KiB per object: a batch costs about its
//     compressed size plus one block per open object, not its
//     uncompressed size.
//   - Every object of gzip compression is one gzip member (a sequence of
//     independently compressed deflate blocks, as pigz writes them); of
//     zstd, a sequence of frames (one per block), which every zstd reader
//     reads as one stream. Each line ends with "\n".
//   - A record that cannot be transcoded is refused for good (reason
//     "undecodable", to the dead-letter queue); it never blocks its chunk.
//   - An upload that fails is an error of the whole object: the engine
//     retries its events with back-off, forever unless max_retries is
//     set. That includes errors only an operator can fix (a wrong secret,
//     a missing bucket, access denied, a wrong region): the data stays
//     queued, and the error is logged at error level with a hint once a
//     minute per cause (and at warn level by the engine on each retry).
//     The SDK retries a request a few times itself (without a retry
//     quota), so one throttled part does not redo a whole object.
//   - A multipart upload that fails is aborted (best effort: for one
//     second when the output is stopping). At each start, the output
//     aborts, in the background, the multipart uploads under the key
//     template's static prefix whose key matches the template (with this
//     host's hostname when the template has {hostname}, any extension)
//     and that were initiated more than abandoned_upload_age (default 1h)
//     before: what a crash left. The age protects the uploads of other
//     agents writing under the same template and must exceed the longest
//     upload; a bucket lifecycle rule AbortIncompleteMultipartUpload
//     remains the safety net. Uploads of keys that do not match (another
//     template, another host) are never touched.
//   - Secrets (secret_access_key, session_token) are config.Secret: never
//     logged or marshalled; they reach only the SDK's signer.
//
// # Format
//
// format json writes, per event, the record's fields preceded by
// time_key (the event time) and tag_key (the tag), as the shared codec
// internal/codec/jsonl transcodes them: valid UTF-8 JSON, one object per
// line. format raw writes the value of the raw_key field as it is, minus
// one trailing "\n" (Docker's json-file lines end with one), then "\n"; an
// event whose record has no such string field is written as its JSON line
// instead (counted in sluice_s3_raw_fallback_events_total), so nothing is
// lost, and a raw value holding newlines spans several lines.
//
// Objects carry Content-Type application/gzip or application/zstd (or
// application/x-ndjson, text/plain for uncompressed ones) and, unless
// set_content_encoding is on, no Content-Encoding: with Content-Encoding:
// gzip, browsers, curl --compressed and some SDK-based tools decompress on
// download, so a .gz file would be saved decoded under its .gz name. Each
// object has the metadata x-amz-meta-sluice-events (its event count),
// -sluice-first-time and -sluice-last-time (RFC 3339 UTC) and -sluice-host.
//
// # Ownership and concurrency
//
// The engine's loop calls Encoder.Add: it owns the open batch's objects,
// compressor and partition cache. Send runs on a worker goroutine, with
// the batch handed over by the engine: it finishes the compression and
// uploads; what every batch shares (the S3 client, the parsed key
// template, the JSON encoder, the zstd encoder, whose EncodeAll is safe
// for concurrent use) is immutable after New, except atomic counters and
// the log limiter's mutex.
//
// # Credentials
//
// Static access_key_id / secret_access_key (/ session_token) when set,
// else the AWS SDK's default chain (config.LoadDefaultConfig):
// environment, shared config and credentials files, web identity (EKS
// IRSA), container credentials (ECS task role, EKS Pod Identity), EC2
// instance metadata. role_arn assumes a role through STS with those
// credentials (session name sluice-<hostname>, optional external_id).
//
// # Metrics
//
// Besides the engine's sluice_output_* series: sluice_s3_objects_total,
// sluice_s3_stored_bytes_total (compressed), sluice_s3_multipart_uploads_total,
// sluice_s3_aborted_uploads_total{reason="failed"|"abandoned"},
// sluice_s3_raw_fallback_events_total; all labelled output=<id>.
//
// # Known limitations
//
//   - An object's whole compressed body is in memory before its upload;
//     parts are uploaded one after another, after the batch is sealed.
//   - No {field:...} placeholder: keys depend on the tag and time only.
//   - Time partitions are UTC.
//   - Events are not sorted: an object's lines are in queue order.
package s3

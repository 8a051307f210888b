// Package elasticsearch is the "elasticsearch" output: a _bulk API client
// on net/http for Elasticsearch 7.17/8/9, OpenSearch 1/2/3 (Amazon
// OpenSearch Service and Serverless with SigV4) and _bulk-compatible
// servers such as VictoriaLogs. It is built on the delivery engine
// (outputs/internal/delivery): the engine batches, retries, dead-letters
// and settles; this package encodes a batch, posts it and classifies each
// event's result.
//
// # Invariants
//
//   - A request is NDJSON: per event an action line
//     {"create"|"index":{"_index":"<target>"[,"_id":"<id>"]}} and the
//     document, the record transcoded by internal/codec/jsonl with the
//     event time under time_key (and the tag under tag_key); the body ends
//     with "\n". No _type is sent (ES 8 and OpenSearch 2 refuse it).
//   - A request holds at most max_bulk_events events and max_bulk_bytes
//     bytes before compression, except that an event alone is always
//     sent if it is at most max_bulk_bytes; a larger one is dead-lettered
//     (reason too_large) without being sent.
//   - Per item: 2xx is delivered; 409 on create is delivered (the
//     document exists: a re-send of a stable id); 429 and 5xx are retried,
//     only those events; any other status is refused for good and
//     dead-lettered with reason = the error type (mapper_parsing_exception)
//     and detail = the error reason and its cause.
//   - Whole request: a transport error, a timeout, 429, 5xx and any
//     status not named below fail the request: every event of it is
//     retried with the engine's back-off, at least Retry-After when the
//     answer has one. An answer whose items do not match the request one
//     to one, or that does not parse, fails it too (logged). 401 and 403
//     fail it as well and are logged at error level (at most every 30s):
//     events stay queued until the credentials work.
//   - 413 (the body is over the server's http.max_content_length) lowers
//     the byte limit of later batches to half of the refused request
//     (floor 1 KiB, logged, gauge sluice_output_es_bulk_limit_bytes) and
//     fails the request; its events are retried in smaller requests. A
//     413 for a request of one event refuses that event (too_large).
//   - 400 for a request as a whole (VictoriaLogs refuses a whole request
//     for one bad @timestamp; ES for a malformed body) is bisected: each
//     half is sent again at once, down to single events. A single event
//     answered 400 is refused (dead-lettered with the server's message)
//     once the server has accepted some request of this output; before
//     that the failure is taken for a configuration problem and retried,
//     so a wrong setting does not dead-letter the whole queue. The halves
//     that were accepted are not undone: VictoriaLogs may keep the rows
//     of a refused request that came before the bad one.
//   - Stable ids (id_mode stable, or auto with op_type create): _id is
//     base64url, no padding, of the first 15 bytes (20 characters, like
//     the ids ES generates) of SHA-256 over the output id, a zero byte,
//     the tag, a zero byte, the chunk's queue position (segment and offset
//     as big-endian uint64), the event's index in the chunk (uint32) and
//     the event's stored entry bytes (time and record). A chunk sent again
//     after a crash, a timeout or a lost answer carries the same ids, so
//     a create of an existing document is 409 and no duplicate is
//     written. The entry bytes make ids of different events differ even
//     if a wiped data_dir reuses queue positions.
//   - Hosts rotate per request. A connection failure, a timeout or a
//     502/503/504 marks the host down for host_backoff, doubling per
//     consecutive failure up to 2m; a connection failure or 502/503/504
//     also fails the request over to the next host at once (each host at
//     most once per request). A down host is used again when its back-off
//     ends, or earlier when every host is down (the one due first). Down
//     and up transitions are logged once each.
//   - Secrets (password, api_key, header values, AWS credentials) are
//     sent only in headers and never logged; URLs carry no credentials
//     (validation refuses them).
//   - The X-Elastic-Product header is not required (OpenSearch and
//     VictoriaLogs do not send it), and redirects are not followed (an
//     error naming the Location).
//
// # Ownership and concurrency
//
// An encoder is touched by one goroutine at a time, as the engine hands
// it over: its Add (the engine's loop) builds the body; Send (a worker)
// uses the encoder's own gzip writer and response buffers. The sink's
// state shared by the workers is the host table (a mutex), the learned
// byte limit and the proven flag (atomics) and the log limiter (a mutex).
//
// # Limits
//
//   - Index names from {tag} and {field:KEY} are lowercased and the bytes
//     an index name cannot hold become '_'; an index that starts with '-',
//     '_' or '+' after rendering is refused by the server per item (dead
//     letter).
//   - With a data stream, a stable _id deduplicates within the current
//     backing index only: a re-send after a rollover can add a duplicate.
//   - Response bodies are decoded with encoding/json into a minimal
//     struct, with filter_path asking the server for only errors and the
//     items' status and error.
package elasticsearch

// Package cloudwatchlogs is the "cloudwatch_logs" output: it sends events
// to Amazon CloudWatch Logs with PutLogEvents (aws-sdk-go-v2
// service/cloudwatchlogs) on the delivery engine
// (outputs/internal/delivery), which batches, retries, dead-letters and
// settles; this package builds the calls and classifies each event's
// result.
//
// # Invariants
//
//   - Every PutLogEvents call keeps every documented limit: at most
//     max_batch_events (10,000) events and max_batch_bytes (1,048,576)
//     bytes counting each message's UTF-8 bytes plus 26, events in
//     chronological order, and a span (last - first timestamp) under 24
//     hours. A batch of the engine is bounded by the count and byte limits
//     as a whole, so each call made from it is too; the order and the span
//     are made in Send: each stream's events are sorted by timestamp
//     (stably: events of one millisecond keep their queue order) and cut
//     into consecutive calls wherever the next event would make the span
//     reach 24 hours.
//   - A batch holds events of up to 64 log streams (one more seals it):
//     interleaved tags do not shrink batches to one event. Send makes one
//     call per stream (and per 24-hour span), up to 4 at once; each event's
//     result is its own call's, so when one stream's call fails (throttled,
//     its group missing and not creatable) only that stream's events are
//     retried. Send fails the batch as a whole (the engine retries all of
//     it, with back-off) only when every call failed.
//   - A message longer than max_event_bytes (default 262,118: the
//     long-standing 256 KiB event limit less 26) is truncated at a UTF-8
//     character boundary and ends with "[truncated]"; it is sent, never
//     dropped, and counted in sluice_output_truncated_events_total once
//     its result is final. Raw messages are made valid UTF-8 first (each
//     invalid byte becomes U+FFFD, as the service would count it), so the
//     size the output counts is the size CloudWatch counts. A message is
//     never empty: a raw event without its raw_key string field, or with
//     an empty one, is sent as its JSON record.
//   - Events the service rejects in a 200 answer
//     (rejectedLogEventsInfo) are refused for good and dead-lettered,
//     counted by reason in sluice_output_dead_lettered_events_total:
//     too_old (before tooOldLogEventEndIndex, exclusive: older than 14
//     days), expired (before expiredLogEventEndIndex, exclusive: older
//     than the group's retention) and too_new (from
//     tooNewLogEventStartIndex, inclusive: more than 2 hours ahead). The
//     indexes are taken as the SDK's model documents them; the others are
//     delivered.
//   - ThrottlingException, ServiceUnavailableException, timeouts and
//     connection failures fail the call: its events are retried with the
//     engine's exponential back-off and full jitter. The SDK itself never
//     retries (awsout). Credentials the service refuses
//     (UnrecognizedClientException, InvalidSignatureException,
//     AccessDeniedException, ExpiredTokenException) are failures of the
//     call as well, logged at error level once a minute: the events stay
//     queued until the credentials work.
//   - ResourceNotFoundException: with create_log_group and
//     create_log_stream (both default true) the missing group (with
//     retention_in_days, log_group_class and kms_key_id; a failed
//     PutRetentionPolicy is logged, not fatal) and stream are created,
//     ResourceAlreadyExistsException being success (another agent was
//     first), and the call is made once more at once. Without the option,
//     the call fails (logged at error level once a minute) and its events
//     wait queued until someone creates the resource.
//   - InvalidParameterException for a call as a whole cannot come from
//     the limits (kept above) or the names (sanitized below); for
//     anything else (a field value the service refuses) the call is
//     bisected, each half sent at once, down to single events, and a
//     single event still refused is dead-lettered with reason
//     invalid_parameter and the service's message, but only once this
//     output has had a call accepted: before that the failure is taken for
//     a configuration problem and retried, so a wrong setting never
//     dead-letters the queue. Splits are counted in
//     sluice_cloudwatch_logs_split_requests_total.
//   - Sequence tokens are not sent: the service ignores them and no longer
//     answers InvalidSequenceTokenException or DataAlreadyAcceptedException.
//     Should an old endpoint still answer the latter, the events count as
//     delivered (the service says it has them); the former is retried like
//     any failure.
//   - Delivery is at least once: a call whose answer is lost (timeout,
//     crash) is sent again, and CloudWatch Logs has no idempotency key, so
//     its events may be stored twice.
//
// # Names
//
// log_group_name and log_stream_name are templates of {tag}, {tag[N]},
// {hostname} and {field:KEY} (KEY a top-level field or a dotted path into
// nested maps, e.g. {field:kubernetes.namespace_name} with the cri input's
// metadata, {field:ecs_task_arn} with FireLens'). A rendered value's bytes
// that the name cannot hold become '_' (for groups anything but
// [A-Za-z0-9._/#-], for streams ':' and '*' and control bytes), a
// missing or empty value renders as "unknown", and a name is cut at 512
// bytes. Names are rendered once per tag when the templates have no
// {field:...}, and cached per encoder: a batch costs no allocation per
// event.
//
// # Ownership and concurrency
//
// Add runs on the engine's loop and owns the open batch; Send runs on a
// worker goroutine with the batch handed over, and its up to 4 calls at
// once write the results of disjoint events. The messages go to the SDK
// as strings over the batch's own buffer (no copy). What batches share
// (the client, the templates, the message encoder) is immutable after
// New, but for the proven flag (atomic), the counters and the log
// limiter (a mutex).
//
// # Metrics
//
// Besides the engine's sluice_output_* series:
// sluice_output_truncated_events_total,
// sluice_cloudwatch_logs_created_total{kind="group"|"stream"},
// sluice_cloudwatch_logs_split_requests_total and
// sluice_cloudwatch_logs_raw_fallback_events_total; all labelled
// output=<id>.
package cloudwatchlogs

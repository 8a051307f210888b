// Package firehose is the "firehose" output: it sends events to an Amazon
// Data Firehose delivery stream with PutRecordBatch (aws-sdk-go-v2
// service/firehose) on the delivery engine (outputs/internal/delivery).
//
// # Invariants
//
//   - Records are newline-delimited: each event is one line, its JSON
//     record (or raw log line) and "\n", so the destination (S3,
//     OpenSearch, Splunk, an HTTP endpoint) gets one event per line
//     whatever Firehose concatenates. Without aggregate, one record holds
//     one line; with it, lines are appended to the batch's last record
//     while it stays within max_record_bytes (whole lines only), which
//     cuts the records Firehose bills (each rounded up to 5 KB).
//   - Every PutRecordBatch call holds at most max_batch_records (500)
//     records and max_batch_bytes (4 MiB) of data before base64, and every
//     record at most max_record_bytes (1,024,000 bytes); a line larger
//     than that alone is dead-lettered (reason too_large).
//   - A 200 answer is read record by record, whatever FailedPutCount says:
//     a record with an ErrorCode (ServiceUnavailableException,
//     InternalFailure) is retried with the engine's back-off, all the
//     events of that record and only them; the others are delivered.
//     Counted by code in sluice_firehose_failed_records_total.
//   - A call that fails as a whole (ServiceUnavailableException,
//     LimitExceededException, ResourceNotFoundException, InvalidKMS-
//     ResourceException, credentials refused, a timeout) retries every
//     event of it with back-off; the SDK itself never retries. Errors only
//     an operator can fix are logged at error level with a hint once a
//     minute; the events stay queued.
//   - Delivery is at least once: a call whose answer is lost is sent
//     again, and Firehose keeps both copies.
//
// # Ownership and concurrency
//
// Add runs on the engine's loop, Send on a worker with the batch handed
// over; records go to the SDK as views of the batch's own buffer. The
// client and settings are immutable after New.
package firehose

// Package kinesis is the "kinesis" output: it sends events to an Amazon
// Kinesis data stream with PutRecords (aws-sdk-go-v2 service/kinesis) on
// the delivery engine (outputs/internal/delivery). One event is one
// record: its JSON record (or raw log line), by default followed by "\n".
//
// # Invariants
//
//   - Every PutRecords call holds at most max_batch_records (500) records
//     and max_batch_bytes (5 MiB) of data and partition keys together, and
//     every record at most max_record_bytes (1 MiB) of data and key; a
//     record larger than that alone is dead-lettered (reason too_large)
//     without being sent.
//   - The partition key is the partition_key field's value (a string, or
//     a number or boolean in its JSON spelling), cut at 256 characters; an
//     event without it (or without the option) gets 16 random hex digits,
//     which spreads records evenly over the shards (counted in
//     sluice_kinesis_random_partition_keys_total).
//   - A 200 answer is read record by record, whatever FailedRecordCount
//     says: a record with an ErrorCode (ProvisionedThroughputExceeded-
//     Exception, InternalFailure) is retried with the engine's back-off,
//     only it; the others are delivered. Counted by code in
//     sluice_kinesis_failed_records_total. An answer that does not list
//     every record fails the call.
//   - A call that fails as a whole (ProvisionedThroughputExceeded-
//     Exception, LimitExceededException, KMSThrottlingException, other KMS
//     errors, ResourceNotFoundException, credentials refused, a timeout, a
//     connection failure) retries every record of it with back-off; the
//     SDK itself never retries. Errors only an operator can fix (a missing
//     stream, KMS keys, credentials, permissions) are logged at error
//     level with a hint once a minute per code; the events stay queued.
//   - The records of one partition key keep their queue order within a
//     call; a retried record may land after records queued later (as with
//     any PutRecords client that retries per record).
//   - Delivery is at least once: a call whose answer is lost is sent
//     again and Kinesis keeps both copies.
//
// # Ownership and concurrency
//
// Add runs on the engine's loop, Send on a worker with the batch handed
// over; data and keys go to the SDK as views of the batch's own buffer.
// The client and settings are immutable after New.
package kinesis

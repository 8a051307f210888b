package config

import "time"

// FirehoseOutput sends events to an Amazon Data Firehose delivery stream
// with PutRecordBatch. Records are newline-delimited: each event's JSON
// record (format json) or raw log line (format raw) followed by "\n".
// With aggregate, several events share one record, up to
// max_record_bytes: Firehose bills each record rounded up to 5 KB, so
// aggregation cuts the cost of small events; the destination (S3, for
// one) sees the same lines either way.
//
// The type's defaults for the delivery keys not set:
// workers 2, flush_interval 1s.
type FirehoseOutput struct {
	// DeliveryStreamName names the delivery stream. Required.
	DeliveryStreamName string `yaml:"delivery_stream_name"`
	// Format of each line: "json" (default: the record's fields, plus
	// time_key and tag_key) or "raw" (the raw_key field's value, its one
	// trailing newline removed; an event without that string field is sent
	// as its JSON record).
	Format string `yaml:"format"`
	// RawKey is the record field sent by format raw. Default log.
	RawKey string `yaml:"raw_key"`
	// TimeKey names the event-time field added to JSON lines; "" adds
	// none. Default @timestamp.
	TimeKey string `yaml:"time_key"`
	// TimeFormat: rfc3339nano (default), epoch_seconds, epoch_millis or
	// epoch_nanos.
	TimeFormat string `yaml:"time_format"`
	// TagKey names the tag field added to JSON lines; "" adds none.
	// Default tag.
	TagKey string `yaml:"tag_key"`
	// Aggregate puts several events (lines) in one record, up to
	// max_record_bytes. A record that fails is retried whole: all its
	// events. Default false: one event per record.
	Aggregate bool `yaml:"aggregate"`

	// MaxRecordBytes caps one record (before base64); an event whose line
	// is larger is dead-lettered (reason too_large). Default and maximum
	// 1024000 (1,000 KiB), the service's limit.
	MaxRecordBytes ByteSize `yaml:"max_record_bytes"`
	// MaxBatchRecords bounds the records of one PutRecordBatch request.
	// Default and maximum 500, the service's limit.
	MaxBatchRecords int `yaml:"max_batch_records"`
	// MaxBatchBytes bounds the bytes of one PutRecordBatch request.
	// Default and maximum 4MiB, the service's limit.
	MaxBatchBytes ByteSize `yaml:"max_batch_bytes"`
	// RequestTimeout bounds each PutRecordBatch call. Default 30s.
	RequestTimeout time.Duration `yaml:"request_timeout"`

	// Region of the service. Default: the AWS default chain (AWS_REGION,
	// AWS_DEFAULT_REGION, the shared config's profile), else us-east-1
	// when endpoint is set; with neither, the output does not start.
	Region string `yaml:"region"`
	// Endpoint replaces the region's endpoint URL (http://host:port or
	// https://host), for VPC endpoints, proxies and test doubles.
	Endpoint string `yaml:"endpoint"`
	// AccessKeyID and SecretAccessKey (and SessionToken) are static
	// credentials. Without them the AWS default chain is used:
	// environment, shared config and credentials files, web identity (EKS
	// IRSA), container credentials (ECS task role, EKS Pod Identity), EC2
	// instance metadata.
	AccessKeyID string `yaml:"access_key_id"`
	// SecretAccessKey is the secret key of AccessKeyID.
	SecretAccessKey Secret `yaml:"secret_access_key"`
	// SessionToken, with AccessKeyID and SecretAccessKey, makes them
	// temporary credentials.
	SessionToken Secret `yaml:"session_token"`
	// RoleARN is a role assumed (STS AssumeRole) with the credentials
	// above (static or from the default chain).
	RoleARN string `yaml:"role_arn"`
	// ExternalID is passed to AssumeRole, for a role that requires it.
	ExternalID string `yaml:"external_id"`
}

// Data Firehose limits (PutRecordBatch) and delivery defaults.
const (
	FirehoseMaxBatchRecords = 500
	FirehoseMaxRecordBytes  = 1000 << 10 // before base64
	FirehoseMaxBatchBytes   = 4 << 20
	FirehoseDefaultWorkers  = 2
	FirehoseDefaultFlush    = time.Second
)

// DefaultFirehoseOutput returns a FirehoseOutput with every default
// applied and no delivery stream.
func DefaultFirehoseOutput() FirehoseOutput {
	return FirehoseOutput{
		Format:          "json",
		RawKey:          "log",
		TimeKey:         "@timestamp",
		TimeFormat:      "rfc3339nano",
		TagKey:          "tag",
		MaxRecordBytes:  FirehoseMaxRecordBytes,
		MaxBatchRecords: FirehoseMaxBatchRecords,
		MaxBatchBytes:   FirehoseMaxBatchBytes,
		RequestTimeout:  30 * time.Second,
	}
}

func (f *FirehoseOutput) setDefaults() { *f = DefaultFirehoseOutput() }

// Validate checks f alone, with the rules `agent validate` applies to a
// firehose section (paths relative to "firehose").
func (f *FirehoseOutput) Validate() error {
	v := &checker{}
	f.check(v, "firehose")
	if len(v.errs) > 0 {
		return v.errs.sorted()
	}
	return nil
}

func (f *FirehoseOutput) check(v *checker, p string) {
	switch {
	case f.DeliveryStreamName == "":
		v.errorf(p+".delivery_stream_name", "missing")
	case !validKinesisName(f.DeliveryStreamName):
		v.errorf(p+".delivery_stream_name", "invalid delivery stream name %s (1 to 64 letters, digits, '_', '-' and '.')", v.q(p+".delivery_stream_name", f.DeliveryStreamName))
	case len(f.DeliveryStreamName) > 64:
		v.errorf(p+".delivery_stream_name", "invalid delivery stream name %s (at most 64 characters)", v.q(p+".delivery_stream_name", f.DeliveryStreamName))
	}
	checkAWSMessage(v, p, f.Format, f.RawKey, f.TimeKey, f.TimeFormat, f.TagKey)
	if f.MaxRecordBytes < 1024 || f.MaxRecordBytes > FirehoseMaxRecordBytes {
		v.errorf(p+".max_record_bytes", "must be between 1KiB and 1024000 (the PutRecordBatch limit), got %d", f.MaxRecordBytes)
	}
	if f.MaxBatchRecords < 1 || f.MaxBatchRecords > FirehoseMaxBatchRecords {
		v.errorf(p+".max_batch_records", "must be between 1 and %d (the PutRecordBatch limit), got %d", FirehoseMaxBatchRecords, f.MaxBatchRecords)
	}
	switch {
	case f.MaxBatchBytes <= 0 || f.MaxBatchBytes > FirehoseMaxBatchBytes:
		v.errorf(p+".max_batch_bytes", "must be between 1 and 4MiB (the PutRecordBatch limit), got %d", f.MaxBatchBytes)
	case f.MaxBatchBytes < f.MaxRecordBytes:
		v.errorf(p+".max_batch_bytes", "%s is less than max_record_bytes (%s): a request must hold the largest record", formatSize(f.MaxBatchBytes), formatSize(f.MaxRecordBytes))
	}
	v.positive(p+".request_timeout", f.RequestTimeout)
	checkAWSAccess(v, p, f.Region, f.Endpoint, f.AccessKeyID, f.SecretAccessKey, f.SessionToken, f.RoleARN, f.ExternalID)
}

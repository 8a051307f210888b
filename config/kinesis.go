package config

import (
	"strings"
	"time"
)

// KinesisOutput sends events to an Amazon Kinesis data stream with
// PutRecords: one record per event, its data the JSON record (format json)
// or the raw log line (format raw), by default followed by a newline.
//
// The type's defaults for the delivery keys not set:
// workers 2, flush_interval 1s.
type KinesisOutput struct {
	// StreamName or StreamARN names the stream (one of them, required).
	StreamName string `yaml:"stream_name"`
	// StreamARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME) names the
	// stream instead of StreamName: what AWS recommends, and what a
	// stream of another account needs.
	StreamARN string `yaml:"stream_arn"`
	// PartitionKey is the record field whose value is each record's
	// partition key (a dotted path into nested maps, e.g.
	// kubernetes.pod_name): the records of one key stay in order on one
	// shard. Values are cut at 256 characters. "" (default), or an event
	// without the field, gets a random key: records spread evenly over
	// the shards.
	PartitionKey string `yaml:"partition_key"`
	// Format of each record: "json" (default: the record's fields, plus
	// time_key and tag_key) or "raw" (the raw_key field's value, its one
	// trailing newline removed; an event without that string field is sent
	// as its JSON record).
	Format string `yaml:"format"`
	// RawKey is the record field sent by format raw. Default log.
	RawKey string `yaml:"raw_key"`
	// TimeKey names the event-time field added to JSON records; "" adds
	// none. Default @timestamp.
	TimeKey string `yaml:"time_key"`
	// TimeFormat: rfc3339nano (default), epoch_seconds, epoch_millis or
	// epoch_nanos.
	TimeFormat string `yaml:"time_format"`
	// TagKey names the tag field added to JSON records; "" adds none.
	// Default tag.
	TagKey string `yaml:"tag_key"`
	// AppendNewline ends each record's data with "\n", so that consumers
	// that concatenate records (Firehose to S3) keep one event per line.
	// Default true.
	AppendNewline *bool `yaml:"append_newline"`

	// MaxRecordBytes caps one record, data and partition key together; an
	// event whose record is larger is dead-lettered (reason too_large).
	// Default 1MiB, the service's limit; up to 10MiB for streams whose
	// maximum record size was raised (UpdateMaxRecordSize).
	MaxRecordBytes ByteSize `yaml:"max_record_bytes"`
	// MaxBatchRecords bounds the records of one PutRecords request.
	// Default and limit 500.
	MaxBatchRecords int `yaml:"max_batch_records"`
	// MaxBatchBytes bounds the bytes of one PutRecords request, partition
	// keys included. Default and limit 5MiB (10MiB with raised record
	// sizes).
	MaxBatchBytes ByteSize `yaml:"max_batch_bytes"`
	// RequestTimeout bounds each PutRecords call. Default 30s.
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

// Kinesis Data Streams limits (PutRecords) and delivery defaults.
const (
	KinesisMaxBatchRecords  = 500
	KinesisMaxRecordBytes   = 1 << 20 // data + partition key
	KinesisMaxBatchBytes    = 5 << 20
	KinesisLargeRecordBytes = 10 << 20 // raised record and request sizes
	KinesisMaxPartitionKey  = 256      // characters
	KinesisDefaultWorkers   = 2
	KinesisDefaultFlush     = time.Second
)

// DefaultKinesisOutput returns a KinesisOutput with every default applied
// and no stream.
func DefaultKinesisOutput() KinesisOutput {
	return KinesisOutput{
		Format:          "json",
		RawKey:          "log",
		TimeKey:         "@timestamp",
		TimeFormat:      "rfc3339nano",
		TagKey:          "tag",
		AppendNewline:   ptr(true),
		MaxRecordBytes:  KinesisMaxRecordBytes,
		MaxBatchRecords: KinesisMaxBatchRecords,
		MaxBatchBytes:   KinesisMaxBatchBytes,
		RequestTimeout:  30 * time.Second,
	}
}

func (k *KinesisOutput) setDefaults() { *k = DefaultKinesisOutput() }

// Validate checks k alone, with the rules `agent validate` applies to a
// kinesis section (paths relative to "kinesis").
func (k *KinesisOutput) Validate() error {
	v := &checker{}
	k.check(v, "kinesis")
	if len(v.errs) > 0 {
		return v.errs.sorted()
	}
	return nil
}

func (k *KinesisOutput) check(v *checker, p string) {
	switch {
	case k.StreamName == "" && k.StreamARN == "":
		v.errorf(p+".stream_name", "missing (set stream_name or stream_arn)")
	case k.StreamName != "" && k.StreamARN != "":
		v.errorf(p+".stream_arn", "set with stream_name: set one of them")
	case k.StreamName != "" && !validKinesisName(k.StreamName):
		v.errorf(p+".stream_name", "invalid stream name %s (1 to 128 letters, digits, '_', '-' and '.')", v.q(p+".stream_name", k.StreamName))
	case k.StreamARN != "":
		name, ok := strings.CutPrefix(k.StreamARN, "arn:")
		if i := strings.Index(name, ":stream/"); !ok || i < 0 || !strings.HasPrefix(name, "aws") || !validKinesisName(name[i+len(":stream/"):]) {
			v.errorf(p+".stream_arn", "invalid stream ARN %s (want arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)", v.q(p+".stream_arn", k.StreamARN))
		}
	}
	if strings.HasPrefix(k.PartitionKey, ".") || strings.HasSuffix(k.PartitionKey, ".") {
		v.errorf(p+".partition_key", "invalid field path %s", v.q(p+".partition_key", k.PartitionKey))
	}
	checkAWSMessage(v, p, k.Format, k.RawKey, k.TimeKey, k.TimeFormat, k.TagKey)
	if k.MaxRecordBytes < 1024 || k.MaxRecordBytes > KinesisLargeRecordBytes {
		v.errorf(p+".max_record_bytes", "must be between 1KiB and 10MiB, got %d", k.MaxRecordBytes)
	}
	if k.MaxBatchRecords < 1 || k.MaxBatchRecords > KinesisMaxBatchRecords {
		v.errorf(p+".max_batch_records", "must be between 1 and %d (the PutRecords limit), got %d", KinesisMaxBatchRecords, k.MaxBatchRecords)
	}
	switch {
	case k.MaxBatchBytes <= 0 || k.MaxBatchBytes > KinesisLargeRecordBytes:
		v.errorf(p+".max_batch_bytes", "must be between 1 and 10MiB, got %d", k.MaxBatchBytes)
	case k.MaxBatchBytes > KinesisMaxBatchBytes && k.MaxRecordBytes <= KinesisMaxRecordBytes:
		v.errorf(p+".max_batch_bytes", "%s is more than a PutRecords request may carry (5MiB) with standard record sizes", formatSize(k.MaxBatchBytes))
	case k.MaxBatchBytes < k.MaxRecordBytes:
		v.errorf(p+".max_batch_bytes", "%s is less than max_record_bytes (%s): a request must hold the largest record", formatSize(k.MaxBatchBytes), formatSize(k.MaxRecordBytes))
	}
	v.positive(p+".request_timeout", k.RequestTimeout)
	checkAWSAccess(v, p, k.Region, k.Endpoint, k.AccessKeyID, k.SecretAccessKey, k.SessionToken, k.RoleARN, k.ExternalID)
}

// validKinesisName reports whether s is a valid Kinesis stream or
// Firehose delivery stream name: [a-zA-Z0-9_.-]{1,128}.
func validKinesisName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

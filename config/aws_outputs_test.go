package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func checkErrs(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("validates, want %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	if n := len(err.(Errors)); n != len(want) {
		t.Errorf("%d problems, want %d:\n%v", n, len(want), err)
	}
}

func optionDefaults(v any) map[string]Option {
	out := map[string]Option{}
	for _, o := range Options(v) {
		out[o.Key] = o
	}
	return out
}

func TestCloudWatchLogsConfig(t *testing.T) {
	valid := func() CloudWatchLogsOutput {
		c := DefaultCloudWatchLogsOutput()
		c.LogGroupName = "/sluice/{tag}"
		return c
	}
	if c := valid(); c.Validate() != nil {
		t.Fatalf("defaults with a group: %v", c.Validate())
	}
	opts := optionDefaults(ptr(DefaultCloudWatchLogsOutput()))
	for key, want := range map[string]string{
		"log_stream_name": "{hostname}/{tag}", "format": "json", "raw_key": "log", "time_key": "", "tag_key": "",
		"max_event_bytes": "262118", "max_batch_events": "10000", "max_batch_bytes": "1MiB",
		"create_log_group": "true", "create_log_stream": "true", "retention_in_days": "0", "request_timeout": "30s",
	} {
		if o, ok := opts[key]; !ok || o.Default != want {
			t.Errorf("option %s: %+v, want default %q", key, o, want)
		}
	}
	if opts["secret_access_key"].Value != "secret" || opts["session_token"].Value != "secret" {
		t.Error("credentials are not secrets")
	}
	for name, tc := range map[string]struct {
		edit func(c *CloudWatchLogsOutput)
		want []string
	}{
		"no group":       {func(c *CloudWatchLogsOutput) { c.LogGroupName = "" }, []string{"cloudwatch_logs.log_group_name: missing"}},
		"group chars":    {func(c *CloudWatchLogsOutput) { c.LogGroupName = "/a b/{tag}" }, []string{`a group name takes letters, digits and "._-/#" only`}},
		"stream colon":   {func(c *CloudWatchLogsOutput) { c.LogStreamName = "a:{tag}" }, []string{`cannot hold ":", "*"`}},
		"placeholder":    {func(c *CloudWatchLogsOutput) { c.LogStreamName = "{pod}" }, []string{"unknown placeholder {pod}"}},
		"empty field":    {func(c *CloudWatchLogsOutput) { c.LogGroupName = "/g/{field:}" }, []string{"{field:KEY} needs a key"}},
		"unclosed":       {func(c *CloudWatchLogsOutput) { c.LogGroupName = "/g/{tag" }, []string{"unclosed {"}},
		"long literal":   {func(c *CloudWatchLogsOutput) { c.LogGroupName = strings.Repeat("a", 513) }, []string{"more than 512 bytes"}},
		"format":         {func(c *CloudWatchLogsOutput) { c.Format = "text" }, []string{`cloudwatch_logs.format: invalid value "text"`}},
		"raw no key":     {func(c *CloudWatchLogsOutput) { c.Format, c.RawKey = "raw", "" }, []string{"raw_key: must not be empty"}},
		"tag=time":       {func(c *CloudWatchLogsOutput) { c.TimeKey, c.TagKey = "t", "t" }, []string{"tag_key: same as time_key"}},
		"event too big":  {func(c *CloudWatchLogsOutput) { c.MaxEventBytes = 1 << 20 }, []string{"max_event_bytes: must be between 1KiB and 1048550", "max_batch_bytes: 1048576 is less than max_event_bytes + 26"}},
		"batch events":   {func(c *CloudWatchLogsOutput) { c.MaxBatchEvents = 10001 }, []string{"max_batch_events: must be between 1 and 10000"}},
		"batch bytes":    {func(c *CloudWatchLogsOutput) { c.MaxBatchBytes = 2 << 20 }, []string{"max_batch_bytes: must be between 1 and 1MiB"}},
		"batch < event":  {func(c *CloudWatchLogsOutput) { c.MaxBatchBytes = 100 << 10 }, []string{"less than max_event_bytes + 26 (262144)"}},
		"retention":      {func(c *CloudWatchLogsOutput) { c.RetentionInDays = 2 }, []string{"retention_in_days: 2 is not a retention"}},
		"class":          {func(c *CloudWatchLogsOutput) { c.LogGroupClass = "COLD" }, []string{`log_group_class: invalid value "COLD"`}},
		"kms":            {func(c *CloudWatchLogsOutput) { c.KMSKeyID = "alias/x" }, []string{"kms_key_id: must be a KMS key ARN"}},
		"timeout":        {func(c *CloudWatchLogsOutput) { c.RequestTimeout = 0 }, []string{"request_timeout: must be positive"}},
		"endpoint":       {func(c *CloudWatchLogsOutput) { c.Endpoint = "logs:443" }, []string{`endpoint: invalid endpoint "logs:443"`}},
		"endpoint creds": {func(c *CloudWatchLogsOutput) { c.Endpoint = "https://u:p@logs" }, []string{"without credentials"}},
		"region":         {func(c *CloudWatchLogsOutput) { c.Region = "eu west" }, []string{`region: invalid region "eu west"`}},
		"key alone":      {func(c *CloudWatchLogsOutput) { c.AccessKeyID = "AKIA" }, []string{"secret_access_key: required when access_key_id is set"}},
		"secret alone":   {func(c *CloudWatchLogsOutput) { c.SecretAccessKey = "s" }, []string{"access_key_id: required when secret_access_key is set"}},
		"token alone":    {func(c *CloudWatchLogsOutput) { c.SessionToken = "s" }, []string{"session_token: set without"}},
		"role":           {func(c *CloudWatchLogsOutput) { c.RoleARN = "logs" }, []string{`role_arn: invalid role ARN "logs"`}},
		"external alone": {func(c *CloudWatchLogsOutput) { c.ExternalID = "x" }, []string{"external_id: set without role_arn"}},
	} {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			checkErrs(t, c.Validate(), tc.want)
		})
	}
	parts, err := ParseCloudWatchLogsName("/a/{tag}/{tag[2]}/{hostname}-{field:k8s.pod}", true)
	want := []CloudWatchLogsNamePart{{Kind: CWLText, Text: "/a/"}, {Kind: CWLTag, N: -1}, {Kind: CWLText, Text: "/"}, {Kind: CWLTag, N: 2},
		{Kind: CWLText, Text: "/"}, {Kind: CWLHostname, N: -1}, {Kind: CWLText, Text: "-"}, {Kind: CWLField, Text: "k8s.pod", N: -1}}
	if err != nil || !reflect.DeepEqual(parts, want) {
		t.Errorf("parts %+v, %v", parts, err)
	}
}

func TestKinesisConfig(t *testing.T) {
	valid := func() KinesisOutput {
		k := DefaultKinesisOutput()
		k.StreamName = "logs"
		return k
	}
	if k := valid(); k.Validate() != nil {
		t.Fatalf("defaults with a stream: %v", k.Validate())
	}
	opts := optionDefaults(ptr(DefaultKinesisOutput()))
	for key, want := range map[string]string{
		"format": "json", "time_key": "@timestamp", "tag_key": "tag", "append_newline": "true", "partition_key": "",
		"max_record_bytes": "1MiB", "max_batch_records": "500", "max_batch_bytes": "5MiB", "request_timeout": "30s",
	} {
		if o, ok := opts[key]; !ok || o.Default != want {
			t.Errorf("option %s: %+v, want default %q", key, o, want)
		}
	}
	for name, tc := range map[string]struct {
		edit func(k *KinesisOutput)
		want []string
	}{
		"no stream":    {func(k *KinesisOutput) { k.StreamName = "" }, []string{"kinesis.stream_name: missing (set stream_name or stream_arn)"}},
		"both":         {func(k *KinesisOutput) { k.StreamARN = "arn:aws:kinesis:eu-west-1:1:stream/logs" }, []string{"stream_arn: set with stream_name"}},
		"bad name":     {func(k *KinesisOutput) { k.StreamName = "a/b" }, []string{`invalid stream name "a/b"`}},
		"bad arn":      {func(k *KinesisOutput) { k.StreamName, k.StreamARN = "", "arn:aws:s3:::bucket" }, []string{"invalid stream ARN"}},
		"key path":     {func(k *KinesisOutput) { k.PartitionKey = "a." }, []string{`partition_key: invalid field path "a."`}},
		"record size":  {func(k *KinesisOutput) { k.MaxRecordBytes = 11 << 20 }, []string{"max_record_bytes: must be between 1KiB and 10MiB", "max_batch_bytes: 5MiB is less than max_record_bytes"}},
		"records":      {func(k *KinesisOutput) { k.MaxBatchRecords = 501 }, []string{"max_batch_records: must be between 1 and 500"}},
		"5MiB":         {func(k *KinesisOutput) { k.MaxBatchBytes = 6 << 20 }, []string{"more than a PutRecords request may carry (5MiB)"}},
		"batch<record": {func(k *KinesisOutput) { k.MaxBatchBytes = 512 << 10 }, []string{"512KiB is less than max_record_bytes (1MiB)"}},
		"format":       {func(k *KinesisOutput) { k.Format = "csv" }, []string{`kinesis.format: invalid value "csv"`}},
		"time format":  {func(k *KinesisOutput) { k.TimeFormat = "unix" }, []string{`kinesis.time_format: invalid value "unix"`}},
		"role":         {func(k *KinesisOutput) { k.RoleARN = "r" }, []string{"kinesis.role_arn: invalid role ARN"}},
	} {
		t.Run(name, func(t *testing.T) {
			k := valid()
			tc.edit(&k)
			checkErrs(t, k.Validate(), tc.want)
		})
	}
	// Large records, with requests to match.
	k := valid()
	k.MaxRecordBytes, k.MaxBatchBytes = 10<<20, 10<<20
	if err := k.Validate(); err != nil {
		t.Errorf("10MiB records: %v", err)
	}
	k = valid()
	k.StreamName, k.StreamARN = "", "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/logs.v2"
	if err := k.Validate(); err != nil {
		t.Errorf("ARN: %v", err)
	}
}

func TestFirehoseConfig(t *testing.T) {
	valid := func() FirehoseOutput {
		f := DefaultFirehoseOutput()
		f.DeliveryStreamName = "access"
		return f
	}
	if f := valid(); f.Validate() != nil {
		t.Fatalf("defaults with a stream: %v", f.Validate())
	}
	opts := optionDefaults(ptr(DefaultFirehoseOutput()))
	for key, want := range map[string]string{
		"format": "json", "time_key": "@timestamp", "tag_key": "tag", "aggregate": "false",
		"max_record_bytes": "1000KiB", "max_batch_records": "500", "max_batch_bytes": "4MiB", "request_timeout": "30s",
	} {
		if o, ok := opts[key]; !ok || o.Default != want {
			t.Errorf("option %s: %+v, want default %q", key, o, want)
		}
	}
	for name, tc := range map[string]struct {
		edit func(f *FirehoseOutput)
		want []string
	}{
		"no stream":    {func(f *FirehoseOutput) { f.DeliveryStreamName = "" }, []string{"firehose.delivery_stream_name: missing"}},
		"bad name":     {func(f *FirehoseOutput) { f.DeliveryStreamName = "a b" }, []string{`invalid delivery stream name "a b"`}},
		"long name":    {func(f *FirehoseOutput) { f.DeliveryStreamName = strings.Repeat("a", 65) }, []string{"at most 64 characters"}},
		"record size":  {func(f *FirehoseOutput) { f.MaxRecordBytes = 1 << 20 }, []string{"max_record_bytes: must be between 1KiB and 1024000"}},
		"records":      {func(f *FirehoseOutput) { f.MaxBatchRecords = 0 }, []string{"max_batch_records: must be between 1 and 500"}},
		"4MiB":         {func(f *FirehoseOutput) { f.MaxBatchBytes = 5 << 20 }, []string{"max_batch_bytes: must be between 1 and 4MiB"}},
		"batch<record": {func(f *FirehoseOutput) { f.MaxBatchBytes = 512 << 10 }, []string{"512KiB is less than max_record_bytes (1000KiB)"}},
		"timeout":      {func(f *FirehoseOutput) { f.RequestTimeout = -time.Second }, []string{"request_timeout: must be positive"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := valid()
			tc.edit(&f)
			checkErrs(t, f.Validate(), tc.want)
		})
	}
}

// TestAWSOutputsParse: the three sections, every key set, parse from a
// file (the blocks proposed for full.good.yml).
func TestAWSOutputsParse(t *testing.T) {
	c, err := ParseWithEnv([]byte(awsOutputsYAML), "aws.yml", func(k string) (string, bool) {
		if k == "SLUICE_SHARED_KEY" {
			return "shared-KEY-value-1", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Output{
		{ID: "audit", Type: "cloudwatch_logs", Line: 6, Buffer: DefaultBuffer(),
			Delivery: Delivery{Workers: 4, FlushInterval: 2 * time.Second},
			CloudWatchLogs: &CloudWatchLogsOutput{
				LogGroupName: "/sluice/{tag[0]}/{field:kubernetes.namespace_name}", LogStreamName: "{hostname}.{tag}",
				Format: "raw", RawKey: "message", TimeKey: "ts", TimeFormat: "epoch_millis", TagKey: "tag",
				MaxEventBytes: 1048550, MaxBatchEvents: 5000, MaxBatchBytes: 1 << 20,
				CreateLogGroup: ptr(false), CreateLogStream: ptr(true), RetentionInDays: 14, LogGroupClass: "INFREQUENT_ACCESS",
				KMSKeyID: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd", RequestTimeout: 20 * time.Second,
				Region: "eu-west-1", Endpoint: "https://logs.eu-west-1.amazonaws.com", AccessKeyID: "AKIAEXAMPLE",
				SecretAccessKey: "shared-KEY-value-1", RoleARN: "arn:aws:iam::123456789012:role/logs", ExternalID: "ext-2",
			}},
		{ID: "stream", Type: "kinesis", Line: 32, Buffer: DefaultBuffer(),
			Kinesis: &KinesisOutput{
				StreamARN: "arn:aws:kinesis:eu-west-1:123456789012:stream/logs", PartitionKey: "kubernetes.pod_name",
				Format: "json", RawKey: "log", TimeKey: "@timestamp", TimeFormat: "rfc3339nano", TagKey: "",
				AppendNewline: ptr(false), MaxRecordBytes: 512 << 10, MaxBatchRecords: 250, MaxBatchBytes: 4 << 20,
				RequestTimeout: 10 * time.Second, Region: "eu-west-1", Endpoint: "https://kinesis.eu-west-1.amazonaws.com",
				RoleARN: "arn:aws:iam::123456789012:role/stream",
			}},
		{ID: "access", Type: "firehose", Line: 54, Buffer: DefaultBuffer(),
			Firehose: &FirehoseOutput{
				DeliveryStreamName: "access-logs", Format: "json", RawKey: "log", TimeKey: "time", TimeFormat: "epoch_seconds",
				TagKey: "source", Aggregate: true, MaxRecordBytes: 512 << 10, MaxBatchRecords: 100, MaxBatchBytes: 2 << 20,
				RequestTimeout: 15 * time.Second, Region: "us-east-1", Endpoint: "https://firehose.us-east-1.amazonaws.com",
				AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "shared-KEY-value-1", SessionToken: "shared-KEY-value-1",
				RoleARN: "arn:aws:iam::123456789012:role/firehose", ExternalID: "ext-3",
			}},
	}
	if !reflect.DeepEqual(c.Outputs, want) {
		t.Errorf("outputs differ at %s:\n%s\nwant\n%s", diff(c.Outputs, want), spew(c.Outputs), spew(want))
	}
}

// awsOutputsYAML sets every key of the three types (stream_name empty:
// it is exclusive with stream_arn).
const awsOutputsYAML = `data_dir: /tmp/x
inputs:
  - id: in
    type: forward
outputs:
  - id: audit
    type: cloudwatch_logs
    log_group_name: "/sluice/{tag[0]}/{field:kubernetes.namespace_name}"
    log_stream_name: "{hostname}.{tag}"
    format: raw
    raw_key: message
    time_key: ts
    time_format: epoch_millis
    tag_key: tag
    max_event_bytes: 1048550
    max_batch_events: 5000
    max_batch_bytes: 1MiB
    create_log_group: false
    create_log_stream: true
    retention_in_days: 14
    log_group_class: INFREQUENT_ACCESS
    kms_key_id: arn:aws:kms:eu-west-1:123456789012:key/1234abcd
    request_timeout: 20s
    region: eu-west-1
    endpoint: https://logs.eu-west-1.amazonaws.com
    access_key_id: AKIAEXAMPLE
    secret_access_key: ${SLUICE_SHARED_KEY}
    session_token: ""
    role_arn: arn:aws:iam::123456789012:role/logs
    external_id: ext-2
    delivery: {workers: 4, flush_interval: 2s}
  - id: stream
    type: kinesis
    stream_name: ""
    stream_arn: arn:aws:kinesis:eu-west-1:123456789012:stream/logs
    partition_key: kubernetes.pod_name
    format: json
    raw_key: log
    time_key: "@timestamp"
    time_format: rfc3339nano
    tag_key: ""
    append_newline: false
    max_record_bytes: 512KiB
    max_batch_records: 250
    max_batch_bytes: 4MiB
    request_timeout: 10s
    region: eu-west-1
    endpoint: https://kinesis.eu-west-1.amazonaws.com
    access_key_id: ""
    secret_access_key: ""
    session_token: ""
    role_arn: arn:aws:iam::123456789012:role/stream
    external_id: ""
  - id: access
    type: firehose
    delivery_stream_name: access-logs
    format: json
    raw_key: log
    time_key: time
    time_format: epoch_seconds
    tag_key: source
    aggregate: true
    max_record_bytes: 512KiB
    max_batch_records: 100
    max_batch_bytes: 2MiB
    request_timeout: 15s
    region: us-east-1
    endpoint: https://firehose.us-east-1.amazonaws.com
    access_key_id: AKIAEXAMPLE
    secret_access_key: ${SLUICE_SHARED_KEY}
    session_token: ${SLUICE_SHARED_KEY}
    role_arn: arn:aws:iam::123456789012:role/firehose
    external_id: ext-3
`

package awsfake

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

func sdkConfig(s *Server, akid, secret, token, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(akid, secret, token),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
		BaseEndpoint: aws.String(s.URL()),
	}
}

func clients(s *Server) (*cloudwatchlogs.Client, *kinesis.Client, *firehose.Client) {
	c := sdkConfig(s, AccessKeyID, SecretAccessKey, "", Region)
	return cloudwatchlogs.NewFromConfig(c), kinesis.NewFromConfig(c), firehose.NewFromConfig(c)
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func events(t0 time.Time, n, size int) []cwltypes.InputLogEvent {
	out := make([]cwltypes.InputLogEvent, n)
	msg := strings.Repeat("m", size)
	for i := range out {
		out[i] = cwltypes.InputLogEvent{Timestamp: aws.Int64(t0.UnixMilli() + int64(i)), Message: aws.String(msg)}
	}
	return out
}

func put(cw *cloudwatchlogs.Client, evs []cwltypes.InputLogEvent) (*cloudwatchlogs.PutLogEventsOutput, error) {
	return cw.PutLogEvents(context.Background(), &cloudwatchlogs.PutLogEventsInput{
		LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: evs})
}

// TestSignature: the SDK's own signature passes; a wrong secret, an
// unknown key, another region or a missing session token get the errors
// AWS answers with, on each of the three services.
func TestSignature(t *testing.T) {
	s := Start(t)
	s.CreateLogStream("g", "s")
	s.CreateKinesisStream("k", 2)
	s.CreateDeliveryStream("f")
	now := time.Now()
	try := func(c aws.Config) []string {
		cw, k, f := cloudwatchlogs.NewFromConfig(c), kinesis.NewFromConfig(c), firehose.NewFromConfig(c)
		_, e1 := put(cw, events(now, 1, 10))
		_, e2 := k.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("k"),
			Records: []ktypes.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("p")}}})
		_, e3 := f.PutRecordBatch(context.Background(), &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("f"),
			Records: []fhtypes.Record{{Data: []byte("x\n")}}})
		return []string{code(e1), code(e2), code(e3)}
	}
	for name, tc := range map[string]struct {
		c    aws.Config
		want string
	}{
		"good":         {sdkConfig(s, AccessKeyID, SecretAccessKey, "", Region), ""},
		"wrong secret": {sdkConfig(s, AccessKeyID, "not-the-secret", "", Region), "InvalidSignatureException"},
		"unknown key":  {sdkConfig(s, "AKIDUNKNOWN", SecretAccessKey, "", Region), "UnrecognizedClientException"},
		"other region": {sdkConfig(s, AccessKeyID, SecretAccessKey, "", "eu-west-1"), "InvalidSignatureException"},
		"extra token":  {sdkConfig(s, AccessKeyID, SecretAccessKey, "tok", Region), "UnrecognizedClientException"},
	} {
		for i, got := range try(tc.c) {
			if got != tc.want {
				t.Errorf("%s, service %d: code %q, want %q", name, i, got, tc.want)
			}
		}
	}
	// A secret changed on the server's side takes effect at once.
	s.SetKeys(Key{AccessKeyID: AccessKeyID, SecretAccessKey: "rotated"})
	if got := try(sdkConfig(s, AccessKeyID, SecretAccessKey, "", Region)); got[0] != "InvalidSignatureException" {
		t.Errorf("old secret after rotation: %v", got)
	}
	if got := try(sdkConfig(s, AccessKeyID, "rotated", "", Region)); got[0] != "" || got[1] != "" || got[2] != "" {
		t.Errorf("rotated secret: %v", got)
	}
	// A session token is checked when the key has one.
	s.SetKeys(Key{AccessKeyID: "ASIATEMP", SecretAccessKey: "temp-secret", SessionToken: "session-token"})
	if got := try(sdkConfig(s, "ASIATEMP", "temp-secret", "session-token", Region)); got[0] != "" || got[1] != "" || got[2] != "" {
		t.Errorf("temporary credentials: %v", got)
	}
	if got := try(sdkConfig(s, "ASIATEMP", "temp-secret", "", Region)); got[0] != "UnrecognizedClientException" {
		t.Errorf("missing token: %v", got)
	}
	// The SDK maps the modeled one to its type.
	s.SetKeys(Key{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey})
	_, err := put(cloudwatchlogs.NewFromConfig(sdkConfig(s, "AKIDUNKNOWN", "x", "", Region)), events(now, 1, 1))
	if _, ok := errors.AsType[*cwltypes.UnrecognizedClientException](err); !ok {
		t.Errorf("unknown key: %T %v, want *types.UnrecognizedClientException", err, err)
	}
	if n := len(s.LogEvents("g", "s")); n != 3 {
		t.Errorf("%d events stored, want 3 (the good, rotated and temporary credentials)", n)
	}
}

// TestTypedErrors: the SDK turns the fake's error answers into its typed
// errors.
func TestTypedErrors(t *testing.T) {
	s := Start(t)
	cw, k, f := clients(s)
	now := time.Now()
	ctx := context.Background()

	_, err := put(cw, events(now, 1, 1))
	if e, ok := errors.AsType[*cwltypes.ResourceNotFoundException](err); !ok || !strings.Contains(e.ErrorMessage(), "log group does not exist") {
		t.Errorf("missing group: %v", err)
	}
	if _, err := cw.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")}); err != nil {
		t.Fatal(err)
	}
	_, err = cw.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")})
	if _, ok := errors.AsType[*cwltypes.ResourceAlreadyExistsException](err); !ok {
		t.Errorf("existing group: %v", err)
	}
	_, err = put(cw, events(now, 1, 1))
	if e, ok := errors.AsType[*cwltypes.ResourceNotFoundException](err); !ok || !strings.Contains(e.ErrorMessage(), "log stream does not exist") {
		t.Errorf("missing stream: %v", err)
	}
	if _, err := cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("g"), RetentionInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	_, err = cw.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String("g"), RetentionInDays: aws.Int32(2)})
	if _, ok := errors.AsType[*cwltypes.InvalidParameterException](err); !ok {
		t.Errorf("bad retention: %v", err)
	}
	ds, err := cw.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("g")})
	if err != nil || len(ds.LogStreams) != 1 || *ds.LogStreams[0].LogStreamName != "s" {
		t.Errorf("describe: %+v %v", ds, err)
	}

	s.FailNext("PutLogEvents", 1, Throttling)
	s.FailNext("PutLogEvents", 1, ServiceUnavailable)
	_, err = put(cw, events(now, 1, 1))
	if _, ok := errors.AsType[*cwltypes.ThrottlingException](err); !ok {
		t.Errorf("throttling: %T %v", err, err)
	}
	_, err = put(cw, events(now, 1, 1))
	if _, ok := errors.AsType[*cwltypes.ServiceUnavailableException](err); !ok {
		t.Errorf("unavailable: %T %v", err, err)
	}
	if _, err := put(cw, events(now, 1, 1)); err != nil {
		t.Errorf("after the faults: %v", err)
	}

	recs := func(n int) []ktypes.PutRecordsRequestEntry {
		out := make([]ktypes.PutRecordsRequestEntry, n)
		for i := range out {
			out[i] = ktypes.PutRecordsRequestEntry{Data: []byte("d"), PartitionKey: aws.String("p")}
		}
		return out
	}
	_, err = k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("k"), Records: recs(1)})
	if _, ok := errors.AsType[*ktypes.ResourceNotFoundException](err); !ok {
		t.Errorf("kinesis missing stream: %v", err)
	}
	s.CreateKinesisStream("k", 4)
	s.FailNext("PutRecords", 1, ProvisionedThroughputExceeded)
	_, err = k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("k"), Records: recs(1)})
	if _, ok := errors.AsType[*ktypes.ProvisionedThroughputExceededException](err); !ok {
		t.Errorf("kinesis throughput: %T %v", err, err)
	}
	s.FailNext("PutRecords", 1, KMSThrottling)
	_, err = k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("k"), Records: recs(1)})
	if _, ok := errors.AsType[*ktypes.KMSThrottlingException](err); !ok {
		t.Errorf("kinesis KMS: %T %v", err, err)
	}
	_, err = k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("k"), Records: recs(501)})
	if e, ok := errors.AsType[*ktypes.ValidationException](err); !ok || !strings.Contains(e.ErrorMessage(), "less than or equal to 500") {
		t.Errorf("kinesis 501 records: %T %v", err, err)
	}
	out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamARN: aws.String(s.StreamARN("k")), Records: recs(3)})
	if err != nil || *out.FailedRecordCount != 0 || len(out.Records) != 3 || *out.Records[0].ShardId == "" {
		t.Errorf("kinesis by ARN: %+v %v", out, err)
	}

	_, err = f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("f"), Records: []fhtypes.Record{{Data: []byte("x")}}})
	if _, ok := errors.AsType[*fhtypes.ResourceNotFoundException](err); !ok {
		t.Errorf("firehose missing stream: %v", err)
	}
	s.CreateDeliveryStream("f")
	s.FailNext("PutRecordBatch", 1, ServiceUnavailable)
	_, err = f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("f"), Records: []fhtypes.Record{{Data: []byte("x")}}})
	if _, ok := errors.AsType[*fhtypes.ServiceUnavailableException](err); !ok {
		t.Errorf("firehose unavailable: %T %v", err, err)
	}
	big := make([]fhtypes.Record, 5)
	for i := range big {
		big[i].Data = make([]byte, 1000<<10)
	}
	_, err = f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("f"), Records: big})
	if e, ok := errors.AsType[*fhtypes.InvalidArgumentException](err); !ok || !strings.Contains(e.ErrorMessage(), "4 MB") {
		t.Errorf("firehose 5 MB: %T %v", err, err)
	}
}

// TestLogLimits: every PutLogEvents limit, just under and just over.
func TestLogLimits(t *testing.T) {
	s := Start(t)
	s.CreateLogStream("g", "s")
	cw, _, _ := clients(s)
	now := time.Now()
	ok := func(name string, evs []cwltypes.InputLogEvent) {
		t.Helper()
		if _, err := put(cw, evs); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := func(name string, evs []cwltypes.InputLogEvent, msg string) {
		t.Helper()
		_, err := put(cw, evs)
		if e, ok := errors.AsType[*cwltypes.InvalidParameterException](err); !ok || !strings.Contains(e.ErrorMessage(), msg) {
			t.Errorf("%s: %v, want InvalidParameterException %q", name, err, msg)
		}
	}
	ok("10000 events", events(now, 10000, 1))
	bad("10001 events", events(now, 10001, 1), "less than or equal to 10000")
	ok("event of 262118", events(now, 1, 262144-26))
	bad("event of 262119", events(now, 1, 262144-25), "Log event too large: 262145 bytes exceeds limit of 262144")
	ok("1048576 bytes", events(now, 4, 262144-26))
	ok("just under", events(now, 5, 209715-26))
	bad("just over", events(now, 5, 209715-26+1), "Upload too large: 1048580 bytes exceeds limit of 1048576")
	unordered := events(now, 3, 5)
	unordered[1].Timestamp = aws.Int64(now.UnixMilli() - 1)
	bad("unordered", unordered, "chronological order")
	span := events(now.Add(-25*time.Hour), 2, 5)
	span[1].Timestamp = aws.Int64(now.UnixMilli())
	bad("span", span, "cannot span more than 24 hours")
	span[0].Timestamp = aws.Int64(now.Add(-24 * time.Hour).UnixMilli())
	ok("span of 24h", span)
	bad("empty message", events(now, 1, 0), "greater than or equal to 1")
	if n := len(s.LogEvents("g", "s")); n != 10000+1+4+5+2 {
		t.Errorf("%d events stored", n)
	}
}

// TestLogRejections: too old, expired and too new events are reported by
// index and not stored; the rest is.
func TestLogRejections(t *testing.T) {
	s := Start(t)
	s.CreateLogGroup("g", 7)
	s.CreateLogStream("g", "s")
	cw, _, _ := clients(s)
	now := time.Now()
	ts := []time.Time{now.Add(-15 * 24 * time.Hour), now.Add(-8 * 24 * time.Hour), now.Add(-8 * 24 * time.Hour),
		now.Add(-time.Hour), now, now.Add(3 * time.Hour)}
	evs := make([]cwltypes.InputLogEvent, len(ts))
	for i, t := range ts {
		evs[i] = cwltypes.InputLogEvent{Timestamp: aws.Int64(t.UnixMilli()), Message: aws.String("m")}
	}
	out, err := put(cw, evs)
	if err != nil {
		t.Fatal(err)
	}
	ri := out.RejectedLogEventsInfo
	if ri == nil || aws.ToInt32(ri.TooOldLogEventEndIndex) != 1 || aws.ToInt32(ri.ExpiredLogEventEndIndex) != 3 || aws.ToInt32(ri.TooNewLogEventStartIndex) != 5 {
		t.Fatalf("rejected %+v", ri)
	}
	if got := s.LogEvents("g", "s"); len(got) != 2 || got[0].Timestamp != ts[3].UnixMilli() {
		t.Fatalf("stored %+v", got)
	}
}

// TestPartialFailures: Record hooks fail single records of a 200 answer.
func TestPartialFailures(t *testing.T) {
	s := Start(t)
	s.CreateKinesisStream("k", 3)
	s.CreateDeliveryStream("f")
	_, k, f := clients(s)
	s.SetScript(Script{Record: func(op, stream string, i int, r *Record) (string, string) {
		if i%2 == 1 {
			if op == "PutRecords" {
				return "ProvisionedThroughputExceededException", "Rate exceeded for shard"
			}
			return "ServiceUnavailableException", "Slow down."
		}
		return "", ""
	}})
	ctx := context.Background()
	kr := make([]ktypes.PutRecordsRequestEntry, 4)
	fr := make([]fhtypes.Record, 4)
	for i := range kr {
		kr[i] = ktypes.PutRecordsRequestEntry{Data: []byte{byte('a' + i)}, PartitionKey: aws.String(string(rune('a' + i)))}
		fr[i] = fhtypes.Record{Data: []byte{byte('a' + i)}}
	}
	ko, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("k"), Records: kr})
	if err != nil || aws.ToInt32(ko.FailedRecordCount) != 2 || aws.ToString(ko.Records[1].ErrorCode) != "ProvisionedThroughputExceededException" || ko.Records[2].SequenceNumber == nil {
		t.Fatalf("kinesis: %+v %v", ko, err)
	}
	fo, err := f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("f"), Records: fr})
	if err != nil || aws.ToInt32(fo.FailedPutCount) != 2 || aws.ToString(fo.RequestResponses[3].ErrorCode) != "ServiceUnavailableException" || fo.RequestResponses[0].RecordId == nil {
		t.Fatalf("firehose: %+v %v", fo, err)
	}
	if got := s.KinesisRecords("k"); len(got) != 2 || string(got[1].Data) != "c" {
		t.Fatalf("kinesis stored %+v", got)
	}
	if got := s.FirehoseRecords("f"); len(got) != 2 || string(got[0].Data) != "a" {
		t.Fatalf("firehose stored %+v", got)
	}
}

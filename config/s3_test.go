package config

import (
	"strings"
	"testing"
	"time"
)

func validS3() S3Output {
	s := DefaultS3Output()
	s.Bucket = "logs-archive"
	return s
}

func TestS3Defaults(t *testing.T) {
	s := validS3()
	if err := s.Validate(); err != nil {
		t.Fatalf("defaults with a bucket: %v", err)
	}
	if err := (&S3Output{}).Validate(); err == nil {
		t.Fatal("zero S3Output validates")
	}
	opts := map[string]Option{}
	for _, o := range Options(ptr(DefaultS3Output())) {
		opts[o.Key] = o
	}
	for key, want := range map[string]string{
		"key":                     "logs/{tag}/%Y/%m/%d/%H/{hostname}-{unique}{ext}",
		"format":                  "json",
		"compression":             "gzip",
		"time_key":                "@timestamp",
		"tag_key":                 "tag",
		"max_object_bytes":        "50MiB",
		"multipart_threshold":     "16MiB",
		"part_bytes":              "8MiB",
		"max_open_objects":        "64",
		"abort_abandoned_uploads": "true",
		"abandoned_upload_age":    "1h",
		"request_timeout":         "2m",
		"set_content_encoding":    "false",
		"bucket":                  "",
	} {
		if o, ok := opts[key]; !ok || o.Default != want {
			t.Errorf("option %s: %+v, want default %q", key, o, want)
		}
	}
	if o := opts["secret_access_key"]; o.Value != "secret" {
		t.Errorf("secret_access_key is %q, want a secret", o.Value)
	}
}

// TestS3Check: each wrong value or combination is reported with its path.
func TestS3Check(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(s *S3Output)
		want []string
	}{
		"no bucket":           {func(s *S3Output) { s.Bucket = "" }, []string{"s3.bucket: missing"}},
		"bucket with a slash": {func(s *S3Output) { s.Bucket = "a/b" }, []string{`s3.bucket: invalid bucket name "a/b"`}},
		"bad endpoint":        {func(s *S3Output) { s.Endpoint = "minio:9000" }, []string{`s3.endpoint: invalid endpoint "minio:9000"`}},
		"unknown compression": {func(s *S3Output) { s.Compression = "lz4" }, []string{`s3.compression: invalid value "lz4" (want gzip, zstd or none)`}},
		"unknown format":      {func(s *S3Output) { s.Format = "parquet" }, []string{`s3.format: invalid value "parquet" (want json or raw)`}},
		"time format":         {func(s *S3Output) { s.TimeFormat = "unix" }, []string{`s3.time_format: invalid value "unix"`}},
		"tag key = time key":  {func(s *S3Output) { s.TagKey = "@timestamp" }, []string{`s3.tag_key: same as time_key "@timestamp"`}},
		"raw without key":     {func(s *S3Output) { s.Format, s.RawKey = "raw", "" }, []string{"s3.raw_key: must not be empty with format raw"}},
		"kms without sse": {func(s *S3Output) { s.KMSKeyID = "arn:aws:kms:eu-west-1:1:key/k" },
			[]string{"s3.kms_key_id: set without sse: aws:kms"}},
		"kms with AES256": {func(s *S3Output) { s.SSE, s.KMSKeyID = "AES256", "k" }, []string{"s3.kms_key_id: set without sse: aws:kms"}},
		"unknown sse":     {func(s *S3Output) { s.SSE = "kms" }, []string{`s3.sse: invalid value "kms" (want AES256 or aws:kms)`}},
		"storage class":   {func(s *S3Output) { s.StorageClass = "standard_ia" }, []string{`s3.storage_class: invalid value "standard_ia"`}},
		"checksum":        {func(s *S3Output) { s.Checksum = "MD5" }, []string{`s3.checksum: invalid value "MD5"`}},
		"unknown placeholder": {func(s *S3Output) { s.Key = "logs/{namespace}/{unique}" },
			[]string{`s3.key: key template "logs/{namespace}/{unique}": unknown placeholder {namespace}`}},
		"unknown directive": {func(s *S3Output) { s.Key = "logs/%Y/%q/{unique}" },
			[]string{`s3.key: key template "logs/%Y/%q/{unique}": unknown time directive %q`}},
		"no unique":         {func(s *S3Output) { s.Key = "logs/{tag}/%Y/{index}.gz" }, []string{"s3.key: key template \"logs/{tag}/%Y/{index}.gz\" lacks {unique}"}},
		"leading slash":     {func(s *S3Output) { s.Key = "/logs/{unique}" }, []string{`s3.key: key template must not start with "/"`}},
		"unclosed":          {func(s *S3Output) { s.Key = "logs/{tag/{unique}" }, []string{`unknown placeholder {tag/{unique}`}},
		"small part":        {func(s *S3Output) { s.PartBytes = 1 << 20 }, []string{"s3.part_bytes: must be between 5MiB and 5GiB (S3's part size limits), got 1MiB"}},
		"small object":      {func(s *S3Output) { s.MaxObjectBytes = 1 << 10 }, []string{"s3.max_object_bytes: must be at least 64KiB, got 1KiB"}},
		"too many parts":    {func(s *S3Output) { s.MaxObjectBytes, s.PartBytes = 60<<30, 5<<20 }, []string{"s3.max_object_bytes: 60GiB needs more than S3's 10000 parts of part_bytes 5MiB"}},
		"huge single PUT":   {func(s *S3Output) { s.MultipartThreshold = 6 << 30 }, []string{"s3.multipart_threshold: 6GiB is more than a single PUT may carry (5GiB)"}},
		"encoding and none": {func(s *S3Output) { s.Compression, s.SetContentEncoding = "none", true }, []string{"s3.set_content_encoding: set with compression none"}},
		"key id alone":      {func(s *S3Output) { s.AccessKeyID = "AKIA" }, []string{"s3.secret_access_key: required when access_key_id is set"}},
		"secret alone":      {func(s *S3Output) { s.SecretAccessKey = "x" }, []string{"s3.access_key_id: required when secret_access_key is set"}},
		"token alone":       {func(s *S3Output) { s.SessionToken = "x" }, []string{"s3.session_token: set without access_key_id"}},
		"bad role":          {func(s *S3Output) { s.RoleARN = "my-role" }, []string{`s3.role_arn: invalid role ARN "my-role"`}},
		"external id alone": {func(s *S3Output) { s.ExternalID = "x" }, []string{"s3.external_id: set without role_arn"}},
		"negative age":      {func(s *S3Output) { s.AbandonedUploadAge = -time.Second }, []string{"s3.abandoned_upload_age: must not be negative"}},
		"zero timeout":      {func(s *S3Output) { s.RequestTimeout = 0 }, []string{"s3.request_timeout: must be positive"}},
		"zero open objects": {func(s *S3Output) { s.MaxOpenObjects = 0 }, []string{"s3.max_open_objects: must be positive"}},
	} {
		t.Run(name, func(t *testing.T) {
			s := validS3()
			tc.edit(&s)
			err := s.Validate()
			if err == nil {
				t.Fatalf("validates")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in\n%v", w, err)
				}
			}
			if n := len(err.(Errors)); n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
	// Good combinations.
	for name, edit := range map[string]func(s *S3Output){
		"kms":      func(s *S3Output) { s.SSE, s.KMSKeyID = "aws:kms", "alias/logs" },
		"sse-s3":   func(s *S3Output) { s.SSE = "AES256" },
		"static":   func(s *S3Output) { s.AccessKeyID, s.SecretAccessKey, s.SessionToken = "AKIA", "s", "t" },
		"role":     func(s *S3Output) { s.RoleARN, s.ExternalID = "arn:aws:iam::123456789012:role/logs", "x" },
		"endpoint": func(s *S3Output) { s.Endpoint, s.ForcePathStyle = "http://127.0.0.1:9000", true },
		"hive":     func(s *S3Output) { s.Key = "p/dt=%Y-%m-%d/h=%H/%%/{tag[0]}/{tag[2]}-{index}-{unique}.json.gz" },
		"raw zstd": func(s *S3Output) { s.Format, s.Compression, s.SetContentEncoding = "raw", "zstd", true },
		"no tag":   func(s *S3Output) { s.TagKey, s.TimeKey = "", "" },
		"checksum": func(s *S3Output) { s.Checksum = "CRC32C" },
		"class":    func(s *S3Output) { s.StorageClass = "GLACIER_IR" },
	} {
		s := validS3()
		edit(&s)
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseS3Key(t *testing.T) {
	parts, err := ParseS3Key("a/{tag}/{tag[3]}/%Y%%%m/{hostname}{index}{unique}{ext}")
	if err != nil {
		t.Fatal(err)
	}
	want := []S3KeyPart{
		{Kind: S3Text, Text: "a/"}, {Kind: S3Tag, N: -1}, {Kind: S3Text, Text: "/"}, {Kind: S3Tag, N: 3},
		{Kind: S3Text, Text: "/"}, {Kind: S3Time, Text: "Y"}, {Kind: S3Text, Text: "%"}, {Kind: S3Time, Text: "m"},
		{Kind: S3Text, Text: "/"}, {Kind: S3Hostname, N: -1}, {Kind: S3Index, N: -1}, {Kind: S3Unique, N: -1}, {Kind: S3Ext, N: -1},
	}
	if len(parts) != len(want) {
		t.Fatalf("got %+v", parts)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("part %d: %+v, want %+v", i, parts[i], want[i])
		}
	}
	for _, bad := range []string{"a%", "a}", "{tag[x]}", "{tag[-1]}", "x\ny", "{Tag}"} {
		if _, err := ParseS3Key(bad); err == nil {
			t.Errorf("%q parses", bad)
		}
	}
}

// TestS3CheckOutput: an object must fit in flight, and the s3 default
// in-flight bound within a quarter of the queue.
func TestS3CheckOutput(t *testing.T) {
	s := validS3()
	if got := S3InFlightBytes(&s, &Delivery{}); got != 58<<20 {
		t.Errorf("default in-flight %s, want 58MiB", formatSize(got))
	}
	if got := S3InFlightBytes(&s, &Delivery{Workers: 2}); got != 116<<20 {
		t.Errorf("in-flight with 2 workers %s, want 116MiB", formatSize(got))
	}
	if got := S3InFlightBytes(&s, &Delivery{MaxInFlightBytes: 80 << 20}); got != 80<<20 {
		t.Errorf("explicit in-flight %s", formatSize(got))
	}
	for name, tc := range map[string]struct {
		d    Delivery
		b    ByteSize
		want string
	}{
		"defaults":              {Delivery{}, 1 << 30, ""},
		"explicit below object": {Delivery{MaxInFlightBytes: 32 << 20}, 1 << 30, "outputs[0].delivery.max_in_flight_bytes: 32MiB is below s3.max_object_bytes (50MiB)"},
		"explicit ok":           {Delivery{MaxInFlightBytes: 64 << 20}, 256 << 20, ""},
		"small queue":           {Delivery{}, 128 << 20, "outputs[0].buffer.max_bytes: 128MiB is less than 4 × the s3 in-flight bound 58MiB (workers × (max_object_bytes + 8MiB)): raise it to at least 232MiB"},
		"small queue, workers":  {Delivery{Workers: 4}, 512 << 20, "4 × the s3 in-flight bound 232MiB"},
	} {
		v := &checker{}
		o := &Output{Delivery: tc.d, Buffer: withMax(DefaultBuffer(), tc.b), S3: &s}
		s.checkOutput(v, "outputs[0]", o)
		switch {
		case tc.want == "" && len(v.errs) > 0:
			t.Errorf("%s: %v", name, v.errs)
		case tc.want != "" && (len(v.errs) != 1 || !strings.Contains(v.errs.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", name, v.errs, tc.want)
		}
	}
}

// TestS3File: an s3 output in a config file parses with the type's
// defaults, and its problems name the field and the line.
func TestS3File(t *testing.T) {
	good := `
inputs:
  - id: d
    type: docker
outputs:
  - id: archive
    type: s3
    bucket: my-logs
    region: eu-west-1
    compression: zstd
    key: "k8s/{tag[1]}/dt=%Y-%m-%d/{hostname}-{unique}{ext}"
    secret_access_key: ${S3_SECRET}
    access_key_id: AKIAEXAMPLE
`
	c, err := ParseWithEnv([]byte(good), "s3.yml", lookupIn(map[string]string{"S3_SECRET": "s3cr3t"}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Outputs[0].S3
	want := DefaultS3Output()
	want.Bucket, want.Region, want.Compression = "my-logs", "eu-west-1", "zstd"
	want.Key = "k8s/{tag[1]}/dt=%Y-%m-%d/{hostname}-{unique}{ext}"
	want.AccessKeyID, want.SecretAccessKey = "AKIAEXAMPLE", "s3cr3t"
	if d := diff(*s, want); d != "" {
		t.Errorf("parsed s3 section differs:\n%s", d)
	}
	if strings.Contains(c.Redacted(), "s3cr3t") {
		t.Error("Redacted shows the secret")
	}

	bad := `
inputs:
  - id: d
    type: docker
outputs:
  - id: archive
    type: s3
    bucket: my-logs
    kms_key_id: alias/logs
    key: "logs/{namespace}/{unique}"
    compression: brotli
`
	_, err = ParseWithEnv([]byte(bad), "s3.bad.yml", lookupIn(nil))
	for _, w := range []string{
		"s3.bad.yml:9: outputs[0].s3.kms_key_id: set without sse: aws:kms",
		`s3.bad.yml:10: outputs[0].s3.key: key template "logs/{namespace}/{unique}": unknown placeholder {namespace}`,
		`s3.bad.yml:11: outputs[0].s3.compression: invalid value "brotli" (want gzip, zstd or none)`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}

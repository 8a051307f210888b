package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// S3Output archives events to S3 (or an S3-compatible store) as objects of
// JSON lines or raw log lines, gzip or zstd compressed. One batch of the
// delivery engine becomes one object per distinct key (see Key); a chunk is
// acknowledged only after every object holding its events was stored.
//
// The type's defaults for the delivery keys not set:
// workers 1, flush_interval 5m (the age at which an object is closed), and
// max_in_flight_bytes workers × (max_object_bytes + 8 MiB), so that the
// engine can hold a whole object's queued events.
type S3Output struct {
	// Bucket is the destination bucket. Required.
	Bucket string `yaml:"bucket"`
	// Region of the bucket. Default: the AWS default chain (AWS_REGION,
	// AWS_DEFAULT_REGION, the shared config's profile), else us-east-1 when
	// endpoint is set; with neither, the output does not start.
	Region string `yaml:"region"`
	// Endpoint overrides the S3 endpoint URL, for S3-compatible stores
	// (http://host:port or https://host); use with force_path_style.
	Endpoint string `yaml:"endpoint"`
	// ForcePathStyle addresses the bucket as endpoint/bucket/key instead of
	// bucket.endpoint/key (most S3-compatible stores need it).
	ForcePathStyle bool `yaml:"force_path_style"`

	// Key is the object key template. Placeholders: {tag}, {tag[N]} (the
	// N-th dot-separated part of the tag, from 0), {hostname}, {unique} (26
	// characters, time-ordered and random: unique across restarts and
	// hosts; required), {index} (the object's number in this run, from 1),
	// {ext} (.json or .log, then .gz or .zst per compression), and the UTC
	// time of the object's events: %Y %m %d %H %M %S %y %j, %% for a "%".
	// Characters of the tag and hostname other than letters, digits and
	// "!-_.*'()" become "_". Events whose key differs before {unique} and
	// {index} are rendered (another tag, another hour) go to different
	// objects. Default logs/{tag}/%Y/%m/%d/%H/{hostname}-{unique}{ext}.
	Key string `yaml:"key"`
	// Format is "json" (default: one JSON object per line, the record's
	// fields plus time_key and tag_key) or "raw" (the raw_key field's
	// value alone per line, its one trailing newline removed; an event
	// without that string field is written as its JSON line).
	Format string `yaml:"format"`
	// TimeKey names the event-time field added to JSON lines; "" adds none.
	// Default @timestamp.
	TimeKey string `yaml:"time_key"`
	// TimeFormat is rfc3339nano (default), epoch_seconds, epoch_millis or
	// epoch_nanos.
	TimeFormat string `yaml:"time_format"`
	// TagKey names the tag field added to JSON lines; "" adds none.
	// Default tag.
	TagKey string `yaml:"tag_key"`
	// RawKey is the record field written by format raw. Default log.
	RawKey string `yaml:"raw_key"`
	// Compression is "gzip" (default), "zstd" or "none".
	Compression string `yaml:"compression"`
	// ContentType of the objects. Default: application/gzip or
	// application/zstd for compressed objects, else application/x-ndjson
	// (json) or text/plain; charset=utf-8 (raw); with
	// set_content_encoding, the type of the decoded content.
	ContentType string `yaml:"content_type"`
	// SetContentEncoding sets Content-Encoding: gzip (or zstd) on
	// compressed objects. Off by default: with it, browsers and some HTTP
	// clients decompress on download, so a .gz file is saved decoded.
	SetContentEncoding bool `yaml:"set_content_encoding"`

	// MaxObjectBytes closes an object (the engine's batch) when its
	// uncompressed content reaches it. Default 50 MiB.
	MaxObjectBytes ByteSize `yaml:"max_object_bytes"`
	// MaxOpenObjects bounds the distinct keys (objects) of one batch; one
	// more closes the batch. Default 64.
	MaxOpenObjects int `yaml:"max_open_objects"`
	// MultipartThreshold: an object whose stored (compressed) size exceeds
	// it is uploaded in parts. Default 16 MiB; at most 5 GiB.
	MultipartThreshold ByteSize `yaml:"multipart_threshold"`
	// PartBytes is the size of each part but the last, 5 MiB to 5 GiB.
	// Default 8 MiB.
	PartBytes ByteSize `yaml:"part_bytes"`
	// AbortAbandonedUploads, at start, aborts the multipart uploads under
	// the key template's static prefix whose keys match the template (with
	// this host's hostname when the template has {hostname}) and that were
	// initiated more than abandoned_upload_age ago: the leftovers of a
	// crash. Default true.
	AbortAbandonedUploads *bool `yaml:"abort_abandoned_uploads"`
	// AbandonedUploadAge: see abort_abandoned_uploads. Default 1h.
	AbandonedUploadAge time.Duration `yaml:"abandoned_upload_age"`
	// RequestTimeout bounds each S3 call (PutObject, one part). Default 2m.
	RequestTimeout time.Duration `yaml:"request_timeout"`

	// StorageClass of the objects, e.g. STANDARD_IA, GLACIER_IR,
	// INTELLIGENT_TIERING. Default: the bucket's (STANDARD).
	StorageClass string `yaml:"storage_class"`
	// SSE is the server-side encryption: "" (the bucket's default), AES256
	// (SSE-S3) or aws:kms (SSE-KMS, with kms_key_id or the AWS managed key).
	SSE string `yaml:"sse"`
	// KMSKeyID is the KMS key (id or ARN) of sse aws:kms; "": the AWS
	// managed key.
	KMSKeyID string `yaml:"kms_key_id"`
	// Checksum is the integrity checksum sent with each upload: CRC32,
	// CRC32C, CRC64NVME, SHA1 or SHA256; "" leaves it to the SDK (CRC32);
	// "none" sends one only where S3 requires it (for stores that refuse
	// the SDK's trailing checksums).
	Checksum string `yaml:"checksum"`

	// AccessKeyID and SecretAccessKey (and SessionToken) are static
	// credentials. Without them the AWS default chain is used:
	// environment, shared config and credentials files, web identity
	// (EKS IRSA), container credentials (ECS task role, EKS Pod Identity),
	// EC2 instance metadata.
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

// S3 limits and delivery defaults of the s3 type.
const (
	S3MinPartBytes       = 5 << 20 // smallest part but the last
	S3MaxPartBytes       = 5 << 30 // largest part, and largest single PUT
	S3MaxParts           = 10000
	S3MinObjectBytes     = 64 << 10
	S3DefaultWorkers     = 1
	S3DefaultFlushPeriod = 5 * time.Minute
	// s3InFlightMargin is what the default in-flight bound adds to each
	// worker's max_object_bytes: room for the chunk being split while a
	// full object is held.
	s3InFlightMargin = 8 << 20
)

// DefaultS3Output returns an S3Output with every default applied and no
// bucket.
func DefaultS3Output() S3Output {
	return S3Output{
		Key:                   "logs/{tag}/%Y/%m/%d/%H/{hostname}-{unique}{ext}",
		Format:                "json",
		TimeKey:               "@timestamp",
		TimeFormat:            "rfc3339nano",
		TagKey:                "tag",
		RawKey:                "log",
		Compression:           "gzip",
		MaxObjectBytes:        50 << 20,
		MaxOpenObjects:        64,
		MultipartThreshold:    16 << 20,
		PartBytes:             8 << 20,
		AbortAbandonedUploads: ptr(true),
		AbandonedUploadAge:    time.Hour,
		RequestTimeout:        2 * time.Minute,
	}
}

func (s *S3Output) setDefaults() { *s = DefaultS3Output() }

// S3InFlightBytes is the delivery engine's in-flight bound for an s3
// output: d.MaxInFlightBytes when set, else workers × (max_object_bytes +
// 8 MiB), with d's workers or the type's default.
func S3InFlightBytes(s *S3Output, d *Delivery) ByteSize {
	if d.MaxInFlightBytes > 0 {
		return d.MaxInFlightBytes
	}
	w := d.Workers
	if w <= 0 {
		w = S3DefaultWorkers
	}
	return ByteSize(w) * (s.MaxObjectBytes + s3InFlightMargin)
}

// Validate checks s alone, with the rules `agent validate` applies to an
// s3 section (paths relative to "s3").
func (s *S3Output) Validate() error {
	v := &checker{}
	s.check(v, "s3")
	if len(v.errs) > 0 {
		return v.errs.sorted()
	}
	return nil
}

var s3StorageClasses = []string{"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
	"INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE"}

func (s *S3Output) check(v *checker, p string) {
	switch b := s.Bucket; {
	case b == "":
		v.errorf(p+".bucket", "missing")
	case strings.ContainsAny(b, "/ ") || len(b) > 255:
		v.errorf(p+".bucket", "invalid bucket name %s", v.q(p+".bucket", b))
	}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(p+".endpoint", "invalid endpoint %s (want http://host[:port] or https://host[:port])", v.q(p+".endpoint", s.Endpoint))
		}
	}
	if strings.ContainsAny(s.Region, " /") {
		v.errorf(p+".region", "invalid region %s", v.q(p+".region", s.Region))
	}
	if s.Key == "" {
		v.errorf(p+".key", "must not be empty")
	} else if parts, err := ParseS3Key(s.Key); err != nil {
		v.invalid(p+".key", s.Key, "key template", err)
	} else if !hasS3Part(parts, S3Unique) {
		v.errorf(p+".key", "key template %s lacks {unique}: objects would overwrite each other", v.q(p+".key", s.Key))
	}
	v.oneOf(p+".format", s.Format, "json", "raw")
	v.oneOf(p+".time_format", s.TimeFormat, "rfc3339nano", "epoch_seconds", "epoch_millis", "epoch_nanos")
	if s.TagKey != "" && s.TagKey == s.TimeKey {
		v.errorf(p+".tag_key", "same as time_key %s", v.q(p+".tag_key", s.TagKey))
	}
	if s.Format == "raw" && s.RawKey == "" {
		v.errorf(p+".raw_key", "must not be empty with format raw")
	}
	v.oneOf(p+".compression", s.Compression, "gzip", "zstd", "none")
	if s.SetContentEncoding && s.Compression == "none" {
		v.errorf(p+".set_content_encoding", "set with compression none: there is no encoding to declare")
	}
	if strings.ContainsAny(s.ContentType, "\r\n") {
		v.errorf(p+".content_type", "must be one line")
	}

	if s.MaxObjectBytes < S3MinObjectBytes {
		v.errorf(p+".max_object_bytes", "must be at least %s, got %s", formatSize(S3MinObjectBytes), formatSize(s.MaxObjectBytes))
	}
	v.positiveInt(p+".max_open_objects", s.MaxOpenObjects)
	switch {
	case s.MultipartThreshold <= 0:
		v.errorf(p+".multipart_threshold", "must be positive, got %d", s.MultipartThreshold)
	case s.MultipartThreshold > S3MaxPartBytes:
		v.errorf(p+".multipart_threshold", "%s is more than a single PUT may carry (5GiB)", formatSize(s.MultipartThreshold))
	}
	switch {
	case s.PartBytes < S3MinPartBytes || s.PartBytes > S3MaxPartBytes:
		v.errorf(p+".part_bytes", "must be between 5MiB and 5GiB (S3's part size limits), got %s", formatSize(s.PartBytes))
	case s.MaxObjectBytes > s.PartBytes*S3MaxParts:
		v.errorf(p+".max_object_bytes", "%s needs more than S3's 10000 parts of part_bytes %s", formatSize(s.MaxObjectBytes), formatSize(s.PartBytes))
	}
	if s.AbandonedUploadAge < 0 {
		v.errorf(p+".abandoned_upload_age", "must not be negative, got %s", s.AbandonedUploadAge)
	}
	v.positive(p+".request_timeout", s.RequestTimeout)

	if s.StorageClass != "" {
		v.oneOf(p+".storage_class", s.StorageClass, s3StorageClasses...)
	}
	switch s.SSE {
	case "", "AES256", "aws:kms":
	default:
		v.errorf(p+".sse", "invalid value %s (want AES256 or aws:kms)", v.q(p+".sse", s.SSE))
	}
	if s.KMSKeyID != "" && s.SSE != "aws:kms" {
		v.errorf(p+".kms_key_id", "set without sse: aws:kms")
	}
	if s.Checksum != "" {
		v.oneOf(p+".checksum", s.Checksum, "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "none")
	}
	switch {
	case s.AccessKeyID != "" && s.SecretAccessKey == "":
		v.errorf(p+".secret_access_key", "required when access_key_id is set")
	case s.AccessKeyID == "" && s.SecretAccessKey != "":
		v.errorf(p+".access_key_id", "required when secret_access_key is set")
	case s.AccessKeyID == "" && s.SessionToken != "":
		v.errorf(p+".session_token", "set without access_key_id and secret_access_key")
	}
	if s.RoleARN != "" && !strings.HasPrefix(s.RoleARN, "arn:") {
		v.errorf(p+".role_arn", "invalid role ARN %s (want arn:aws:iam::ACCOUNT:role/NAME)", v.q(p+".role_arn", s.RoleARN))
	}
	if s.ExternalID != "" && s.RoleARN == "" {
		v.errorf(p+".external_id", "set without role_arn")
	}
}

// checkOutput checks what an s3 section requires of its output's delivery
// and buffer sections; p is the output's path (outputs[i]). An object is
// one batch, and a batch's queued events stay in memory until its upload:
// the in-flight bound must hold a whole object (else the engine stops
// reading the queue before the object is full and waits for
// flush_interval), and must stay within a quarter of the queue so that
// drop_oldest never needs the chunks in flight (config/delivery.go checks
// this for an explicit max_in_flight_bytes; here also for the s3 default).
func (s *S3Output) checkOutput(v *checker, p string, o *Output) {
	d, b := &o.Delivery, &o.Buffer
	if d.MaxInFlightBytes > 0 && d.MaxInFlightBytes < s.MaxObjectBytes {
		v.errorf(p+".delivery.max_in_flight_bytes", "%s is below s3.max_object_bytes (%s): an object's events must fit in flight",
			formatSize(d.MaxInFlightBytes), formatSize(s.MaxObjectBytes))
	}
	if d.MaxInFlightBytes == 0 && d.Workers >= 0 && s.MaxObjectBytes > 0 && b.MaxBytes > 0 {
		if f := S3InFlightBytes(s, d); f > b.MaxBytes/4 {
			v.errorf(p+".buffer.max_bytes", "%s is less than 4 × the s3 in-flight bound %s (workers × (max_object_bytes + 8MiB)): raise it to at least %s or lower s3.max_object_bytes",
				formatSize(b.MaxBytes), formatSize(f), formatSize(4*f))
		}
	}
}

// S3KeyKind is the kind of one piece of a parsed key template.
type S3KeyKind uint8

// The pieces of a key template.
const (
	S3Text     S3KeyKind = iota // literal text (Text)
	S3Tag                       // {tag}, or {tag[N]} with N ≥ 0
	S3Hostname                  // {hostname}
	S3Unique                    // {unique}
	S3Index                     // {index}
	S3Ext                       // {ext}
	S3Time                      // a strftime directive: Text is its letter
)

// S3KeyPart is one piece of a parsed key template.
type S3KeyPart struct {
	Kind S3KeyKind
	Text string // S3Text: the text; S3Time: the directive's letter
	N    int    // S3Tag: the part index, -1 for the whole tag
}

// s3TimeDirectives are the strftime letters a key template may use.
const s3TimeDirectives = "YmdHMSyj"

// ParseS3Key parses an s3 key template (see S3Output.Key).
func ParseS3Key(t string) ([]S3KeyPart, error) {
	var parts []S3KeyPart
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, S3KeyPart{Kind: S3Text, Text: text.String()})
			text.Reset()
		}
	}
	if strings.HasPrefix(t, "/") {
		return nil, errors.New("key template must not start with \"/\" (S3 keys are relative to the bucket)")
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '%':
			if i+1 >= len(t) {
				return nil, fmt.Errorf("key template %q ends with a lone %%", t)
			}
			i++
			d := t[i]
			switch {
			case d == '%':
				text.WriteByte('%')
			case strings.IndexByte(s3TimeDirectives, d) >= 0:
				flush()
				parts = append(parts, S3KeyPart{Kind: S3Time, Text: string(d)})
			default:
				return nil, fmt.Errorf("key template %q: unknown time directive %%%c (want one of %%Y %%m %%d %%H %%M %%S %%y %%j or %%%%)", t, d)
			}
		case '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("key template %q: unclosed {", t)
			}
			name := t[i+1 : i+end]
			i += end
			p := S3KeyPart{N: -1}
			switch name {
			case "tag":
				p.Kind = S3Tag
			case "hostname":
				p.Kind = S3Hostname
			case "unique":
				p.Kind = S3Unique
			case "index":
				p.Kind = S3Index
			case "ext":
				p.Kind = S3Ext
			default:
				n, ok := strings.CutPrefix(name, "tag[")
				if n, ok2 := strings.CutSuffix(n, "]"); ok && ok2 {
					if k, err := strconv.Atoi(n); err == nil && k >= 0 && k < 100 {
						p.Kind, p.N = S3Tag, k
						break
					}
				}
				return nil, fmt.Errorf("key template %q: unknown placeholder {%s} (want {tag}, {tag[N]}, {hostname}, {unique}, {index} or {ext})", t, name)
			}
			flush()
			parts = append(parts, p)
		case '}':
			return nil, fmt.Errorf("key template %q: } without {", t)
		default:
			if c < 0x20 || c == 0x7f {
				return nil, fmt.Errorf("key template %q holds a control character", t)
			}
			text.WriteByte(c)
		}
	}
	flush()
	return parts, nil
}

func hasS3Part(parts []S3KeyPart, k S3KeyKind) bool {
	for _, p := range parts {
		if p.Kind == k {
			return true
		}
	}
	return false
}

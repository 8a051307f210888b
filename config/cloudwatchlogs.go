package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CloudWatchLogsOutput sends events to Amazon CloudWatch Logs with
// PutLogEvents. Each event becomes one log event: its message is the JSON
// record (format json) or the raw log line (format raw), its timestamp
// the event time in milliseconds. Log group and stream names come from
// templates, so one output can feed a group per log type and a stream per
// host and tag.
//
// The type's defaults for the delivery keys not set:
// workers 2, flush_interval 5s (as Docker's awslogs driver batches: the
// PutLogEvents quota is per account, shared by the whole fleet).
type CloudWatchLogsOutput struct {
	// LogGroupName is the log group's name template. Required.
	// Placeholders: {tag}, {tag[N]} (the N-th dot-separated part of the
	// tag, from 0), {hostname} and {field:KEY} (a record field; KEY may be
	// a dotted path into nested maps, e.g. {field:kubernetes.namespace_name}
	// or {field:ecs_cluster}). A rendered value's characters a group name
	// cannot hold (anything but letters, digits and "._-/#") become "_";
	// a missing value renders as "unknown"; names are cut at 512 bytes.
	LogGroupName string `yaml:"log_group_name"`
	// LogStreamName is the log stream's name template, with the same
	// placeholders; ":" and "*" (which stream names cannot hold) become
	// "_". Default {hostname}/{tag}.
	LogStreamName string `yaml:"log_stream_name"`
	// Format of each message: "json" (default: the record's fields, plus
	// time_key and tag_key if set) or "raw" (the raw_key field's value, its
	// one trailing newline removed; an event without that string field is
	// sent as its JSON record).
	Format string `yaml:"format"`
	// RawKey is the record field sent by format raw. Default log.
	RawKey string `yaml:"raw_key"`
	// TimeKey names an event-time field added to JSON messages; "" (the
	// default) adds none: the log event's timestamp carries the time.
	TimeKey string `yaml:"time_key"`
	// TimeFormat of time_key: rfc3339nano (default), epoch_seconds,
	// epoch_millis or epoch_nanos.
	TimeFormat string `yaml:"time_format"`
	// TagKey names a tag field added to JSON messages; "" (default) adds
	// none.
	TagKey string `yaml:"tag_key"`

	// MaxEventBytes caps one message in UTF-8 bytes; a longer one is
	// truncated to it (at a character boundary, ending with "[truncated]")
	// and counted in sluice_output_truncated_events_total. Default
	// 262118: the long-standing 256 KiB event limit less the 26 bytes
	// CloudWatch counts per event. The current API allows 1 MiB per event
	// (up to 1048550 here).
	MaxEventBytes ByteSize `yaml:"max_event_bytes"`
	// MaxBatchEvents and MaxBatchBytes bound one batch of the delivery
	// engine, and so every PutLogEvents request made from it. Default and
	// maximum 10000 events, the service's limit.
	MaxBatchEvents int `yaml:"max_batch_events"`
	// MaxBatchBytes bounds the bytes of one batch, counting each message
	// plus 26, as CloudWatch does. Default and maximum 1048576, the
	// service's limit.
	MaxBatchBytes ByteSize `yaml:"max_batch_bytes"`

	// CreateLogGroup creates a missing log group (on the first
	// ResourceNotFoundException), with retention_in_days, log_group_class
	// and kms_key_id. Default true.
	CreateLogGroup *bool `yaml:"create_log_group"`
	// CreateLogStream creates a missing log stream. Default true.
	CreateLogStream *bool `yaml:"create_log_stream"`
	// RetentionInDays is set on the log groups the output creates; 0
	// (default) keeps events forever. One of 1, 3, 5, 7, 14, 30, 60, 90,
	// 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288
	// or 3653.
	RetentionInDays int `yaml:"retention_in_days"`
	// LogGroupClass of created groups: STANDARD (the service's default),
	// INFREQUENT_ACCESS or DELIVERY.
	LogGroupClass string `yaml:"log_group_class"`
	// KMSKeyID is the ARN of the KMS key that encrypts created groups.
	KMSKeyID string `yaml:"kms_key_id"`
	// RequestTimeout bounds each API call. Default 30s.
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

// CloudWatch Logs limits (PutLogEvents) and delivery defaults.
const (
	CloudWatchLogsEventOverhead   = 26 // bytes counted per event
	CloudWatchLogsMaxBatchBytes   = 1048576
	CloudWatchLogsMaxBatchEvents  = 10000
	CloudWatchLogsMaxEventBytes   = 1048576 - CloudWatchLogsEventOverhead
	CloudWatchLogsMaxNameBytes    = 512
	CloudWatchLogsDefaultWorkers  = 2
	CloudWatchLogsDefaultFlush    = 5 * time.Second
	cloudWatchLogsDefaultMaxEvent = 262144 - CloudWatchLogsEventOverhead
)

// CloudWatchLogsRetentionDays are the retention periods CloudWatch Logs
// accepts.
var CloudWatchLogsRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// DefaultCloudWatchLogsOutput returns a CloudWatchLogsOutput with every
// default applied and no log group.
func DefaultCloudWatchLogsOutput() CloudWatchLogsOutput {
	return CloudWatchLogsOutput{
		LogStreamName:   "{hostname}/{tag}",
		Format:          "json",
		RawKey:          "log",
		TimeFormat:      "rfc3339nano",
		MaxEventBytes:   cloudWatchLogsDefaultMaxEvent,
		MaxBatchEvents:  CloudWatchLogsMaxBatchEvents,
		MaxBatchBytes:   CloudWatchLogsMaxBatchBytes,
		CreateLogGroup:  ptr(true),
		CreateLogStream: ptr(true),
		RequestTimeout:  30 * time.Second,
	}
}

func (c *CloudWatchLogsOutput) setDefaults() { *c = DefaultCloudWatchLogsOutput() }

// Validate checks c alone, with the rules `agent validate` applies to a
// cloudwatch_logs section (paths relative to "cloudwatch_logs").
func (c *CloudWatchLogsOutput) Validate() error {
	v := &checker{}
	c.check(v, "cloudwatch_logs")
	if len(v.errs) > 0 {
		return v.errs.sorted()
	}
	return nil
}

func (c *CloudWatchLogsOutput) check(v *checker, p string) {
	if c.LogGroupName == "" {
		v.errorf(p+".log_group_name", "missing")
	} else if _, err := ParseCloudWatchLogsName(c.LogGroupName, true); err != nil {
		v.invalid(p+".log_group_name", c.LogGroupName, "log group template", err)
	}
	if c.LogStreamName == "" {
		v.errorf(p+".log_stream_name", "must not be empty")
	} else if _, err := ParseCloudWatchLogsName(c.LogStreamName, false); err != nil {
		v.invalid(p+".log_stream_name", c.LogStreamName, "log stream template", err)
	}
	checkAWSMessage(v, p, c.Format, c.RawKey, c.TimeKey, c.TimeFormat, c.TagKey)
	if c.MaxEventBytes < 1024 || c.MaxEventBytes > CloudWatchLogsMaxEventBytes {
		v.errorf(p+".max_event_bytes", "must be between 1KiB and %d (1MiB less the 26 bytes counted per event), got %d", CloudWatchLogsMaxEventBytes, c.MaxEventBytes)
	}
	if c.MaxBatchEvents < 1 || c.MaxBatchEvents > CloudWatchLogsMaxBatchEvents {
		v.errorf(p+".max_batch_events", "must be between 1 and %d (the PutLogEvents limit), got %d", CloudWatchLogsMaxBatchEvents, c.MaxBatchEvents)
	}
	switch {
	case c.MaxBatchBytes > CloudWatchLogsMaxBatchBytes || c.MaxBatchBytes <= 0:
		v.errorf(p+".max_batch_bytes", "must be between 1 and 1MiB (the PutLogEvents limit), got %d", c.MaxBatchBytes)
	case c.MaxEventBytes > 0 && c.MaxBatchBytes < c.MaxEventBytes+CloudWatchLogsEventOverhead:
		v.errorf(p+".max_batch_bytes", "%d is less than max_event_bytes + 26 (%d): a batch must hold the largest event", c.MaxBatchBytes, c.MaxEventBytes+CloudWatchLogsEventOverhead)
	}
	if c.RetentionInDays != 0 {
		ok := false
		for _, d := range CloudWatchLogsRetentionDays {
			ok = ok || d == c.RetentionInDays
		}
		if !ok {
			v.errorf(p+".retention_in_days", "%d is not a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653; 0 keeps events forever)", c.RetentionInDays)
		}
	}
	if c.LogGroupClass != "" {
		v.oneOf(p+".log_group_class", c.LogGroupClass, "STANDARD", "INFREQUENT_ACCESS", "DELIVERY")
	}
	if c.KMSKeyID != "" && !strings.HasPrefix(c.KMSKeyID, "arn:") {
		v.errorf(p+".kms_key_id", "must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), got %s", v.q(p+".kms_key_id", c.KMSKeyID))
	}
	v.positive(p+".request_timeout", c.RequestTimeout)
	checkAWSAccess(v, p, c.Region, c.Endpoint, c.AccessKeyID, c.SecretAccessKey, c.SessionToken, c.RoleARN, c.ExternalID)
}

// checkAWSMessage checks the message settings the AWS outputs share.
func checkAWSMessage(v *checker, p, format, rawKey, timeKey, timeFormat, tagKey string) {
	v.oneOf(p+".format", format, "json", "raw")
	if format == "raw" && rawKey == "" {
		v.errorf(p+".raw_key", "must not be empty with format raw")
	}
	v.oneOf(p+".time_format", timeFormat, "rfc3339nano", "epoch_seconds", "epoch_millis", "epoch_nanos")
	if tagKey != "" && tagKey == timeKey {
		v.errorf(p+".tag_key", "same as time_key %s", v.q(p+".tag_key", tagKey))
	}
}

// checkAWSAccess checks the connection settings the AWS outputs share
// (region, endpoint, credentials; see CloudWatchLogsOutput).
func checkAWSAccess(v *checker, p, region, endpoint, akid string, secret, token Secret, role, ext string) {
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			v.errorf(p+".endpoint", "invalid endpoint %s (want http://host[:port] or https://host[:port], without credentials)", v.q(p+".endpoint", endpoint))
		}
	}
	if strings.ContainsAny(region, " /:") {
		v.errorf(p+".region", "invalid region %s", v.q(p+".region", region))
	}
	switch {
	case akid != "" && secret == "":
		v.errorf(p+".secret_access_key", "required when access_key_id is set")
	case akid == "" && secret != "":
		v.errorf(p+".access_key_id", "required when secret_access_key is set")
	case akid == "" && token != "":
		v.errorf(p+".session_token", "set without access_key_id and secret_access_key")
	}
	if role != "" && !strings.HasPrefix(role, "arn:") {
		v.errorf(p+".role_arn", "invalid role ARN %s (want arn:aws:iam::ACCOUNT:role/NAME)", v.q(p+".role_arn", role))
	}
	if ext != "" && role == "" {
		v.errorf(p+".external_id", "set without role_arn")
	}
}

// CloudWatchLogsNameKind is the kind of one piece of a parsed log group or
// stream name template.
type CloudWatchLogsNameKind uint8

// The pieces of a name template.
const (
	CWLText     CloudWatchLogsNameKind = iota // literal text (Text)
	CWLTag                                    // {tag}, or {tag[N]} with N ≥ 0
	CWLHostname                               // {hostname}
	CWLField                                  // {field:KEY}: Text is KEY
)

// CloudWatchLogsNamePart is one piece of a parsed name template.
type CloudWatchLogsNamePart struct {
	Kind CloudWatchLogsNameKind
	Text string
	N    int // CWLTag: the part index, -1 for the whole tag
}

// CloudWatchLogsGroupByte reports whether a log group name may hold c.
func CloudWatchLogsGroupByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/#", c) >= 0
}

// CloudWatchLogsStreamByte reports whether a log stream name may hold c.
func CloudWatchLogsStreamByte(c byte) bool { return c != ':' && c != '*' }

// ParseCloudWatchLogsName parses a log group (group true) or log stream
// name template (see CloudWatchLogsOutput.LogGroupName). Its literal text
// must be valid in such a name and at most 512 bytes.
func ParseCloudWatchLogsName(t string, group bool) ([]CloudWatchLogsNamePart, error) {
	var parts []CloudWatchLogsNamePart
	var text strings.Builder
	what, valid := "log stream", CloudWatchLogsStreamByte
	if group {
		what, valid = "log group", CloudWatchLogsGroupByte
	}
	literal := 0
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, CloudWatchLogsNamePart{Kind: CWLText, Text: text.String()})
			literal += text.Len()
			text.Reset()
		}
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%s template %q: unclosed {", what, t)
			}
			name := t[i+1 : i+end]
			i += end
			p := CloudWatchLogsNamePart{N: -1}
			switch {
			case name == "tag":
				p.Kind = CWLTag
			case name == "hostname":
				p.Kind = CWLHostname
			case strings.HasPrefix(name, "field:"):
				p.Kind, p.Text = CWLField, name[len("field:"):]
				if p.Text == "" || strings.HasPrefix(p.Text, ".") || strings.HasSuffix(p.Text, ".") {
					return nil, fmt.Errorf("%s template %q: {field:KEY} needs a key (a field name or a dotted path)", what, t)
				}
			default:
				n, ok := strings.CutPrefix(name, "tag[")
				if n, ok2 := strings.CutSuffix(n, "]"); ok && ok2 {
					if k, err := strconv.Atoi(n); err == nil && k >= 0 && k < 100 {
						p.Kind, p.N = CWLTag, k
						break
					}
				}
				return nil, fmt.Errorf("%s template %q: unknown placeholder {%s} (want {tag}, {tag[N]}, {hostname} or {field:KEY})", what, t, name)
			}
			flush()
			parts = append(parts, p)
		case '}':
			return nil, fmt.Errorf("%s template %q: } without {", what, t)
		default:
			if !valid(c) || c < 0x20 || c == 0x7f {
				if group {
					return nil, fmt.Errorf("%s template %q holds %q: a group name takes letters, digits and \"._-/#\" only", what, t, c)
				}
				return nil, fmt.Errorf("%s template %q holds %q: a stream name cannot hold \":\", \"*\" or control characters", what, t, c)
			}
			text.WriteByte(c)
		}
	}
	flush()
	if literal > CloudWatchLogsMaxNameBytes {
		return nil, fmt.Errorf("%s template %q: its text alone is more than %d bytes", what, t, CloudWatchLogsMaxNameBytes)
	}
	if len(parts) == 0 {
		return nil, errors.New(what + " template is empty")
	}
	return parts, nil
}

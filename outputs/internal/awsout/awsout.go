// Package awsout is what the cloudwatch_logs, kinesis and firehose
// outputs share: the AWS SDK configuration (region, endpoint, static or
// default-chain credentials, an assumed role, no SDK retries), the
// message of an event (its JSON record or its raw log line), record field
// lookups for templates and keys, and error classification.
//
// # Invariants
//
//   - The SDK never retries: every client made from Load has
//     aws.NopRetryer, so a failed call returns at once and the delivery
//     engine retries it with its own back-off and jitter (forever, or up
//     to max_retries), counting and logging each failure. A throttled
//     call therefore never hides inside the SDK, and a request that
//     failed is never sent twice without the engine knowing.
//   - Request bodies reach net/http without io.WriterTo (see bodyGuard):
//     smithy-go wraps each body in a closer whose WriteTo returns io.EOF
//     once the SDK has closed it, and the SDK closes it as soon as the
//     answer is read; net/http's writer, which copies whatever follows
//     Content-Length after the body, then took that EOF for a write error
//     and closed the connection under the answer being read: the call
//     failed although the service had taken it (a duplicate on retry).
//     Seen against awsfake on loopback about once in 200 PutRecords calls
//     of 500 records; possible anywhere a fast answer meets a slow writer
//     goroutine.
//   - Secrets (secret_access_key, session_token) are config.Secret: they
//     reach only the SDK's credentials provider and signer, never a log
//     line or an error (the SDK's errors name the operation, the status
//     and the service's message, not the credentials).
package awsout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/sluice-agent/sluice/config"
)

// Access is an AWS output's connection settings.
type Access struct {
	Region          string
	Endpoint        string
	AccessKeyID     string
	SecretAccessKey config.Secret
	SessionToken    config.Secret
	RoleARN         string
	ExternalID      string
}

// Load returns the SDK configuration for a: static credentials when set,
// else the default chain (environment, shared files, web identity, ECS
// and EKS container credentials, IMDS), through an assumed role when
// RoleARN is set (session name sluice-<hostname>). No request is made.
// Without a region from a or the chain, the region is us-east-1 when an
// endpoint is set, else Load fails.
func Load(ctx context.Context, a Access, hostname string) (aws.Config, error) {
	var lo []func(*awsconfig.LoadOptions) error
	if a.Region != "" {
		lo = append(lo, awsconfig.WithRegion(a.Region))
	}
	if a.AccessKeyID != "" {
		lo = append(lo, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			a.AccessKeyID, string(a.SecretAccessKey), string(a.SessionToken))))
	}
	lo = append(lo, awsconfig.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	ac, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
	}
	if ac.Region == "" {
		if a.Endpoint == "" {
			return aws.Config{}, errors.New("no region: set region, or AWS_REGION, or a region in the shared config profile")
		}
		ac.Region = "us-east-1"
	}
	ac.HTTPClient = bodyGuard{ac.HTTPClient}
	if a.RoleARN != "" {
		stsc := sts.NewFromConfig(ac)
		ac.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsc, a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = SessionName(hostname)
			if a.ExternalID != "" {
				o.ExternalID = aws.String(a.ExternalID)
			}
		}))
	}
	return ac, nil
}

// bodyGuard hands net/http each request's body as a plain io.ReadCloser,
// so that copying it never calls the SDK body's WriteTo (see the package
// doc): a closed body then reads as io.EOF, the end of the body, instead
// of failing the write.
type bodyGuard struct{ c aws.HTTPClient }

func (g bodyGuard) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = readOnlyBody{r.Body}
	}
	return g.c.Do(r)
}

type readOnlyBody struct{ rc io.ReadCloser }

func (b readOnlyBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b readOnlyBody) Close() error               { return b.rc.Close() }

// SessionName is the assumed role's session name for a host: sluice-<host>
// with the characters STS refuses replaced by '-', at most 64 characters.
func SessionName(host string) string {
	b := []byte("sluice-" + host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("=,.@-_", c) >= 0) {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// Endpoint returns a pointer to e for a client's BaseEndpoint, or nil.
func Endpoint(e string) *string {
	if e == "" {
		return nil
	}
	return aws.String(e)
}

// Code returns the service's error code of err ("ThrottlingException"),
// or "" when err is not an API error (a connection failure, a timeout).
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// ErrMessage returns the service's message of err, or err's text.
func ErrMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return err.Error()
}

// IsAuth reports whether code says the credentials or permissions are
// wrong: only an operator can fix it, so the output logs it at error
// level (the data stays queued).
func IsAuth(code string) bool {
	switch code {
	case "UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
		"ExpiredTokenException", "IncompleteSignature", "MissingAuthenticationTokenException",
		"InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "NotAuthorized":
		return true
	}
	return false
}

// Hint returns advice for an operator about a whole-request failure
// code, or "".
func Hint(code string) string {
	switch {
	case IsAuth(code):
		return "check the credentials (access keys, role_arn, the task or pod role) and the IAM permissions; the events stay queued until a request succeeds"
	case code == "ResourceNotFoundException":
		return "the stream does not exist in this account and region; the events stay queued until it does"
	case strings.HasPrefix(code, "KMS"):
		return "the stream's KMS key is unusable (disabled, missing, not permitted); the events stay queued"
	}
	return ""
}

// LogLimiter lets one message per key through per interval.
type LogLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// Allow reports whether a message of key may be logged now.
func (l *LogLimiter) Allow(key string, every time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < every {
		return false
	}
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	l.last[key] = now
	return true
}

// ErrorEvery is how often one kind of operator-fixable failure is logged
// at error level per output.
const ErrorEvery = time.Minute

// LogFailure logs a whole-request failure that needs an operator at
// error level, at most once per ErrorEvery per code (the engine logs each
// failed request at warn level as well).
func LogFailure(log *slog.Logger, l *LogLimiter, op string, err error) {
	code := Code(err)
	hint := Hint(code)
	if hint == "" || !l.Allow(code, ErrorEvery) {
		return
	}
	log.Error(op+" failed; retrying with back-off", "code", code, "err", ErrMessage(err), "hint", hint)
}

package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// uploadConcurrency bounds the objects of one batch uploaded at once.
const uploadConcurrency = 4

// operatorLogEvery bounds the logs about errors only an operator can fix.
const operatorLogEvery = time.Minute

// Send completes the batch's objects and uploads them. When every upload
// fails it returns the first error (the engine retries the whole batch);
// otherwise the events of failed objects get Retry and the others OK.
func (s *sink) Send(ctx context.Context, enc delivery.Encoder, res []delivery.Result) error {
	e := enc.(*encoder)
	e.finish()
	errs := make([]error, len(e.objs))
	if len(e.objs) == 1 {
		errs[0] = s.upload(ctx, e.objs[0])
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, uploadConcurrency)
		for i, o := range e.objs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				errs[i] = s.upload(ctx, o)
			})
		}
		wg.Wait()
	}
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	switch {
	case failed == 0:
		return nil
	case failed == len(errs):
		if len(errs) > 1 {
			return fmt.Errorf("%w (and %d more objects failed)", first, failed-1)
		}
		return first
	}
	for i, oi := range e.evObj {
		if err := errs[oi]; err != nil {
			res[i] = delivery.Result{Status: delivery.Retry, Reason: "upload", Detail: err.Error()}
		}
	}
	return nil
}

// upload stores one object under a fresh key: PutObject, or a multipart
// upload above multipart_threshold (aborted if any step fails).
func (s *sink) upload(ctx context.Context, o *object) error {
	o.key = finalKey(o.partition, s.index.Add(1), s.now())
	var err error
	if int64(len(o.body)) <= int64(s.cfg.MultipartThreshold) {
		err = s.put(ctx, o)
	} else {
		err = s.multipart(ctx, o)
	}
	if err != nil {
		return s.describe(err, o.key)
	}
	s.m.objects.Inc()
	s.m.storedBytes.Add(len(o.body))
	return nil
}

func (s *sink) metadata(o *object) map[string]string {
	return map[string]string{
		"sluice-events":     strconv.Itoa(o.events),
		"sluice-first-time": time.Unix(0, o.first).UTC().Format(time.RFC3339Nano),
		"sluice-last-time":  time.Unix(0, o.last).UTC().Format(time.RFC3339Nano),
		"sluice-host":       s.hostname,
	}
}

func (s *sink) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// checksum is the algorithm named in uploads: the configured one; for a
// multipart upload CRC32 when left to the SDK (parts and completion must
// agree), none with "none".
func (s *sink) checksum(multipart bool) types.ChecksumAlgorithm {
	switch c := s.cfg.Checksum; c {
	case "none":
		return ""
	case "":
		if multipart {
			return types.ChecksumAlgorithmCrc32
		}
		return ""
	default:
		return types.ChecksumAlgorithm(c)
	}
}

func (s *sink) put(ctx context.Context, o *object) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	in := &s3.PutObjectInput{
		Bucket:            aws.String(s.cfg.Bucket),
		Key:               aws.String(o.key),
		Body:              bytes.NewReader(o.body),
		ContentLength:     aws.Int64(int64(len(o.body))),
		ContentType:       aws.String(s.contentType),
		Metadata:          s.metadata(o),
		ChecksumAlgorithm: s.checksum(false),
	}
	if s.contentEncoding != "" {
		in.ContentEncoding = aws.String(s.contentEncoding)
	}
	if s.cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(s.cfg.StorageClass)
	}
	if s.cfg.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.cfg.SSE)
	}
	if s.cfg.KMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.cfg.KMSKeyID)
	}
	_, err := s.client.PutObject(ctx, in)
	if err != nil {
		return &opError{op: "PutObject", err: err}
	}
	return nil
}

func (s *sink) multipart(ctx context.Context, o *object) error {
	s.m.multipart.Inc()
	alg := s.checksum(true)
	cin := &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.cfg.Bucket),
		Key:               aws.String(o.key),
		ContentType:       aws.String(s.contentType),
		Metadata:          s.metadata(o),
		ChecksumAlgorithm: alg,
	}
	if s.contentEncoding != "" {
		cin.ContentEncoding = aws.String(s.contentEncoding)
	}
	if s.cfg.StorageClass != "" {
		cin.StorageClass = types.StorageClass(s.cfg.StorageClass)
	}
	if s.cfg.SSE != "" {
		cin.ServerSideEncryption = types.ServerSideEncryption(s.cfg.SSE)
	}
	if s.cfg.KMSKeyID != "" {
		cin.SSEKMSKeyId = aws.String(s.cfg.KMSKeyID)
	}
	cctx, cancel := s.opCtx(ctx)
	created, err := s.client.CreateMultipartUpload(cctx, cin)
	cancel()
	if err != nil {
		return &opError{op: "CreateMultipartUpload", err: err}
	}
	id := created.UploadId
	err = s.uploadParts(ctx, o, id, alg)
	if err != nil {
		s.abort(ctx, o.key, id)
	}
	return err
}

// uploadParts uploads o's body in parts of part_bytes and completes the
// upload.
func (s *sink) uploadParts(ctx context.Context, o *object, id *string, alg types.ChecksumAlgorithm) error {
	size := int(s.cfg.PartBytes)
	var parts []types.CompletedPart
	for n, off := int32(1), 0; off < len(o.body); n, off = n+1, off+size {
		p := o.body[off:min(off+size, len(o.body))]
		pctx, cancel := s.opCtx(ctx)
		out, err := s.client.UploadPart(pctx, &s3.UploadPartInput{
			Bucket:            aws.String(s.cfg.Bucket),
			Key:               aws.String(o.key),
			UploadId:          id,
			PartNumber:        aws.Int32(n),
			Body:              bytes.NewReader(p),
			ContentLength:     aws.Int64(int64(len(p))),
			ChecksumAlgorithm: alg,
		})
		cancel()
		if err != nil {
			return &opError{op: fmt.Sprintf("UploadPart %d", n), err: err}
		}
		parts = append(parts, types.CompletedPart{
			PartNumber:        aws.Int32(n),
			ETag:              out.ETag,
			ChecksumCRC32:     out.ChecksumCRC32,
			ChecksumCRC32C:    out.ChecksumCRC32C,
			ChecksumCRC64NVME: out.ChecksumCRC64NVME,
			ChecksumSHA1:      out.ChecksumSHA1,
			ChecksumSHA256:    out.ChecksumSHA256,
		})
	}
	cctx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err := s.client.CompleteMultipartUpload(cctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(o.key),
		UploadId:        id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return &opError{op: "CompleteMultipartUpload", err: err}
	}
	return nil
}

// abort aborts a failed multipart upload, best effort: even when ctx is
// done (shutdown), for a second. What it misses, a later start's
// clean-up or a bucket lifecycle rule removes.
func (s *sink) abort(ctx context.Context, key string, id *string) {
	d := 10 * time.Second
	if ctx.Err() != nil {
		d = time.Second // shutdown: the agent's grace period is running
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: id,
	})
	if err != nil {
		s.log.Warn("abort of a failed multipart upload failed; a later start cleans it up", "key", key, "err", err)
		return
	}
	s.m.abortedFailed.Inc()
}

// abortAbandoned aborts the multipart uploads a crash left behind (see
// the package doc): those under the key template's static prefix whose
// key matches the template and that are older than abandoned_upload_age.
func (s *sink) abortAbandoned(ctx context.Context) {
	re := s.key.matcher()
	cutoff := s.now().Add(-s.cfg.AbandonedUploadAge)
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.cfg.Bucket)}
	if p := s.key.staticPrefix(); p != "" {
		in.Prefix = aws.String(p)
	}
	aborted := 0
	for {
		lctx, cancel := s.opCtx(ctx)
		out, err := s.client.ListMultipartUploads(lctx, in)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("listing abandoned multipart uploads failed; not cleaning up this time", "err", s.describe(&opError{op: "ListMultipartUploads", err: err}, ""))
			}
			return
		}
		for _, u := range out.Uploads {
			key := aws.ToString(u.Key)
			if !re.MatchString(key) || u.Initiated == nil || u.Initiated.After(cutoff) {
				continue
			}
			actx, cancel := s.opCtx(ctx)
			_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.cfg.Bucket), Key: u.Key, UploadId: u.UploadId,
			})
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("abort of an abandoned multipart upload failed", "key", key, "err", err)
				}
				continue
			}
			aborted++
			s.m.abortedAbandoned.Inc()
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	if aborted > 0 {
		s.log.Info("aborted abandoned multipart uploads", "count", aborted, "older_than", s.cfg.AbandonedUploadAge)
	}
}

// opError is a failed S3 call.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// Error is an upload that failed, with what an operator should know.
type Error struct {
	Key    string
	Code   string // the S3 error code, e.g. SignatureDoesNotMatch; "" if none
	Status int    // the HTTP status, 0 without a response
	Hint   string // for errors only configuration fixes: what to check
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("s3 object %s: %v", e.Key, e.Err)
	if e.Key == "" {
		msg = fmt.Sprintf("s3: %v", e.Err)
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + "; the events stay queued and are retried)"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// describe wraps err into an *Error and, for errors only an operator can
// fix, logs them at error level once per code and operatorLogEvery.
func (s *sink) describe(err error, key string) error {
	e := &Error{Key: key, Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		e.Code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.Status = re.HTTPStatusCode()
	}
	e.Hint = hint(e.Code, e.Status, err)
	if e.Hint != "" && s.limiter.allow(e.Code+e.Hint, operatorLogEvery) {
		s.log.Error("S3 refuses the output's requests; fix the configuration (events stay queued and are retried)",
			"bucket", s.cfg.Bucket, "code", e.Code, "status", e.Status, "hint", e.Hint, "err", err)
	}
	return e
}

// hint says what to check for the errors that retrying alone never fixes.
func hint(code string, status int, err error) string {
	switch {
	case code == "SignatureDoesNotMatch":
		return "the secret access key does not match the access key id: check secret_access_key or the credential chain"
	case code == "InvalidAccessKeyId":
		return "the access key id is unknown to the store: check access_key_id or the credential chain"
	case code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired":
		return "the session credentials expired or are invalid: check session_token or the credential chain"
	case code == "AccessDenied" || code == "AllAccessDisabled" || status == http.StatusForbidden:
		return "access denied: the credentials need s3:PutObject, s3:AbortMultipartUpload and s3:ListBucketMultipartUploads on the bucket (and kms:GenerateDataKey with sse aws:kms)"
	case code == "NoSuchBucket":
		return "the bucket does not exist: check bucket (and endpoint)"
	case code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || code == "IllegalLocationConstraintException" || status == http.StatusMovedPermanently:
		return "the bucket is in another region: check region"
	case strings.HasPrefix(code, "KMS."):
		return "SSE-KMS failed: check kms_key_id and the key's policy"
	case code == "InvalidStorageClass":
		return "the store does not accept storage_class"
	case strings.Contains(err.Error(), "failed to retrieve credentials"):
		return "no usable credentials: set access_key_id and secret_access_key, or configure the default chain (environment, shared config, IRSA, ECS/EKS, instance metadata)"
	}
	return ""
}

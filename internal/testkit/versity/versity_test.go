package versity_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sluice-agent/sluice/internal/testkit/versity"
)

func gz(b []byte) []byte {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

func TestPutListGet(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []versity.Option
	}{
		{"xattr", nil},
		{"sidecar", []versity.Option{versity.WithSidecar()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := versity.Start(t, tc.opts...)
			if tc.name == "sidecar" && s.Sidecar() == "" {
				t.Fatal("WithSidecar: no sidecar dir")
			}
			t.Logf("metadata sidecar: %q", s.Sidecar())
			if s.Region() != "us-east-1" {
				t.Fatalf("region %q", s.Region())
			}
			s.CreateBucket(t, "logs")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			plain := []byte("{\"log\":\"hello\"}\n")
			zipped := gz(bytes.Repeat(plain, 100))
			c := s.Client()
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("logs"), Key: aws.String("a/b/2024/01/02/chunk-1.json.gz"),
				Body: bytes.NewReader(zipped), ContentEncoding: aws.String("gzip"),
				ContentType: aws.String("application/json"), Metadata: map[string]string{"sluice-records": "100"},
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("logs"), Key: aws.String("plain.json"), Body: bytes.NewReader(plain),
			}); err != nil {
				t.Fatal(err)
			}
			objs := s.Objects(t, "logs")
			if len(objs) != 2 {
				t.Fatalf("objects: %+v", objs)
			}
			o := objs[0]
			if o.Key != "a/b/2024/01/02/chunk-1.json.gz" || !bytes.Equal(o.Body, zipped) || o.Size != int64(len(zipped)) ||
				o.ContentEncoding != "gzip" || o.ContentType != "application/json" || o.Metadata["sluice-records"] != "100" || o.ETag == "" {
				t.Errorf("gzip object: %+v", o)
			}
			if o := objs[1]; o.Key != "plain.json" || !bytes.Equal(o.Body, plain) || o.ContentEncoding != "" {
				t.Errorf("plain object: %+v", o)
			}
			// The posix backend stores the body as a plain file.
			onDisk, err := os.ReadFile(filepath.Join(s.Dir(), "logs", "a/b/2024/01/02/chunk-1.json.gz"))
			if err != nil || !bytes.Equal(onDisk, zipped) {
				t.Errorf("on disk: %v, %d bytes", err, len(onDisk))
			}
		})
	}
}

func TestWrongSecret(t *testing.T) {
	s := versity.Start(t)
	s.CreateBucket(t, "logs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := s.NewClient(s.AccessKey(), s.SecretKey()+"x")
	_, err := bad.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v", err)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("wrong secret: status of %v", err)
	}
	if objs := s.Objects(t, "logs"); len(objs) != 0 {
		t.Fatalf("stored with a wrong secret: %+v", objs)
	}
	// An unknown access key is refused too.
	_, err = s.NewClient("nobody", s.SecretKey()).ListBuckets(ctx, &s3.ListBucketsInput{})
	if !errors.As(err, &ae) {
		t.Fatalf("unknown key: %v", err)
	}
	t.Logf("unknown access key: %s", ae.ErrorCode())
}

func TestMultipartUploads(t *testing.T) {
	s := versity.Start(t)
	s.CreateBucket(t, "logs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.Client()
	if ups := s.ListMultipartUploads(t, "logs"); len(ups) != 0 {
		t.Fatalf("uploads at start: %+v", ups)
	}
	var ids []string
	for _, k := range []string{"big-1", "big-2"} {
		out, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.UploadId))
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String("logs"), Key: aws.String("big-1"), UploadId: aws.String(ids[0]),
		PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("part one")),
	}); err != nil {
		t.Fatal(err)
	}
	ups := s.ListMultipartUploads(t, "logs")
	if len(ups) != 2 || ups[0].Key != "big-1" || ups[0].UploadID != ids[0] || ups[1].Key != "big-2" || ups[0].Initiated.IsZero() {
		t.Fatalf("uploads: %+v", ups)
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("big-1"), UploadId: aws.String(ids[0])}); err != nil {
		t.Fatal(err)
	}
	if ups := s.ListMultipartUploads(t, "logs"); len(ups) != 1 || ups[0].Key != "big-2" {
		t.Fatalf("uploads after abort: %+v", ups)
	}
	if objs := s.Objects(t, "logs"); len(objs) != 0 {
		t.Fatalf("incomplete uploads listed as objects: %+v", objs)
	}
}

func TestStop(t *testing.T) {
	s := versity.Start(t)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.Endpoint() + "/health"); err == nil {
		t.Fatal("stopped gateway still answers")
	}
}

// Package versity runs a real Versity S3 Gateway (versitygw v1.8.0, posix
// backend) as a child process: the S3 peer that checks SigV4, for tests of
// the S3 output, with aws-sdk-go-v2 helpers to read back what was stored.
//
// # Invariants
//
//   - Start binds 127.0.0.1 only, on a free port, with a fresh t.TempDir()
//     posix root, and returns only once GET /health answers 200 (bounded by
//     readyTimeout). The process is stopped in t.Cleanup: SIGTERM, then
//     SIGKILL after stopTimeout, and it is always reaped.
//   - The binary is SLUICE_VERSITYGW, else `versitygw` on PATH, else
//     $HOME/go/bin/versitygw. If none exists the test is skipped, or fails
//     when SLUICE_REQUIRE_PEERS=1 (CI).
//   - The gateway runs in single-account mode with the root credentials
//     AccessKey/SecretKey (ROOT_ACCESS_KEY_ID / ROOT_SECRET_ACCESS_KEY) and
//     region Region; every request must be SigV4-signed with them (a wrong
//     secret gets 403 SignatureDoesNotMatch).
//   - Object metadata (Content-Encoding, Content-Type, x-amz-meta-*, ETag)
//     lives in user xattrs of the posix files. Start probes the root for
//     user xattr support and, where it is missing (tmpfs without xattrs,
//     some overlay setups), runs with `--sidecar DIR` instead; Sidecar
//     reports which one is in use.
//   - The helpers (Client, CreateBucket, Objects, ListMultipartUploads) use
//     the SDK with path-style addressing and static credentials, never the
//     environment's AWS_* settings. Object bodies are read as stored: a
//     gzip object comes back as gzip bytes.
//   - Objects of bucket B are plain files at Dir()/B/<key>.
package versity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"
)

// Environment variables.
const (
	EnvBinary       = "SLUICE_VERSITYGW"     // path of the versitygw binary
	EnvRequirePeers = "SLUICE_REQUIRE_PEERS" // "1": a missing binary fails the test
)

// InstallCommand installs the binary this package expects.
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Defaults.
const (
	DefaultAccessKey = "sluice-test-access"
	DefaultSecretKey = "sluice-test-secret-0123456789"
	DefaultRegion    = "us-east-1"
)

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	opTimeout    = 30 * time.Second
)

// Option configures Start.
type Option func(*config)

type config struct {
	access, secret, region string
	sidecar                bool
	flags                  []string
}

// WithCredentials sets the root access key and secret.
func WithCredentials(accessKey, secretKey string) Option {
	return func(c *config) { c.access, c.secret = accessKey, secretKey }
}

// WithRegion sets the gateway's region (DefaultRegion otherwise).
func WithRegion(region string) Option { return func(c *config) { c.region = region } }

// WithSidecar stores metadata in a sidecar directory even where the
// filesystem has user xattrs.
func WithSidecar() Option { return func(c *config) { c.sidecar = true } }

// WithFlags adds global gateway flags (placed before the "posix" command).
func WithFlags(flags ...string) Option {
	return func(c *config) { c.flags = append(c.flags, flags...) }
}

// Server is one running versitygw.
type Server struct {
	endpoint               string
	access, secret, region string
	dir, sidecar           string
	logPath                string
	cmd                    *exec.Cmd
	done                   chan struct{}
	client                 *s3.Client
}

// Binary returns the path of the versitygw binary, or an error naming where
// it looked.
func Binary() (string, error) {
	const name = "versitygw"
	if p := os.Getenv(EnvBinary); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", fmt.Errorf("%s=%s: not a file", EnvBinary, p)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $%s, PATH or $HOME/go/bin", name, EnvBinary)
}

// Start runs versitygw for the duration of t.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	c := config{access: DefaultAccessKey, secret: DefaultSecretKey, region: DefaultRegion}
	for _, o := range opts {
		o(&c)
	}
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("versity: %s=1 but %v (install: %s)", EnvRequirePeers, err, InstallCommand)
		}
		t.Skipf("versity: %v (install: %s; %s=1 makes this a failure)", err, InstallCommand, EnvRequirePeers)
	}
	dir := t.TempDir()
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		s, err := start(bin, dir, c)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("versity: %v", err)
				}
				if t.Failed() {
					t.Logf("versity: log tail:\n%s", tail(s.logPath, 4096))
				}
			})
			return s
		}
		lastErr = err
	}
	t.Fatalf("versity: %v", lastErr)
	return nil
}

// xattrsWork reports whether dir's filesystem takes user xattrs.
func xattrsWork(dir string) bool {
	const name = "user.sluice.probe"
	if err := unix.Setxattr(dir, name, []byte("1"), 0); err != nil {
		return false
	}
	_ = unix.Removexattr(dir, name)
	return true
}

func start(bin, dir string, c config) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// gw-N/root and gw-N/meta: versitygw refuses a sidecar whose path has
	// the root's path as a string prefix (root-meta next to root).
	base, err := os.MkdirTemp(dir, "gw-")
	if err != nil {
		return nil, fmt.Errorf("posix root: %w", err)
	}
	root := filepath.Join(base, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("posix root: %w", err)
	}
	s := &Server{
		endpoint: "http://" + addr,
		access:   c.access, secret: c.secret, region: c.region,
		dir:     root,
		logPath: filepath.Join(dir, "versitygw.log"),
		done:    make(chan struct{}),
	}
	posix := []string{"posix"}
	if c.sidecar || !xattrsWork(root) {
		s.sidecar = filepath.Join(base, "meta")
		if err := os.Mkdir(s.sidecar, 0o755); err != nil {
			return nil, fmt.Errorf("sidecar dir: %w", err)
		}
		posix = append(posix, "--sidecar", s.sidecar)
	}
	posix = append(posix, root)
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	args := append([]string{"--port", addr, "--health", "/health", "-q"}, c.flags...)
	cmd := exec.Command(bin, append(args, posix...)...)
	// Only the root credentials: the AWS_* of the test's environment are
	// not the gateway's business.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"ROOT_ACCESS_KEY_ID=" + c.access,
		"ROOT_SECRET_ACCESS_KEY=" + c.secret,
		"VGW_REGION=" + c.region,
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s.cmd = cmd
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(s.done)
	}()
	if err := s.waitReady(); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(s.logPath, 2048))
	}
	s.client = s.NewClient(c.access, c.secret)
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited before it was ready: %v", s.cmd.ProcessState)
		default:
		}
		resp, err := c.Get(s.endpoint + "/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /health: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw not ready at %s within %v (last: %v)", s.endpoint, readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after a few seconds. It
// waits until the process is reaped and may be called more than once (a
// stopped gateway refuses connections: a dead S3).
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-s.done
	return fmt.Errorf("versitygw pid %d ignored SIGTERM for %v (killed)", pid, stopTimeout)
}

// Endpoint is the S3 endpoint URL, e.g. http://127.0.0.1:PORT (use with
// path-style addressing).
func (s *Server) Endpoint() string { return s.endpoint }

// AccessKey is the root access key id.
func (s *Server) AccessKey() string { return s.access }

// SecretKey is the root secret access key.
func (s *Server) SecretKey() string { return s.secret }

// Region is the region the gateway signs for.
func (s *Server) Region() string { return s.region }

// Dir is the posix root: bucket B's objects are files under Dir()/B.
func (s *Server) Dir() string { return s.dir }

// Sidecar is the metadata sidecar directory, "" when metadata is in xattrs.
func (s *Server) Sidecar() string { return s.sidecar }

// LogPath is the file holding the process's stdout and stderr.
func (s *Server) LogPath() string { return s.logPath }

// Client is an S3 client for the gateway with the root credentials.
func (s *Server) Client() *s3.Client { return s.client }

// NewClient returns an S3 client for the gateway signing with the given
// credentials (path-style, Region, no environment configuration).
func (s *Server) NewClient(accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		Region:       s.region,
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("versity: create bucket %s: %v", name, err)
	}
}

// Object is one stored object, as GetObject returns it.
type Object struct {
	Key             string
	Body            []byte // as stored (not decoded)
	Size            int64
	ETag            string
	ContentType     string
	ContentEncoding string
	Metadata        map[string]string // x-amz-meta-*, keys lower-case without the prefix
	LastModified    time.Time
}

// Objects lists every object of bucket (ListObjectsV2, all pages, in key
// order) and reads each one back with GetObject.
func (s *Server) Objects(t testing.TB, bucket string) []Object {
	t.Helper()
	objs, err := s.objects(bucket)
	if err != nil {
		t.Fatalf("versity: %v", err)
	}
	return objs
}

func (s *Server) objects(bucket string) ([]Object, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var objs []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return nil, fmt.Errorf("get %s/%s: %w", bucket, aws.ToString(o.Key), err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("read %s/%s: %w", bucket, aws.ToString(o.Key), err)
			}
			objs = append(objs, Object{
				Key:             aws.ToString(o.Key),
				Body:            body,
				Size:            aws.ToInt64(out.ContentLength),
				ETag:            aws.ToString(out.ETag),
				ContentType:     aws.ToString(out.ContentType),
				ContentEncoding: aws.ToString(out.ContentEncoding),
				Metadata:        out.Metadata,
				LastModified:    aws.ToTime(out.LastModified),
			})
		}
	}
	return objs, nil
}

// Upload is one multipart upload that was started and neither completed
// nor aborted.
type Upload struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// ListMultipartUploads returns the bucket's in-progress multipart uploads
// (all pages).
func (s *Server) ListMultipartUploads(t testing.TB, bucket string) []Upload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var ups []Upload
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			t.Fatalf("versity: list multipart uploads %s: %v", bucket, err)
		}
		for _, u := range out.Uploads {
			ups = append(ups, Upload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(out.IsTruncated) {
			return ups
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// tail returns up to the last n bytes of a file, for failure messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	if off := fi.Size() - n; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err.Error()
		}
	}
	b, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(bytes.TrimSpace(b))
}

// Launch starts versitygw outside a test (the benchmark command), with its
// data under dir; the caller stops it.
func Launch(dir string, opts ...Option) (*Server, error) {
	c := config{access: DefaultAccessKey, secret: DefaultSecretKey, region: DefaultRegion}
	for _, o := range opts {
		o(&c)
	}
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("%w (install: %s)", err, InstallCommand)
	}
	var lastErr error
	for range 3 {
		s, err := start(bin, dir, c)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// ObjectsErr is Objects returning its error.
func (s *Server) ObjectsErr(bucket string) ([]Object, error) { return s.objects(bucket) }

// CreateBucketErr is CreateBucket returning its error.
func (s *Server) CreateBucketErr(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	return err
}

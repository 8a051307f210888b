package awsout

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/awsfake"
)

// closingBody is what smithy-go hands net/http: WriteTo fails with
// io.EOF once the body is closed.
type closingBody struct {
	mu     sync.Mutex
	r      *strings.Reader
	closed bool
}

func (b *closingBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, io.EOF
	}
	return b.r.Read(p)
}

func (b *closingBody) WriteTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, io.EOF
	}
	return b.r.WriteTo(w)
}

func (b *closingBody) Close() error { b.mu.Lock(); b.closed = true; b.mu.Unlock(); return nil }

type captureClient struct{ body io.ReadCloser }

func (c *captureClient) Do(r *http.Request) (*http.Response, error) { c.body = r.Body; return nil, nil }

// TestBodyGuard: the body net/http gets has no WriteTo, and copying it
// after the SDK closed it ends cleanly (the io.Copy net/http does for
// what follows Content-Length), where the raw body fails with io.EOF.
func TestBodyGuard(t *testing.T) {
	raw := &closingBody{r: strings.NewReader("payload")}
	raw.Close()
	if _, err := io.Copy(io.Discard, raw); err != io.EOF {
		t.Fatalf("raw body after close: %v, want the io.EOF net/http trips on", err)
	}
	c := &captureClient{}
	req, _ := http.NewRequest("POST", "http://x/", nil)
	req.Body = &closingBody{r: strings.NewReader("payload")}
	bodyGuard{c}.Do(req)
	if _, ok := c.body.(io.WriterTo); ok {
		t.Fatal("the guarded body still has WriteTo")
	}
	c.body.Close()
	if n, err := io.Copy(io.Discard, c.body); n != 0 || err != nil {
		t.Fatalf("guarded body after close: %d, %v", n, err)
	}
}

// TestLoadAgainstFake: a client from Load (static keys, endpoint, no
// region: us-east-1) makes 300 PutRecords calls of 500 records against
// awsfake without one failing (the race bodyGuard closes hit about one
// in 200 before), with exactly one HTTP request per call.
func TestLoadAgainstFake(t *testing.T) {
	if testing.Short() {
		t.Skip("300 large calls")
	}
	fake := awsfake.Start(t)
	fake.SetDiscard(true)
	fake.CreateKinesisStream("k", 2)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	ac, err := Load(context.Background(), Access{Endpoint: fake.URL(), AccessKeyID: awsfake.AccessKeyID,
		SecretAccessKey: config.Secret(awsfake.SecretAccessKey)}, "host")
	if err != nil {
		t.Fatal(err)
	}
	if ac.Region != "us-east-1" {
		t.Errorf("region %q", ac.Region)
	}
	k := kinesis.NewFromConfig(ac, func(o *kinesis.Options) { o.BaseEndpoint = Endpoint(fake.URL()) })
	recs := make([]ktypes.PutRecordsRequestEntry, 500)
	for i := range recs {
		recs[i] = ktypes.PutRecordsRequestEntry{Data: make([]byte, 180), PartitionKey: aws.String("0123456789abcdef")}
	}
	for i := range 300 {
		if _, err := k.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("k"), Records: recs}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := fake.Requests("PutRecords"); n != 300 {
		t.Errorf("%d HTTP requests for 300 calls", n)
	}
	// No region and no endpoint: refused.
	if _, err := Load(context.Background(), Access{AccessKeyID: "a", SecretAccessKey: "b"}, "h"); err == nil || !strings.Contains(err.Error(), "no region") {
		t.Errorf("no region: %v", err)
	}
}

func TestSessionName(t *testing.T) {
	if got := SessionName("node 1:x"); got != "sluice-node-1-x" {
		t.Errorf("%q", got)
	}
	if got := SessionName(strings.Repeat("h", 100)); len(got) != 64 {
		t.Errorf("%d characters", len(got))
	}
}

// TestAssumeRole: with role_arn, the first call fetches temporary
// credentials from STS (AssumeRole with the static keys, session name
// sluice-<host>, the external id) and signs with them; the service sees
// only the temporary key and its session token.
func TestAssumeRole(t *testing.T) {
	var mu sync.Mutex
	var form url.Values
	var auth string
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		form, auth = r.PostForm, r.Header.Get("Authorization")
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIATEMPORARY</AccessKeyId><SecretAccessKey>temporary-secret</SecretAccessKey>
<SessionToken>temporary-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/logs/sluice-node-1</Arn><AssumedRoleId>AROAEXAMPLE:sluice-node-1</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></AssumeRoleResponse>`)
	}))
	defer sts.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	fake := awsfake.Start(t)
	fake.SetKeys(awsfake.Key{AccessKeyID: "ASIATEMPORARY", SecretAccessKey: "temporary-secret", SessionToken: "temporary-token"})
	fake.CreateKinesisStream("k", 1)
	ac, err := Load(context.Background(), Access{Region: "us-east-1", Endpoint: fake.URL(), AccessKeyID: "AKIABASE",
		SecretAccessKey: "base-secret", RoleARN: "arn:aws:iam::123456789012:role/logs", ExternalID: "ext-7"}, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	k := kinesis.NewFromConfig(ac, func(o *kinesis.Options) { o.BaseEndpoint = Endpoint(fake.URL()) })
	_, err = k.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("k"),
		Records: []ktypes.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("p")}}})
	if err != nil {
		t.Fatalf("PutRecords with the assumed role: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if form.Get("Action") != "AssumeRole" || form.Get("RoleArn") != "arn:aws:iam::123456789012:role/logs" ||
		form.Get("RoleSessionName") != "sluice-node-1" || form.Get("ExternalId") != "ext-7" || !strings.Contains(auth, "Credential=AKIABASE/") {
		t.Errorf("STS request %v, auth %q", form, auth)
	}
	if len(fake.KinesisRecords("k")) != 1 {
		t.Error("record not stored")
	}
}

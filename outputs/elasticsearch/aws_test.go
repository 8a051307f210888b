package elasticsearch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/testkit/esfake"
)

// awsEnv points the default AWS chain at static credentials only.
func awsEnv(t *testing.T, key, secret, token string) {
	t.Setenv("AWS_ACCESS_KEY_ID", key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", token)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// sigv4Front is an https server that checks each request's SigV4
// signature by signing it again with the same credentials and time, then
// hands it to fake.
type sigv4Front struct {
	srv    *httptest.Server
	creds  aws.Credentials
	region string
	svc    string

	mu     sync.Mutex
	good   int
	bad    []string
	tokens []string
}

func newSigv4Front(t *testing.T, fake *esfake.Server, creds aws.Credentials, region, svc string) *sigv4Front {
	target, _ := url.Parse(fake.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &sigv4Front{creds: creds, region: region, svc: svc}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if why := f.check(r, body); why != "" {
			f.mu.Lock()
			f.bad = append(f.bad, why)
			f.mu.Unlock()
			http.Error(w, `{"error":{"type":"security_exception","reason":"`+why+`"},"status":403}`, http.StatusForbidden)
			return
		}
		f.mu.Lock()
		f.good++
		f.tokens = append(f.tokens, r.Header.Get("X-Amz-Security-Token"))
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *sigv4Front) check(r *http.Request, body []byte) string {
	auth := r.Header.Get("Authorization")
	sum := sha256.Sum256(body)
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
		return "x-amz-content-sha256 " + got + " is not the body's hash"
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "bad x-amz-date"
	}
	_, rest, ok := strings.Cut(auth, "SignedHeaders=")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+f.creds.AccessKeyID+"/"+at.Format("20060102")+"/"+f.region+"/"+f.svc+"/aws4_request, ") || !ok {
		return "authorization " + auth
	}
	signed, _, _ := strings.Cut(rest, ",")
	req, _ := http.NewRequest(r.Method, "https://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	for _, h := range strings.Split(signed, ";") {
		if h == "host" || h == "content-length" {
			continue
		}
		req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	req.Header.Del("Authorization")
	if err := v4.NewSigner().SignHTTP(r.Context(), f.creds, req, r.Header.Get("X-Amz-Content-Sha256"), f.svc, f.region, at); err != nil {
		return err.Error()
	}
	if want := req.Header.Get("Authorization"); want != auth {
		return "signature mismatch: got " + auth + " want " + want
	}
	for _, h := range []string{"content-encoding", "content-type", "host", "x-amz-content-sha256", "x-amz-date"} {
		if !strings.Contains(";"+signed+";", ";"+h+";") {
			return h + " not signed: " + signed
		}
	}
	return ""
}

// caFile writes the server's certificate as a PEM file.
func caFile(t *testing.T, srv *httptest.Server) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSigV4: requests to an https host carry a SigV4 signature (service
// aoss here) over the gzipped body that verifies with the default chain's
// credentials, the session token included; the CA comes from tls.ca_file.
func TestSigV4(t *testing.T) {
	awsEnv(t, "AKIDSLUICETEST", "sluice-secret-key", "session-token-1")
	fake := esfake.Start(t)
	creds := aws.Credentials{AccessKeyID: "AKIDSLUICETEST", SecretAccessKey: "sluice-secret-key", SessionToken: "session-token-1"}
	front := newSigv4Front(t, fake, creds, "eu-west-1", "aoss")
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 5, 20)
	c := esConfig(front.srv.URL + "/prefix")
	c.AWS = &config.AWSSigning{Region: "eu-west-1", Service: "aoss"}
	c.TLS = &config.TLS{CAFile: caFile(t, front.srv)}
	r := startOutput(t, "es", c, fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	front.mu.Lock()
	defer front.mu.Unlock()
	if len(front.bad) > 0 || front.good == 0 {
		t.Fatalf("%d verified, bad: %v", front.good, front.bad)
	}
	for _, tok := range front.tokens {
		if tok != "session-token-1" {
			t.Fatalf("security token %q", tok)
		}
	}
	if fake.Count("") != 100 {
		t.Fatalf("%d docs", fake.Count(""))
	}
	if strings.Contains(r.logs.String(), "sluice-secret-key") {
		t.Fatal("secret logged")
	}
}

// TestSigV4WrongSecret: a signature the server does not accept (403)
// keeps the data queued.
func TestSigV4WrongSecret(t *testing.T) {
	awsEnv(t, "AKIDSLUICETEST", "not-the-secret", "")
	fake := esfake.Start(t)
	front := newSigv4Front(t, fake, aws.Credentials{AccessKeyID: "AKIDSLUICETEST", SecretAccessKey: "sluice-secret-key"}, "us-east-1", "es")
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 1, 5)
	c := esConfig(front.srv.URL)
	c.AWS = &config.AWSSigning{Region: "us-east-1"}
	c.TLS = &config.TLS{CAFile: caFile(t, front.srv)}
	r := startOutput(t, "es", c, fastDelivery(), q, dir)
	deadline := time.Now().Add(waitFor)
	for {
		front.mu.Lock()
		n := len(front.bad)
		front.mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := q.Stats(); st.Pending != 1 || fake.Count("") != 0 {
		t.Fatalf("queue %+v", st)
	}
	if msg, _ := r.o.LastError(); !strings.Contains(msg, "HTTP 403") {
		t.Fatalf("last error %q", msg)
	}
}

// TestTLSVerify: without the CA the server's certificate is refused (the
// data stays queued); insecure_skip_verify, when asked, accepts it.
func TestTLSVerify(t *testing.T) {
	fake := esfake.Start(t)
	target, _ := url.Parse(fake.URL())
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	front.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	front.StartTLS()
	defer front.Close()
	dir := t.TempDir()
	q := openQueue(t, dir+"/q")
	fill(t, q, 0, 1, 5)
	r := startOutput(t, "es", esConfig(front.URL), fastDelivery(), q, dir)
	waitLastError(t, r, "certificate")
	if st := q.Stats(); st.Pending != 1 {
		t.Fatalf("queue %+v", st)
	}
	r.stop(t)
	c := esConfig(front.URL)
	c.TLS = &config.TLS{InsecureSkipVerify: true}
	startOutput(t, "es", c, fastDelivery(), q, dir)
	waitEmpty(t, q, waitFor)
	if fake.Count("") != 5 {
		t.Fatalf("%d docs", fake.Count(""))
	}
}

func TestRegionFromHost(t *testing.T) {
	for h, want := range map[string]string{
		"search-logs-abc123.us-east-1.es.amazonaws.com": "us-east-1",
		"abc123.eu-west-3.aoss.amazonaws.com":           "eu-west-3",
		"vpc-x.ap-south-1.es.amazonaws.com.cn":          "ap-south-1",
		"localhost":                                     "",
		"es.amazonaws.com":                              "",
	} {
		if got := regionFromHost(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

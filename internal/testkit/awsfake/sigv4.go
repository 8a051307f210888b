package awsfake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	amzDateFormat = "20060102T150405Z"
	maxSkew       = 5 * time.Minute
)

// verify checks r's SigV4 signature by signing a copy of it (method, URI,
// the headers it says it signed, the body) with the secret of its access
// key and comparing the results. It returns the service's answer to a
// request that fails, or nil.
func (s *Server) verify(r *http.Request, body []byte, service string) *Fault {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return &Fault{Type: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"}
	}
	incomplete := &Fault{Type: "IncompleteSignatureException", Message: "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=" + strings.SplitN(auth, ",", 2)[0]}
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return incomplete
	}
	var cred, signed, sig string
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || signed == "" || sig == "" {
		return incomplete
	}
	s.mu.Lock()
	key, known := s.keys[scope[0]]
	region, now := s.region, s.now()
	s.mu.Unlock()
	invalidSig := func(msg string) *Fault { return &Fault{Type: "InvalidSignatureException", Message: msg} }
	switch {
	case !known:
		return &Fault{Type: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	case scope[4] != "aws4_request":
		return invalidSig("Credential should be scoped with a valid terminator: 'aws4_request', not '" + scope[4] + "'.")
	case scope[3] != service:
		return invalidSig("Credential should be scoped to correct service: '" + service + "'. ")
	case scope[2] != region:
		return invalidSig("Credential should be scoped to a valid region. ")
	}
	date := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, date)
	switch {
	case err != nil:
		return &Fault{Type: "IncompleteSignatureException", Message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."}
	case !strings.HasPrefix(date, scope[1]):
		return invalidSig("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" + scope[1] + "' != '" + date[:8] + "', from '" + date + "'.")
	case t.Sub(now) > maxSkew || now.Sub(t) > maxSkew:
		return invalidSig("Signature expired: " + date + " is now earlier than " + now.Add(-maxSkew).UTC().Format(amzDateFormat) + " (" + now.UTC().Format(amzDateFormat) + " - 5 min.)")
	}
	if tok := r.Header.Get("X-Amz-Security-Token"); tok != key.SessionToken {
		return &Fault{Type: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	}

	cp, err := http.NewRequestWithContext(context.Background(), r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return incomplete
	}
	cp.Host = r.Host
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host":
		case "content-length":
			cp.ContentLength = int64(len(body))
		default:
			if vs := r.Header.Values(h); len(vs) > 0 {
				cp.Header[http.CanonicalHeaderKey(h)] = vs
			}
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey, SessionToken: key.SessionToken}
	// A signer per request: a signer caches derived keys by access key,
	// date, region and service, not by secret, and tests change secrets.
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hex.EncodeToString(sum[:]), service, region, t); err != nil {
		return incomplete
	}
	want := cp.Header.Get("Authorization")
	got := "AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=" + signed + ", Signature=" + sig
	if subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		return invalidSig("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

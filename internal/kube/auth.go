package kube

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// The in-cluster service account files and environment (what the kubelet
// mounts into every pod with automountServiceAccountToken).
const (
	DefaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// serverURL is the API server's base URL: Config.APIServer, else the
// in-cluster https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
func serverURL(cfg *Config) (*url.URL, error) {
	s := cfg.APIServer
	if s == "" {
		host, port := cfg.getenv("KUBERNETES_SERVICE_HOST"), cfg.getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset) and no api_server is set")
		}
		s = "https://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("api server %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("api server %q: want http(s)://host[:port]", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// transport returns the HTTP transport: TLS verified against the CA file
// (when it exists; else the system roots), HTTP/2 where the server offers
// it (one connection carries both watches).
func transport(cfg *Config) (*http.Transport, error) {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
	}
	caFile := cfg.CAFile
	if caFile == "" {
		caFile = DefaultCAFile
	}
	pem, err := os.ReadFile(caFile)
	switch {
	case err == nil:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	case cfg.CAFile != "" || !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("CA file: %w", err)
	default:
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return t, nil
}

// tokenSource reads the bearer token file and reads it again every period
// (bound service account tokens are rotated by the kubelet, which rewrites
// the file; client-go re-reads it every minute too) and after a 401.
type tokenSource struct {
	path     string
	explicit bool // the path was configured: a missing file is an error
	period   time.Duration
	now      func() time.Time

	mu     sync.Mutex
	token  string
	readAt time.Time
	err    error
}

// get returns the current token ("" for none: no Authorization header).
func (s *tokenSource) get() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); s.readAt.IsZero() || now.Sub(s.readAt) >= s.period {
		s.readAt = now
		b, err := os.ReadFile(s.path)
		switch {
		case err == nil:
			s.token, s.err = string(bytes.TrimSpace(b)), nil
		case errors.Is(err, os.ErrNotExist) && !s.explicit:
			s.token, s.err = "", nil
		case s.token != "":
			// Keep the last token: a rotation caught between remove and
			// create must not drop authentication.
			s.err = nil
		default:
			s.err = fmt.Errorf("token file: %w", err)
		}
	}
	return s.token, s.err
}

// expire makes the next get read the file again.
func (s *tokenSource) expire() {
	s.mu.Lock()
	s.readAt = time.Time{}
	s.mu.Unlock()
}

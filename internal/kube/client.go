package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Defaults for zero Config values.
const (
	DefaultTokenReload  = time.Minute
	DefaultRetryInitial = 500 * time.Millisecond
	DefaultRetryMax     = 30 * time.Second
	DefaultWatchTimeout = 5 * time.Minute
	DefaultDeletedTTL   = 5 * time.Minute
	DefaultPageSize     = 500
)

// Config configures a Client.
type Config struct {
	// APIServer is the API server's URL (http:// or https://). Empty: the
	// in-cluster https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	APIServer string
	// NodeName is the node whose pods are watched (the DaemonSet's
	// NODE_NAME from the downward API). Required.
	NodeName string
	// Namespaces also lists and watches the namespaces (for their labels;
	// needs list and watch on namespaces).
	Namespaces bool
	// TokenFile holds the bearer token, read again every TokenReload.
	// Empty: DefaultTokenFile if it exists, else no token.
	TokenFile string
	// CAFile holds the CA certificates the server's certificate is checked
	// against. Empty: DefaultCAFile if it exists, else the system roots.
	CAFile string

	TokenReload  time.Duration // default 1m
	RetryInitial time.Duration // first back-off after an error; default 500ms
	RetryMax     time.Duration // back-off cap; default 30s
	// WatchTimeout is the server-side timeout of one watch request
	// (timeoutSeconds; each request takes a random value between it and
	// twice it, as client-go does, so that agents do not reconnect in step).
	// Default 5m.
	WatchTimeout time.Duration
	// DeletedTTL keeps a deleted pod in the cache that long, so that lines
	// read after its deletion are still enriched. Default 5m.
	DeletedTTL time.Duration
	// PageSize is the limit of one list page. Default 500.
	PageSize int

	// Log may be nil (discard); Metrics may be nil (a private set).
	Log     *slog.Logger
	Metrics *metrics.Set
	// Getenv reads the environment (nil: os.Getenv); for tests.
	Getenv func(string) string
}

func (cfg *Config) getenv(k string) string {
	if cfg.Getenv != nil {
		return cfg.Getenv(k)
	}
	return os.Getenv(k)
}

func (cfg *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.TokenReload, DefaultTokenReload)
	def(&cfg.RetryInitial, DefaultRetryInitial)
	def(&cfg.RetryMax, DefaultRetryMax)
	def(&cfg.WatchTimeout, DefaultWatchTimeout)
	def(&cfg.DeletedTTL, DefaultDeletedTTL)
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
}

// Client keeps a cache of the pods of one node (and of the namespaces) up
// to date with one list and one watch per resource. Create it with New and
// call Run once. Lookups never block on the network and are safe from any
// goroutine.
type Client struct {
	cfg   Config
	base  *url.URL
	tr    *http.Transport
	hc    *http.Client
	token *tokenSource
	log   *slog.Logger

	mu      sync.RWMutex
	pods    map[string]*podEntry // by uid
	mirrors map[string]string    // static pod uid (config hash) → its mirror pod's uid
	nss     map[string]*Namespace
	lastGC  time.Time
	gen     atomic.Uint64
	synced  chan struct{} // closed once every resource was listed
	pending atomic.Int32  // resources not listed yet
	started atomic.Bool
}

type podEntry struct {
	pod     *Pod
	deleted time.Time // zero while the pod exists
}

// New returns a Client. It reads nothing from the network until Run.
func New(cfg Config) (*Client, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("kube: empty node name (set node_name or the NODE_NAME environment variable from the downward API's spec.nodeName)")
	}
	cfg.setDefaults()
	base, err := serverURL(&cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	tr, err := transport(&cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	tokenFile, explicit := cfg.TokenFile, cfg.TokenFile != ""
	if !explicit {
		tokenFile = DefaultTokenFile
	}
	c := &Client{
		cfg: cfg, base: base, tr: tr, hc: &http.Client{Transport: tr}, log: cfg.Log,
		token:   &tokenSource{path: tokenFile, explicit: explicit, period: cfg.TokenReload, now: time.Now},
		pods:    make(map[string]*podEntry),
		mirrors: make(map[string]string),
		nss:     make(map[string]*Namespace),
		synced:  make(chan struct{}),
	}
	n := int32(1)
	if cfg.Namespaces {
		n++
	}
	c.pending.Store(n)
	return c, nil
}

// Run lists and watches until ctx is cancelled, retrying with back-off on
// every error (the cache keeps what it had meanwhile). It returns after
// every goroutine it started has exited.
func (c *Client) Run(ctx context.Context) {
	if !c.started.CompareAndSwap(false, true) {
		return
	}
	defer c.tr.CloseIdleConnections()
	var wg sync.WaitGroup
	wg.Go(func() {
		c.reflector("pods", url.Values{"fieldSelector": {"spec.nodeName=" + c.cfg.NodeName}}, c.podStore()).run(ctx)
	})
	if c.cfg.Namespaces {
		wg.Go(func() { c.reflector("namespaces", nil, c.nsStore()).run(ctx) })
	}
	wg.Wait()
}

// Gen changes whenever the metadata of a cached pod or namespace changes
// (a pod added, modified in a field Pod holds, or deleted; likewise a
// namespace). Reading it is one atomic load: a consumer compares it with
// the value it last saw and looks up again only when it moved.
func (c *Client) Gen() uint64 { return c.gen.Load() }

// Pod returns the pod with uid, or nil if it is not known (not listed or
// watched yet, or deleted more than DeletedTTL ago). A static pod's uid
// (the one of its log directory: the kubelet's config hash) finds its
// mirror pod, the API's copy of it, by the mirror's
// kubernetes.io/config.mirror annotation.
func (c *Client) Pod(uid string) *Pod {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.pods[uid]
	if e == nil {
		if m, ok := c.mirrors[uid]; ok {
			e = c.pods[m]
		}
	}
	if e != nil {
		return e.pod
	}
	return nil
}

// mirrorAnnotation is set by the kubelet on a static pod's mirror pod: the
// static pod's config hash, which is the uid of its log directory.
const mirrorAnnotation = "kubernetes.io/config.mirror"

// Namespace returns the namespace called name, or nil.
func (c *Client) Namespace(name string) *Namespace {
	c.mu.RLock()
	n := c.nss[name]
	c.mu.RUnlock()
	return n
}

// Synced is closed once the pods (and namespaces) were listed once.
func (c *Client) Synced() <-chan struct{} { return c.synced }

// WaitSynced waits until the first list completed, at most d or until ctx
// is done. It reports whether the cache is synced.
func (c *Client) WaitSynced(ctx context.Context, d time.Duration) bool {
	select {
	case <-c.synced:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.synced:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// listedOnce marks one resource listed.
func (c *Client) listedOnce() {
	if c.pending.Add(-1) == 0 {
		close(c.synced)
	}
}

// store is what a reflector feeds: a resource's cache.
type store struct {
	// replace installs a full list.
	replace func(items []json.RawMessage) error
	// apply applies one watch event (ADDED, MODIFIED, DELETED) and
	// returns the object's resourceVersion.
	apply func(typ string, obj json.RawMessage) (string, error)
}

func (c *Client) podStore() store {
	return store{
		replace: func(items []json.RawMessage) error {
			now := time.Now()
			fresh := make(map[string]*Pod, len(items))
			for _, raw := range items {
				var j podJSON
				if err := json.Unmarshal(raw, &j); err != nil {
					return fmt.Errorf("decode pod: %w", err)
				}
				if j.Metadata.UID != "" {
					fresh[j.Metadata.UID] = j.pod()
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			changed := false
			for _, p := range fresh {
				changed = c.putPod(p) || changed
			}
			for uid, e := range c.pods {
				if fresh[uid] == nil && e.deleted.IsZero() {
					e.deleted, changed = now, true
				}
			}
			c.gcLocked(now)
			if changed {
				c.gen.Add(1)
			}
			return nil
		},
		apply: func(typ string, raw json.RawMessage) (string, error) {
			var j podJSON
			if err := json.Unmarshal(raw, &j); err != nil {
				return "", fmt.Errorf("decode pod: %w", err)
			}
			p := j.pod()
			now := time.Now()
			c.mu.Lock()
			defer c.mu.Unlock()
			changed := false
			if typ == "DELETED" {
				if e := c.pods[p.UID]; e != nil && e.deleted.IsZero() {
					e.deleted, changed = now, true
				}
			} else if p.UID != "" {
				changed = c.putPod(p)
			}
			c.gcLocked(now)
			if changed {
				c.gen.Add(1)
			}
			return j.Metadata.ResourceVersion, nil
		},
	}
}

// putPod stores p, keeping the old *Pod when nothing the agent uses
// changed (status updates are frequent). Called with mu held.
func (c *Client) putPod(p *Pod) bool {
	if h := p.Annotations[mirrorAnnotation]; h != "" && h != p.UID {
		c.mirrors[h] = p.UID
	}
	if e := c.pods[p.UID]; e != nil {
		if e.deleted.IsZero() && e.pod.equal(p) {
			return false
		}
		e.pod, e.deleted = p, time.Time{}
		return true
	}
	c.pods[p.UID] = &podEntry{pod: p}
	return true
}

// gcLocked forgets pods deleted more than DeletedTTL ago, at most once a
// minute. Forgetting is not a change consumers must see (they keep what
// they had), so Gen does not move.
func (c *Client) gcLocked(now time.Time) {
	if now.Sub(c.lastGC) < time.Minute && !c.lastGC.IsZero() {
		return
	}
	c.lastGC = now
	for uid, e := range c.pods {
		if !e.deleted.IsZero() && now.Sub(e.deleted) > c.cfg.DeletedTTL {
			delete(c.pods, uid)
			if h := e.pod.Annotations[mirrorAnnotation]; h != "" && c.mirrors[h] == uid {
				delete(c.mirrors, h)
			}
		}
	}
}

func (c *Client) nsStore() store {
	return store{
		replace: func(items []json.RawMessage) error {
			fresh := make(map[string]*Namespace, len(items))
			for _, raw := range items {
				var j namespaceJSON
				if err := json.Unmarshal(raw, &j); err != nil {
					return fmt.Errorf("decode namespace: %w", err)
				}
				fresh[j.Metadata.Name] = j.namespace()
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			changed := len(fresh) != len(c.nss)
			for name, n := range fresh {
				if old := c.nss[name]; old != nil && old.equal(n) {
					fresh[name] = old
				} else {
					changed = true
				}
			}
			c.nss = fresh
			if changed {
				c.gen.Add(1)
			}
			return nil
		},
		apply: func(typ string, raw json.RawMessage) (string, error) {
			var j namespaceJSON
			if err := json.Unmarshal(raw, &j); err != nil {
				return "", fmt.Errorf("decode namespace: %w", err)
			}
			n := j.namespace()
			c.mu.Lock()
			defer c.mu.Unlock()
			old := c.nss[n.Name]
			switch {
			case typ == "DELETED":
				if old == nil {
					return j.Metadata.ResourceVersion, nil
				}
				delete(c.nss, n.Name)
			case old != nil && old.equal(n):
				return j.Metadata.ResourceVersion, nil
			default:
				c.nss[n.Name] = n
			}
			c.gen.Add(1)
			return j.Metadata.ResourceVersion, nil
		},
	}
}

// reflector lists one resource, then watches it from the list's
// resourceVersion, as client-go's Reflector does: a watch that ends is
// started again from the last resourceVersion seen (events or bookmarks);
// 410 Gone (the version was compacted) lists again; other errors back off.
type reflector struct {
	c        *Client
	resource string
	query    url.Values
	st       store
	log      *slog.Logger
	failing  bool
	listed   bool // the first list completed

	lists, watches, events, errs, gone *metrics.Counter
}

func (c *Client) reflector(resource string, query url.Values, st store) *reflector {
	set, l := c.cfg.Metrics, `{resource="`+resource+`"}`
	return &reflector{
		c: c, resource: resource, query: query, st: st, log: c.log.With("resource", resource),
		lists:   set.GetOrCreateCounter("sluice_kube_lists_total" + l),
		watches: set.GetOrCreateCounter("sluice_kube_watches_total" + l),
		events:  set.GetOrCreateCounter("sluice_kube_watch_events_total" + l),
		errs:    set.GetOrCreateCounter("sluice_kube_errors_total" + l),
		gone:    set.GetOrCreateCounter("sluice_kube_resource_version_expired_total" + l),
	}
}

// errGone is a 410: the resourceVersion is too old; list again.
var errGone = errors.New("resource version expired (410 Gone)")

func (r *reflector) run(ctx context.Context) {
	rv := ""
	attempt := 0
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = r.list(ctx); err != nil {
				rv = ""
				if ctx.Err() == nil {
					r.failed(err)
					attempt++
					sleep(ctx, r.backoff(attempt))
				}
				continue
			}
		}
		progressed, err := r.watch(ctx, &rv)
		if progressed {
			attempt = 0
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errGone):
			r.gone.Inc()
			r.log.Info("watch resource version expired; listing again")
			rv = ""
		case err != nil:
			r.failed(err)
			attempt++
			sleep(ctx, r.backoff(attempt))
		default:
			r.recovered()
		}
	}
}

// backoff is the wait before retry number attempt: full jitter over an
// exponential bound from RetryInitial to RetryMax.
func (r *reflector) backoff(attempt int) time.Duration {
	cfg := &r.c.cfg
	d := cfg.RetryInitial
	for i := 1; i < attempt && d < cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (r *reflector) failed(err error) {
	r.errs.Inc()
	if !r.failing {
		r.failing = true
		r.log.Warn("kubernetes API unavailable; metadata may be stale or missing until it returns (events still flow)", "err", err)
		return
	}
	r.log.Debug("kubernetes API still unavailable", "err", err)
}

func (r *reflector) recovered() {
	if r.failing {
		r.failing = false
		r.log.Info("kubernetes API reachable again")
	}
}

// list reads the whole resource, page by page, installs it and returns
// its resourceVersion. The first list is served from the API server's
// watch cache (resourceVersion=0, as informers do: cheap for the server,
// which matters with one agent per node); a list after 410 is a consistent
// read.
func (r *reflector) list(ctx context.Context) (string, error) {
	var items []json.RawMessage
	cont := ""
	for {
		q := r.values()
		if !r.listed && cont == "" {
			q.Set("resourceVersion", "0")
		}
		q.Set("limit", strconv.Itoa(r.c.cfg.PageSize))
		if cont != "" {
			q.Set("continue", cont)
		}
		var page struct {
			Metadata listMeta          `json:"metadata"`
			Items    []json.RawMessage `json:"items"`
		}
		err := r.get(ctx, q, 60*time.Second, func(body io.Reader) error {
			return json.NewDecoder(body).Decode(&page)
		})
		if errors.Is(err, errGone) && cont != "" {
			items, cont = nil, "" // the continue token expired: start over
			continue
		}
		if err != nil {
			return "", fmt.Errorf("list %s: %w", r.resource, err)
		}
		items = append(items, page.Items...)
		cont = page.Metadata.Continue
		if cont == "" {
			if err := r.st.replace(items); err != nil {
				return "", fmt.Errorf("list %s: %w", r.resource, err)
			}
			r.lists.Inc()
			if !r.listed {
				r.listed = true
				r.c.listedOnce()
			}
			r.recovered()
			rv := page.Metadata.ResourceVersion
			if rv == "" {
				rv = "0"
			}
			return rv, nil
		}
	}
}

// watch streams events from *rv, updating it, until the stream ends.
// progressed reports that the stream was opened (the server is
// reachable).
func (r *reflector) watch(ctx context.Context, rv *string) (progressed bool, err error) {
	q := r.values()
	q.Set("watch", "1")
	q.Set("resourceVersion", *rv)
	q.Set("allowWatchBookmarks", "true")
	timeout := r.c.cfg.WatchTimeout
	timeout += rand.N(timeout + 1)
	q.Set("timeoutSeconds", strconv.Itoa(int(timeout/time.Second)))
	r.watches.Inc()
	err = r.get(ctx, q, timeout+30*time.Second, func(body io.Reader) error {
		progressed = true
		r.recovered()
		dec := json.NewDecoder(body)
		for {
			var ev struct {
				Type   string          `json:"type"`
				Object json.RawMessage `json:"object"`
			}
			if err := dec.Decode(&ev); err != nil {
				if errors.Is(err, io.EOF) {
					return nil // the server closed the watch (timeoutSeconds)
				}
				return fmt.Errorf("watch stream: %w", err)
			}
			r.events.Inc()
			switch ev.Type {
			case "ADDED", "MODIFIED", "DELETED":
				v, err := r.st.apply(ev.Type, ev.Object)
				if err != nil {
					return err
				}
				if v != "" {
					*rv = v
				}
			case "BOOKMARK":
				var b struct {
					Metadata objectMeta `json:"metadata"`
				}
				if json.Unmarshal(ev.Object, &b) == nil && b.Metadata.ResourceVersion != "" {
					*rv = b.Metadata.ResourceVersion
				}
			case "ERROR":
				var s status
				_ = json.Unmarshal(ev.Object, &s)
				if s.Code == http.StatusGone {
					return errGone
				}
				return fmt.Errorf("watch error event: %d %s: %s", s.Code, s.Reason, s.Message)
			default:
				return fmt.Errorf("watch stream: unknown event type %q", ev.Type)
			}
		}
	})
	if err != nil && !errors.Is(err, errGone) {
		err = fmt.Errorf("watch %s: %w", r.resource, err)
	}
	return progressed, err
}

func (r *reflector) values() url.Values {
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	return q
}

// get sends GET <base>/api/v1/<resource>?q and hands a 200 body to read.
// Non-200 answers become errors (410: errGone; 401: the token is read
// again before the retry).
func (r *reflector) get(ctx context.Context, q url.Values, timeout time.Duration, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *r.c.base
	u.Path += "/api/v1/" + r.resource
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sluice-agent")
	token, err := r.c.token.get()
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var s status
		_ = json.Unmarshal(body, &s)
		msg := s.Message
		if msg == "" {
			msg = string(body)
		}
		switch resp.StatusCode {
		case http.StatusGone:
			return errGone
		case http.StatusUnauthorized:
			r.c.token.expire()
			return fmt.Errorf("401 Unauthorized (service account token rejected): %s", msg)
		case http.StatusForbidden:
			return fmt.Errorf("403 Forbidden (the ClusterRole must allow get, list and watch on pods and namespaces): %s", msg)
		}
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return read(resp.Body)
}

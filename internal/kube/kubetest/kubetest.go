// Package kubetest is a stand-in for the Kubernetes API server's pods and
// namespaces endpoints, for tests: list (with limit and continue) and
// watch (a stream of {"type","object"} lines, bookmarks, timeoutSeconds,
// sendInitialEvents), fieldSelector and labelSelector honoured, 410 Gone
// for a compacted resourceVersion, an optional bearer token, and Stop and
// Start on the same address to play an unreachable API server. Its wire
// format is checked against the real client-go (kubetest_test.go).
//
// It serves:
//
//	GET /api/v1/pods                        list, watch (?watch=1)
//	GET /api/v1/namespaces/{ns}/pods        list, watch
//	GET /api/v1/namespaces/{ns}/pods/{name} get
//	GET /api/v1/namespaces                  list, watch
//	GET /api/v1/namespaces/{name}           get
//
// Objects are kept as the JSON the real server sends (kind and apiVersion
// on watched and fetched objects, not on list items; metadata with uid,
// resourceVersion and creationTimestamp; a pod's spec and status). One
// resourceVersion counter serves both resources, as etcd's revision does.
package kubetest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pod describes a pod to serve.
type Pod struct {
	Namespace, Name, UID string
	Node                 string // spec.nodeName
	IP                   string // status.podIP
	Labels, Annotations  map[string]string
	// Owner, if set, is the controller reference.
	Owner      *Owner
	Containers []Container
	Phase      string // status.phase; default Running
}

// Owner is a controller owner reference.
type Owner struct {
	APIVersion string // default apps/v1
	Kind, Name string
	UID        string // default derived from the name
}

// Container is one container of a pod, with its status.
type Container struct {
	Name, Image string
	ImageID     string // status imageID; default derived from the image
	ContainerID string // status containerID; default containerd://<derived>
}

// Namespace describes a namespace to serve.
type Namespace struct {
	Name                string
	Labels, Annotations map[string]string
}

// Server is the stand-in. Create it with New; Close it when done.
type Server struct {
	// Token, if set before requests are made, is the bearer token every
	// request must carry (401 otherwise). Change it with SetToken.
	token string
	// BookmarkInterval paces BOOKMARK events on watches that allow them.
	bookmarkEvery time.Duration

	mu        sync.Mutex
	rv        int64
	compacted int64                         // history at or below it is gone: older RVs get 410
	objs      map[string]map[string]*object // resource -> ns/name -> object
	history   []change
	watchers  map[*watcher]struct{}
	requests  []string
	failCode  int
	ln        net.Listener
	srv       *http.Server
	addr      string
	closed    bool
	conns     sync.WaitGroup
}

type object struct {
	rv   int64
	data map[string]any // without kind/apiVersion
}

type change struct {
	rv       int64
	resource string
	typ      string
	old, new *object // old nil for ADDED; for DELETED new is the last state
}

type watcher struct {
	resource string
	ns       string
	fields   selector
	labels   selector
	ch       chan change
}

// New starts a stand-in on 127.0.0.1 (a free port).
func New() (*Server, error) {
	s := &Server{
		bookmarkEvery: time.Second,
		objs:          map[string]map[string]*object{"pods": {}, "namespaces": {}},
		watchers:      make(map[*watcher]struct{}),
	}
	if err := s.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return s, nil
}

// URL is the server's base URL (http://127.0.0.1:port); it stays the same
// across Stop and Start.
func (s *Server) URL() string { return "http://" + s.addr }

// SetToken sets the bearer token requests must carry ("" for none).
func (s *Server) SetToken(t string) {
	s.mu.Lock()
	s.token = t
	s.mu.Unlock()
}

// SetBookmarkInterval sets how often watches get a BOOKMARK.
func (s *Server) SetBookmarkInterval(d time.Duration) {
	s.mu.Lock()
	s.bookmarkEvery = d
	s.mu.Unlock()
}

// SetFailure makes every request fail with HTTP status code (0: serve
// normally again).
func (s *Server) SetFailure(code int) {
	s.mu.Lock()
	s.failCode = code
	s.mu.Unlock()
}

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.ln, s.srv, s.addr = ln, srv, ln.Addr().String()
	s.mu.Unlock()
	s.conns.Go(func() { _ = srv.Serve(ln) })
	return nil
}

// Stop closes the listener and every connection (watches end without a
// final event, as when the API server or the network goes away). The
// stored objects and their history are kept.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	for w := range s.watchers {
		delete(s.watchers, w)
		close(w.ch)
	}
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		s.conns.Wait()
	}
}

// Start listens again on the same address after Stop.
func (s *Server) Start() error {
	s.mu.Lock()
	running, addr, closed := s.srv != nil, s.addr, s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if running {
		return nil
	}
	var err error
	for range 50 { // the port may linger briefly
		if err = s.listen(addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Close stops the server for good.
func (s *Server) Close() {
	s.Stop()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// Requests returns the requests served so far, as "METHOD path?query".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResourceVersion returns the current resourceVersion.
func (s *Server) ResourceVersion() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rv
}

// Compact forgets the history up to now, as etcd compaction does: a watch
// or a continue token from an older resourceVersion gets 410 Gone.
func (s *Server) Compact() {
	s.mu.Lock()
	s.compacted = s.rv
	s.history = nil
	s.mu.Unlock()
}

// AddPod creates or replaces a pod (ADDED, or MODIFIED if it exists) and
// returns its resourceVersion.
func (s *Server) AddPod(p Pod) int64 { return s.put("pods", p.Namespace, p.Name, p.object()) }

// DeletePod deletes a pod (DELETED).
func (s *Server) DeletePod(namespace, name string) int64 { return s.del("pods", namespace, name) }

// AddNamespace creates or replaces a namespace.
func (s *Server) AddNamespace(n Namespace) int64 {
	return s.put("namespaces", "", n.Name, n.object())
}

// DeleteNamespace deletes a namespace.
func (s *Server) DeleteNamespace(name string) int64 { return s.del("namespaces", "", name) }

func key(ns, name string) string { return ns + "/" + name }

func (s *Server) put(resource, ns, name string, data map[string]any) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
	k := key(ns, name)
	old := s.objs[resource][k]
	data = normalize(data)
	meta := data["metadata"].(map[string]any)
	if old != nil {
		om := old.data["metadata"].(map[string]any)
		meta["uid"], meta["creationTimestamp"] = om["uid"], om["creationTimestamp"]
	}
	meta["resourceVersion"] = strconv.FormatInt(s.rv, 10)
	o := &object{rv: s.rv, data: data}
	s.objs[resource][k] = o
	typ := "ADDED"
	if old != nil {
		typ = "MODIFIED"
	}
	s.record(change{rv: s.rv, resource: resource, typ: typ, old: old, new: o})
	return s.rv
}

func (s *Server) del(resource, ns, name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(ns, name)
	old := s.objs[resource][k]
	if old == nil {
		return s.rv
	}
	s.rv++
	delete(s.objs[resource], k)
	last := &object{rv: s.rv, data: cloneWithRV(old.data, s.rv)}
	s.record(change{rv: s.rv, resource: resource, typ: "DELETED", old: old, new: last})
	return s.rv
}

// normalize gives data the types encoding/json decodes to (maps of any),
// so that every stored object reads the same way.
func normalize(data map[string]any) map[string]any {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}

func cloneWithRV(data map[string]any, rv int64) map[string]any {
	c := normalize(data)
	c["metadata"].(map[string]any)["resourceVersion"] = strconv.FormatInt(rv, 10)
	return c
}

// record appends to the history and fans the change out. Called with mu
// held.
func (s *Server) record(c change) {
	s.history = append(s.history, c)
	for w := range s.watchers {
		if w.resource != c.resource {
			continue
		}
		select {
		case w.ch <- c:
		default: // a watcher too slow: its watch ends (the server does that too)
			delete(s.watchers, w)
			close(w.ch)
		}
	}
}

func (p Pod) object() map[string]any {
	meta := map[string]any{
		"name": p.Name, "namespace": p.Namespace, "uid": orDefault(p.UID, "uid-"+p.Namespace+"-"+p.Name),
		"creationTimestamp": time.Now().UTC().Format(time.RFC3339),
	}
	if len(p.Labels) > 0 {
		meta["labels"] = p.Labels
	}
	if len(p.Annotations) > 0 {
		meta["annotations"] = p.Annotations
	}
	if o := p.Owner; o != nil {
		meta["ownerReferences"] = []any{map[string]any{
			"apiVersion": orDefault(o.APIVersion, "apps/v1"), "kind": o.Kind, "name": o.Name,
			"uid": orDefault(o.UID, "uid-"+strings.ToLower(o.Kind)+"-"+o.Name), "controller": true, "blockOwnerDeletion": true,
		}}
	}
	var specs, statuses []any
	for _, c := range p.Containers {
		specs = append(specs, map[string]any{
			"name": c.Name, "image": c.Image, "resources": map[string]any{},
			"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
			"imagePullPolicy": "IfNotPresent",
		})
		statuses = append(statuses, map[string]any{
			"name": c.Name, "image": c.Image, "ready": true, "restartCount": 0, "started": true,
			"state":       map[string]any{"running": map[string]any{"startedAt": time.Now().UTC().Format(time.RFC3339)}},
			"imageID":     orDefault(c.ImageID, "docker.io/library/"+c.Image+"@sha256:0123456789abcdef"),
			"containerID": orDefault(c.ContainerID, "containerd://"+strings.Repeat("c", 64)),
		})
	}
	spec := map[string]any{
		"containers": specs, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
		"serviceAccountName": "default", "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30,
	}
	if p.Node != "" {
		spec["nodeName"] = p.Node
	}
	st := map[string]any{"phase": orDefault(p.Phase, "Running"), "qosClass": "BestEffort"}
	if p.IP != "" {
		st["podIP"] = p.IP
		st["podIPs"] = []any{map[string]any{"ip": p.IP}}
	}
	if len(statuses) > 0 {
		st["containerStatuses"] = statuses
	}
	return map[string]any{"metadata": meta, "spec": spec, "status": st}
}

func (n Namespace) object() map[string]any {
	labels := map[string]string{"kubernetes.io/metadata.name": n.Name}
	for k, v := range n.Labels {
		labels[k] = v
	}
	meta := map[string]any{
		"name": n.Name, "uid": "uid-ns-" + n.Name, "labels": labels,
		"creationTimestamp": time.Now().UTC().Format(time.RFC3339),
	}
	if len(n.Annotations) > 0 {
		meta["annotations"] = n.Annotations
	}
	return map[string]any{
		"metadata": meta,
		"spec":     map[string]any{"finalizers": []any{"kubernetes"}},
		"status":   map[string]any{"phase": "Active"},
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// kinds names each resource's object and list kinds.
var kinds = map[string][2]string{"pods": {"Pod", "PodList"}, "namespaces": {"Namespace", "NamespaceList"}}

// withKind returns data with kind and apiVersion, as watched and fetched
// objects carry them.
func withKind(resource string, data map[string]any) map[string]any {
	m := make(map[string]any, len(data)+2)
	for k, v := range data {
		m[k] = v
	}
	m["kind"], m["apiVersion"] = kinds[resource][0], "v1"
	return m
}

// route is a parsed request path.
type route struct {
	resource string // pods or namespaces
	ns       string // namespace scope ("" for all)
	name     string // a single object
}

func parsePath(p string) (route, bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) < 3 || parts[0] != "api" || parts[1] != "v1" {
		return route{}, false
	}
	parts = parts[2:]
	switch {
	case len(parts) == 1 && (parts[0] == "pods" || parts[0] == "namespaces"):
		return route{resource: parts[0]}, true
	case len(parts) == 2 && parts[0] == "namespaces":
		return route{resource: "namespaces", name: parts[1]}, true
	case len(parts) == 3 && parts[0] == "namespaces" && parts[2] == "pods":
		return route{resource: "pods", ns: parts[1]}, true
	case len(parts) == 4 && parts[0] == "namespaces" && parts[2] == "pods":
		return route{resource: "pods", ns: parts[1], name: parts[3]}, true
	}
	return route{}, false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	token, fail := s.token, s.failCode
	s.mu.Unlock()
	if fail != 0 {
		writeStatus(w, fail, "InternalError", "stand-in failure injected")
		return
	}
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		writeStatus(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	rt, ok := parsePath(r.URL.Path)
	if !ok {
		writeStatus(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the stand-in serves GET only")
		return
	}
	q := r.URL.Query()
	if rt.name != "" {
		s.get(w, rt)
		return
	}
	fields, err := parseSelector(q.Get("fieldSelector"), fieldLabels[rt.resource])
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	labels, err := parseSelector(q.Get("labelSelector"), nil)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	if v := q.Get("watch"); v == "1" || v == "true" {
		s.watch(w, r, rt, fields, labels)
		return
	}
	s.list(w, q, rt, fields, labels)
}

func (s *Server) get(w http.ResponseWriter, rt route) {
	s.mu.Lock()
	o := s.objs[rt.resource][key(rt.ns, rt.name)]
	var data map[string]any
	if o != nil {
		data = withKind(rt.resource, o.data)
	}
	s.mu.Unlock()
	if o == nil {
		writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("%s %q not found", rt.resource, rt.name))
		return
	}
	writeJSON(w, http.StatusOK, data)
}

func (s *Server) list(w http.ResponseWriter, q url.Values, rt route, fields, labels selector) {
	limit, _ := strconv.Atoi(q.Get("limit"))
	rvParam := q.Get("resourceVersion")
	s.mu.Lock()
	listRV := s.rv
	start := ""
	if c := q.Get("continue"); c != "" {
		tok, err := decodeContinue(c)
		if err != nil {
			s.mu.Unlock()
			writeStatus(w, http.StatusBadRequest, "BadRequest", "invalid continue token: "+err.Error())
			return
		}
		if tok.RV <= s.compacted && tok.RV < s.rv {
			s.mu.Unlock()
			writeStatus(w, http.StatusGone, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
			return
		}
		listRV, start = tok.RV, tok.Start
	}
	keys := make([]string, 0, len(s.objs[rt.resource]))
	for k, o := range s.objs[rt.resource] {
		if k > start && matches(rt, o, fields, labels) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	// resourceVersion=0 is served from the watch cache: no paging.
	if rvParam == "0" {
		limit = 0
	}
	cont := ""
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
		cont = encodeContinue(continueToken{RV: listRV, Start: keys[len(keys)-1]})
	}
	items := make([]any, 0, len(keys))
	for _, k := range keys {
		items = append(items, s.objs[rt.resource][k].data)
	}
	s.mu.Unlock()
	meta := map[string]any{"resourceVersion": strconv.FormatInt(listRV, 10)}
	if cont != "" {
		meta["continue"] = cont
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kind": kinds[rt.resource][1], "apiVersion": "v1", "metadata": meta, "items": items,
	})
}

type continueToken struct {
	RV    int64  `json:"rv"`
	Start string `json:"start"`
}

func encodeContinue(t continueToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	return t, err
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, rt route, fields, labels selector) {
	q := r.URL.Query()
	bookmarks := q.Get("allowWatchBookmarks") == "true" || q.Get("allowWatchBookmarks") == "1"
	initial := q.Get("sendInitialEvents") == "true"
	timeout := 30 * time.Minute
	if t, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	var from int64
	rvParam := q.Get("resourceVersion")
	if rvParam != "" {
		var err error
		if from, err = strconv.ParseInt(rvParam, 10, 64); err != nil {
			writeStatus(w, http.StatusBadRequest, "BadRequest", "invalid resourceVersion "+strconv.Quote(rvParam))
			return
		}
	}
	wt := &watcher{resource: rt.resource, ns: rt.ns, fields: fields, labels: labels, ch: make(chan change, 4096)}
	s.mu.Lock()
	var first []map[string]any // the events to send before the live ones
	var tooOld bool
	snapshot := rvParam == "" || rvParam == "0" || initial
	switch {
	case snapshot:
		keys := make([]string, 0, len(s.objs[rt.resource]))
		for k, o := range s.objs[rt.resource] {
			if matches(rt, o, fields, labels) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			first = append(first, event("ADDED", withKind(rt.resource, s.objs[rt.resource][k].data)))
		}
		if initial {
			first = append(first, event("BOOKMARK", bookmark(rt.resource, s.rv, true)))
		}
	case from < s.compacted:
		tooOld = true
	default:
		for _, c := range s.history {
			if c.rv > from && c.resource == rt.resource {
				if e := wt.translate(c); e != nil {
					first = append(first, e)
				}
			}
		}
	}
	compacted, every := s.compacted, s.bookmarkEvery
	if !tooOld {
		s.watchers[wt] = struct{}{}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.watchers[wt]; ok {
			delete(s.watchers, wt)
			close(wt.ch)
		}
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w) // one JSON object and "\n" per event
	send := func(e map[string]any) bool {
		if err := enc.Encode(e); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	if tooOld {
		// What the watch cache answers: 200, then an ERROR event.
		send(event("ERROR", statusObject(http.StatusGone, "Expired",
			fmt.Sprintf("too old resource version: %d (%d)", from, compacted+1))))
		return
	}
	for _, e := range first {
		if !send(e) {
			return
		}
	}
	if fl != nil {
		fl.Flush()
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var tick <-chan time.Time
	if bookmarks && every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-deadline.C:
			return // timeoutSeconds: the stream just ends
		case <-tick:
			if !send(event("BOOKMARK", bookmark(rt.resource, s.ResourceVersion(), false))) {
				return
			}
		case c, ok := <-wt.ch:
			if !ok {
				return // stopped, or too slow
			}
			if e := wt.translate(c); e != nil && !send(e) {
				return
			}
		}
	}
}

// translate turns a change into the event this watcher sees: filtered
// watches see an object that starts to match as ADDED and one that stops
// matching as DELETED, as the API server's watch cache sends them.
func (wt *watcher) translate(c change) map[string]any {
	rt := route{resource: wt.resource, ns: wt.ns}
	was := c.old != nil && matches(rt, c.old, wt.fields, wt.labels)
	is := matches(rt, c.new, wt.fields, wt.labels)
	typ := c.typ
	switch {
	case c.typ == "DELETED":
		if !was {
			return nil
		}
	case was && is:
		typ = "MODIFIED"
	case is:
		typ = "ADDED"
	case was:
		typ = "DELETED"
	default:
		return nil
	}
	return event(typ, withKind(wt.resource, c.new.data))
}

func event(typ string, obj map[string]any) map[string]any {
	return map[string]any{"type": typ, "object": obj}
}

func bookmark(resource string, rv int64, initialEnd bool) map[string]any {
	meta := map[string]any{"resourceVersion": strconv.FormatInt(rv, 10), "creationTimestamp": nil}
	if initialEnd {
		meta["annotations"] = map[string]string{"k8s.io/initial-events-end": "true"}
	}
	obj := map[string]any{"kind": kinds[resource][0], "apiVersion": "v1", "metadata": meta}
	if resource == "pods" {
		obj["spec"] = map[string]any{"containers": nil}
		obj["status"] = map[string]any{}
	} else {
		obj["spec"], obj["status"] = map[string]any{}, map[string]any{}
	}
	return obj
}

func statusObject(code int, reason, msg string) map[string]any {
	return map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	}
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	writeJSON(w, code, statusObject(code, reason, msg))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","code":500}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// fieldLabels are the field selector keys each resource supports (a
// subset of the API server's; others are refused with 400, as it does).
var fieldLabels = map[string][]string{
	"pods":       {"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "status.podIP"},
	"namespaces": {"metadata.name", "status.phase"},
}

// selector is a parsed field or label selector: requirements ANDed.
type selector []requirement

type requirement struct {
	key, value string
	op         string // "=", "!=", "exists", "!exists"
}

// parseSelector parses "k=v,k==v,k!=v" (and, for labels, "k" and "!k").
// allowed, if not nil, lists the keys a field selector may use.
func parseSelector(s string, allowed []string) (selector, error) {
	if s == "" {
		return nil, nil
	}
	var sel selector
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		var r requirement
		switch {
		case strings.Contains(part, "!="):
			k, v, _ := strings.Cut(part, "!=")
			r = requirement{key: k, value: v, op: "!="}
		case strings.Contains(part, "=="):
			k, v, _ := strings.Cut(part, "==")
			r = requirement{key: k, value: v, op: "="}
		case strings.Contains(part, "="):
			k, v, _ := strings.Cut(part, "=")
			r = requirement{key: k, value: v, op: "="}
		case allowed == nil && strings.HasPrefix(part, "!"):
			r = requirement{key: part[1:], op: "!exists"}
		case allowed == nil && part != "" && !strings.ContainsAny(part, " ()"):
			r = requirement{key: part, op: "exists"}
		default:
			return nil, fmt.Errorf("unable to parse requirement: %q (the stand-in knows =, ==, != and, for labels, existence)", part)
		}
		if allowed != nil && !slices.Contains(allowed, r.key) {
			return nil, fmt.Errorf("field label not supported: %s", r.key)
		}
		sel = append(sel, r)
	}
	return sel, nil
}

func matches(rt route, o *object, fields, labels selector) bool {
	meta, _ := o.data["metadata"].(map[string]any)
	if rt.ns != "" && meta["namespace"] != rt.ns {
		return false
	}
	for _, r := range fields {
		v := fieldValue(o.data, r.key)
		if (r.op == "=") != (v == r.value) {
			return false
		}
	}
	lbls, _ := meta["labels"].(map[string]any)
	for _, r := range labels {
		val, ok := lbls[r.key]
		v, _ := val.(string)
		switch r.op {
		case "=":
			if !ok || v != r.value {
				return false
			}
		case "!=":
			if ok && v == r.value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		}
	}
	return true
}

// fieldValue reads a dotted path such as spec.nodeName ("" if absent).
func fieldValue(data map[string]any, path string) string {
	var cur any = data
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("kubetest: server closed")

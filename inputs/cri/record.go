package cri

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
	"github.com/sluice-agent/sluice/internal/kube"
	"github.com/sluice-agent/sluice/internal/parse"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

var (
	keyLog    = msgp.AppendString(nil, "log")
	keyStream = msgp.AppendString(nil, "stream")
	// keyParseError marks a payload the configured parser rejected.
	keyParseError = msgp.AppendString(nil, parse.KeyParseError)
)

// reservedKeys are the record keys the input sets itself; a payload field
// with such a name is not merged (its data is still in "log") and is not
// found by {field:KEY}.
var reservedKeys = record.NewKeys("log", "stream", "kubernetes", "kubernetes_namespace")

// container is one container directory of a pod, with the metadata its
// path gives and, with the kubernetes section, the pod's from the API
// cache: the tail.Source of its log files. It is used on the tail's
// reader goroutine only.
type container struct {
	in     *Input
	meta   podPath
	fixed  []byte // msgpack "kubernetes" key and map[, "kubernetes_namespace" key and map]
	nFixed int    // pairs in fixed

	// The API metadata in fixed: the cache's immutable objects (nil: not
	// known yet), as of Gen kgen.
	kgen uint64
	pod  *kube.Pod
	ns   *kube.Namespace

	// holdUntil ends the wait of the container's lines for its pod's
	// metadata (Hold); holdGen is the cache Gen last looked at.
	holdUntil time.Time
	holdGen   uint64
	podKnown  bool

	// tagCache holds the rendered tag per stream (stdout, stderr) when the
	// template does not depend on the payload; reset when the metadata
	// changes.
	tagCache [2][]byte
	tagOK    [2]bool
}

func newContainer(in *Input, key string) *container {
	c := &container{in: in, meta: parseKey(key)}
	c.build()
	return c
}

// enrich looks the pod (and its namespace) up again after the cache
// changed (Gen moved). What was known is kept when the pod is gone from
// the cache: a deletion does not change what its lines were.
func (c *container) enrich(k *kube.Client, gen uint64) {
	c.kgen = gen
	pod, ns := c.pod, c.ns
	if p := k.Pod(c.meta.uid); p != nil {
		pod = p
	}
	if c.in.kube.nsLabels {
		if n := k.Namespace(c.namespace(pod)); n != nil {
			ns = n
		}
	}
	if pod != c.pod || ns != c.ns {
		c.pod, c.ns = pod, ns
		c.build()
	}
}

// namespace is the pod's namespace: the path's, or the API's for an old
// kubelet's <uid>/ directory.
func (c *container) namespace(p *kube.Pod) string {
	if c.meta.namespace == "" && p != nil {
		return p.Namespace
	}
	return c.meta.namespace
}

// build encodes the per-container record fields (see the package doc's
// Record layout) and drops the cached tags.
func (c *container) build() {
	kc := &c.in.kube
	p := c.pod
	pick := func(path, api string) string {
		if path == "" && p != nil {
			return api
		}
		return path
	}
	podName := ""
	if p != nil {
		podName = p.Name
	}
	b := msgp.AppendString(c.fixed[:0], "kubernetes")
	n := uint32(4)
	var ctr *kube.Container
	if kc.on {
		n++ // host
		if p != nil {
			ctr = p.Container(c.meta.container)
			n += count(p.IP != "", ctr != nil && ctr.Image != "", ctr != nil && ctr.ImageID != "",
				kc.labels && len(p.Labels) > 0, kc.annotations && len(p.Annotations) > 0,
				p.Owner.Kind != "", kc.ownerRefs && len(p.OwnerReferences) > 0)
		}
	}
	b = msgp.AppendMapHeader(b, n)
	b = appendKV(b, "namespace_name", c.namespace(p))
	b = appendKV(b, "pod_name", pick(c.meta.pod, podName))
	b = appendKV(b, "pod_id", c.meta.uid)
	b = appendKV(b, "container_name", c.meta.container)
	if kc.on {
		host := kc.node
		if p != nil && p.NodeName != "" {
			host = p.NodeName
		}
		b = appendKV(b, "host", host)
	}
	if kc.on && p != nil {
		if p.IP != "" {
			b = appendKV(b, "pod_ip", p.IP)
		}
		if ctr != nil && ctr.Image != "" {
			b = appendKV(b, "container_image", ctr.Image)
		}
		if ctr != nil && ctr.ImageID != "" {
			b = appendKV(b, "container_hash", ctr.ImageID)
		}
		if kc.labels && len(p.Labels) > 0 {
			b = appendStringMap(msgp.AppendString(b, "labels"), p.Labels)
		}
		if kc.annotations && len(p.Annotations) > 0 {
			b = appendStringMap(msgp.AppendString(b, "annotations"), p.Annotations)
		}
		if p.Owner.Kind != "" {
			b = msgp.AppendString(b, "owner")
			b = msgp.AppendMapHeader(b, 2)
			b = appendKV(b, "kind", p.Owner.Kind)
			b = appendKV(b, "name", p.Owner.Name)
		}
		if kc.ownerRefs && len(p.OwnerReferences) > 0 {
			b = msgp.AppendString(b, "ownerReferences")
			b = msgp.AppendArrayHeader(b, uint32(len(p.OwnerReferences)))
			for _, r := range p.OwnerReferences {
				b = msgp.AppendMapHeader(b, 5)
				b = appendKV(b, "apiVersion", r.APIVersion)
				b = appendKV(b, "kind", r.Kind)
				b = appendKV(b, "name", r.Name)
				b = appendKV(b, "uid", r.UID)
				b = msgp.AppendBool(msgp.AppendString(b, "controller"), r.Controller)
			}
		}
	}
	c.nFixed = 1
	if ns := c.ns; kc.on && kc.nsLabels && ns != nil && len(ns.Labels) > 0 {
		b = msgp.AppendString(b, "kubernetes_namespace")
		b = msgp.AppendMapHeader(b, 1)
		b = appendStringMap(msgp.AppendString(b, "labels"), ns.Labels)
		c.nFixed++
	}
	c.fixed = b
	c.tagOK = [2]bool{}
}

func count(conds ...bool) uint32 {
	n := uint32(0)
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
}

func appendKV(b []byte, k, v string) []byte {
	return msgp.AppendString(msgp.AppendString(b, k), v)
}

// appendStringMap appends m as a msgpack map, keys sorted.
func appendStringMap(b []byte, m map[string]string) []byte {
	b = msgp.AppendMapHeader(b, uint32(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = appendKV(b, k, m[k])
	}
	return b
}

// Hold implements tail.Holder: with the kubernetes section, the lines of
// a pod the cache does not know yet wait for its metadata, at most
// metadata_wait from when its directory was first read for (the backlog
// at start as a pod created later), so that its first lines are enriched.
// Once the pod is known and the cache has listed every resource once (so
// that the namespace's labels are there too), or the wait is over, they
// are read (with the path's metadata until the pod is known). The other pods are read
// meanwhile: the tail skips only this source.
func (c *container) Hold(now time.Time) time.Time {
	k := &c.in.kube
	if k.client == nil || k.wait <= 0 {
		return time.Time{}
	}
	if c.holdUntil.IsZero() {
		c.holdUntil = now.Add(k.wait)
		c.holdGen = k.client.Gen() - 1 // look now
	}
	if g := k.client.Gen(); g != c.holdGen || c.podKnown {
		c.holdGen = g
		c.podKnown = c.podKnown || k.client.Pod(c.meta.uid) != nil
		// Known, and every resource listed once: also the namespace's
		// labels are there (after a restart the pods list may come
		// before the namespaces list; CI saw lines without them).
		if c.podKnown && k.client.WaitSynced(context.Background(), 0) {
			return time.Time{}
		}
	}
	if now.Before(c.holdUntil) {
		return c.holdUntil
	}
	if !k.warned && !k.client.WaitSynced(context.Background(), 0) {
		k.warned = true
		c.in.log.Warn("pod metadata not listed yet; reading with the path's metadata, later lines are enriched once the API answers",
			"metadata_wait", k.wait)
	}
	return time.Time{}
}

// Refresh implements tail.Source: the path's metadata does not change and
// the API's is picked up per event (Event compares the cache's Gen).
func (*container) Refresh() error { return nil }

// Event implements tail.Source: it builds the record (see the package doc
// for its layout) and the tag of one line, in the input's scratch buffers.
func (c *container) Event(l *tail.Line) *pipeline.Event {
	in := c.in
	if k := in.kube.client; k != nil {
		if g := k.Gen(); g != c.kgen {
			c.enrich(k, g)
		}
	}
	msg, stream := l.Content, l.Stream
	// The payload's fields: all of them with a parser (or parse_json),
	// else only those the tag's {field:KEY} read (the others are checked,
	// not converted).
	var keys [][]byte
	if in.tpl.Uses(record.Field) {
		keys = in.tpl.FieldKeys()
	}
	res := in.payload.Parse(msg, keys, reservedKeys)
	fields := res.Fields
	nFields, extra := 0, 0
	if in.payload.Stores() && fields != nil {
		nFields = fields.Len()
	}
	if res.Failed {
		extra = 1
	}
	rec := msgp.AppendMapHeader(in.rec[:0], uint32(2+c.nFixed+nFields+extra))
	rec = append(rec, keyLog...)
	rec = msgp.AppendStringFromBytes(rec, msg)
	rec = append(rec, keyStream...)
	rec = msgp.AppendStringFromBytes(rec, stream)
	rec = append(rec, c.fixed...)
	if nFields > 0 {
		rec = append(rec, fields.Pairs()...)
	}
	if res.Failed {
		rec = append(rec, keyParseError...)
		rec = msgp.AppendString(rec, in.payload.Kind())
	}
	t := l.Time
	if res.HasTime {
		t = res.Time
	}
	in.rec = rec
	in.ev = pipeline.Event{Tag: in.tagFor(c, stream, fields), Time: t, Record: rec}
	return &in.ev
}

// tagFor renders the event tag, from the per-container cache when the
// template does not depend on the payload.
func (in *Input) tagFor(c *container, stream []byte, fields parse.FieldSet) []byte {
	si := -1
	if !in.tpl.Uses(record.Field) {
		switch {
		case !in.tpl.Uses(record.Stream) || string(stream) == "stdout":
			si = 0
		case string(stream) == "stderr":
			si = 1
		}
	}
	if si < 0 {
		in.tv = tagValues{c: c, stream: stream, fields: fields}
		in.tagBuf = in.tpl.Render(in.tagBuf[:0], &in.tv)
		return in.tagBuf
	}
	if !c.tagOK[si] {
		in.tv = tagValues{c: c, stream: stream}
		c.tagCache[si] = in.tpl.Render(c.tagCache[si][:0], &in.tv)
		c.tagOK[si] = true
	}
	return c.tagCache[si]
}

// tagValues are the values of one event's tag placeholders.
type tagValues struct {
	c      *container
	stream []byte
	fields parse.FieldSet // nil: the payload gave no fields (or they are unused)
}

// AppendValue implements record.Values.
func (v *tagValues) AppendValue(dst []byte, k record.Kind, key []byte) []byte {
	switch k {
	case record.Namespace:
		return append(dst, v.c.meta.namespace...)
	case record.Pod:
		return append(dst, v.c.meta.pod...)
	case record.PodID:
		return append(dst, v.c.meta.uid...)
	case record.Container:
		return append(dst, v.c.meta.container...)
	case record.Stream:
		return append(dst, v.stream...)
	case record.Label:
		if p := v.c.pod; p != nil {
			return append(dst, p.Labels[string(key)]...)
		}
	case record.Annotation:
		if p := v.c.pod; p != nil {
			return append(dst, p.Annotations[string(key)]...)
		}
	case record.Field:
		if v.fields != nil {
			if val, ok := v.fields.Value(key); ok {
				dst, _ = record.AppendText(dst, val)
			}
		}
	}
	return dst
}

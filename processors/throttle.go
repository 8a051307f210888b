package processors

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/internal/cond"
	"github.com/sluice-agent/sluice/internal/wire"
)

// MaxThrottleSeries bounds the per-key drop series of one throttle
// processor; further keys are counted under key="_other".
const MaxThrottleSeries = 1000

// maxBuckets bounds the keys a throttle tracks. Past it, buckets idle long
// enough to be full again are forgotten (a fresh bucket is the same); if
// none is, new keys share one overflow bucket.
const maxBuckets = 10000

// throttle is a token bucket per key (container or tag). Its state is
// shared by every Runner of the Chain, under mu.
type throttle struct {
	perTag bool
	rate   float64 // tokens per second
	burst  float64
	sample int

	id      string
	set     *metrics.Set
	sampled *metrics.Counter

	mu      sync.Mutex
	buckets map[string]*bucket
	other   *bucket // shared by keys past maxBuckets
	series  int
	otherC  *metrics.Counter
}

type bucket struct {
	tokens  float64
	last    time.Time
	over    int // events over the rate since the last one kept by sampling
	dropped *metrics.Counter
	label   string
}

func newThrottle(s *Spec) (*throttle, error) {
	t := &throttle{sample: s.Sample}
	switch s.Per {
	case "", "container":
	case "tag":
		t.perTag = true
	default:
		return nil, fmt.Errorf("per: unknown %q (want container or tag)", s.Per)
	}
	if s.Rate <= 0 {
		return nil, errors.New("rate: must be positive (events per second)")
	}
	if s.Burst < 0 || s.Sample < 0 {
		return nil, errors.New("burst and sample must not be negative")
	}
	t.rate, t.burst = float64(s.Rate), float64(s.Burst)
	if s.Burst == 0 {
		t.burst = t.rate
	}
	return t, nil
}

func (t *throttle) init(id string, set *metrics.Set) {
	t.id, t.set = id, set
	t.buckets = map[string]*bucket{}
	t.sampled = set.GetOrCreateCounter(fmt.Sprintf(`sluice_processor_sampled_total{processor=%q}`, id))
}

var (
	keyContainerName = []byte("container_name")
	keyKubeNamespace = []byte("kubernetes.namespace_name")
	keyKubePod       = []byte("kubernetes.pod_name")
	keyKubeContainer = []byte("kubernetes.container_name")
)

// key appends the throttle key of an event: with per container the
// docker input's container_name, or the cri input's namespace/pod/container;
// the tag for per tag and for records without either.
func (t *throttle) key(dst, tag, rec []byte) []byte {
	if !t.perTag {
		if v, _, ok := wire.ReadStrBin(lookup(rec, keyContainerName)); ok {
			return append(dst, v...)
		}
		if p, _, ok := wire.ReadStrBin(lookup(rec, keyKubePod)); ok {
			ns, _, _ := wire.ReadStrBin(lookup(rec, keyKubeNamespace))
			c, _, _ := wire.ReadStrBin(lookup(rec, keyKubeContainer))
			dst = append(append(dst, ns...), '/')
			dst = append(append(dst, p...), '/')
			return append(dst, c...)
		}
	}
	return append(dst, tag...)
}

func lookup(rec, path []byte) []byte {
	v, _ := cond.Lookup(rec, path)
	return v
}

// allow reports whether the event may pass; a refused one is counted per
// key here and in total by the caller.
func (t *throttle) allow(r *Runner, tag, rec []byte, now time.Time) bool {
	r.scr = t.key(r.scr[:0], tag, rec)
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[string(r.scr)]
	if b == nil {
		b = t.newBucket(string(r.scr), now)
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(t.burst, b.tokens+el.Seconds()*t.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	b.over++
	if t.sample > 0 && b.over%t.sample == 1%t.sample {
		t.sampled.Inc()
		return true
	}
	if b.dropped == nil {
		b.dropped = t.counter(b.label)
	}
	b.dropped.Inc()
	return false
}

// newBucket starts a full bucket for key (caller holds mu).
func (t *throttle) newBucket(key string, now time.Time) *bucket {
	if len(t.buckets) >= maxBuckets {
		full := time.Duration(t.burst / t.rate * float64(time.Second))
		for k, b := range t.buckets {
			if now.Sub(b.last) >= full {
				delete(t.buckets, k)
			}
		}
		if len(t.buckets) >= maxBuckets {
			if t.other == nil {
				t.other = &bucket{tokens: t.burst, last: now, label: "_other"}
			}
			return t.other
		}
	}
	b := &bucket{tokens: t.burst, last: now, label: key}
	t.buckets[key] = b
	return b
}

// counter returns the drop series of a key, or the shared _other one past
// MaxThrottleSeries keys (caller holds mu).
func (t *throttle) counter(label string) *metrics.Counter {
	if t.series >= MaxThrottleSeries || label == "_other" {
		if t.otherC == nil {
			t.otherC = t.set.GetOrCreateCounter(fmt.Sprintf(`sluice_processor_throttled_total{processor=%q,key="_other"}`, t.id))
		}
		return t.otherC
	}
	t.series++
	return t.set.GetOrCreateCounter(fmt.Sprintf(`sluice_processor_throttled_total{processor=%q,key=%q}`, t.id, label))
}

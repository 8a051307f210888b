package tailtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/pipeline"
)

// Event is one decoded event as a test sees it.
type Event struct {
	Tag    string
	Time   int64
	Record map[string]any
}

// Log returns the record's "log" field.
func (e Event) Log() string { s, _ := e.Record["log"].(string); return s }

// Queue is a fake pipeline.Queue that records the events of the chunks
// appended to it; Append and Sync can be made to fail, and Append held.
type Queue struct {
	mu       sync.Mutex
	events   []Event
	failApp  error
	failSync error
	syncs    int
	appends  int
	gate     chan struct{}          // if set, Append waits for it
	attempts int                    // Append calls past the gate and failApp
	failWhen func(attempt int) bool // if set, the attempts it returns true for fail
}

var _ pipeline.Queue = (*Queue)(nil)

func (q *Queue) Append(ctx context.Context, tag []byte, count int, entries []byte) error {
	q.mu.Lock()
	gate := q.gate
	q.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failApp != nil {
		return q.failApp
	}
	q.attempts++
	if q.failWhen != nil && q.failWhen(q.attempts) {
		return errors.New("no space left on device")
	}
	var evs []Event
	err := wire.ForEachEntry(entries, func(ns int64, rec []byte) error {
		v, rest, err := msgp.ReadIntfBytes(rec)
		if err != nil {
			return err
		}
		if len(rest) != 0 {
			return errors.New("trailing bytes after record")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("record is %T", v)
		}
		evs = append(evs, Event{Tag: string(tag), Time: ns, Record: m})
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("fake queue: undecodable chunk: %v", err))
	}
	if len(evs) != count {
		panic(fmt.Sprintf("fake queue: count %d, decoded %d", count, len(evs)))
	}
	q.appends++
	q.events = append(q.events, evs...)
	return nil
}

func (q *Queue) Sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.syncs++
	return q.failSync
}

func (q *Queue) Mark() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return uint64(q.appends)
}

func (q *Queue) SyncTo(uint64) error { return q.Sync() }

// SetFail makes every Append return app and every Sync return sync (nil:
// succeed).
func (q *Queue) SetFail(app, sync error) {
	q.mu.Lock()
	q.failApp, q.failSync = app, sync
	q.mu.Unlock()
}

// SetFailWhen makes the Append attempts f returns true for fail (f nil:
// none); attempts are counted from 1.
func (q *Queue) SetFailWhen(f func(attempt int) bool) {
	q.mu.Lock()
	q.failWhen = f
	q.mu.Unlock()
}

// Hold makes Append wait until release is called (or its context ends).
func (q *Queue) Hold() (release func()) {
	gate := make(chan struct{})
	q.mu.Lock()
	q.gate = gate
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		q.gate = nil
		q.mu.Unlock()
		close(gate)
	}
}

// Syncs returns the number of Sync (and SyncTo) calls.
func (q *Queue) Syncs() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.syncs
}

// Attempts returns the number of Append attempts (see SetFailWhen).
func (q *Queue) Attempts() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.attempts
}

// All returns the events accepted so far.
func (q *Queue) All() []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Event(nil), q.events...)
}

// Logs returns the "log" of every event accepted so far.
func (q *Queue) Logs() []string {
	var out []string
	for _, e := range q.All() {
		out = append(out, e.Log())
	}
	return out
}

// LogsBy returns the "log" of every event accepted so far, grouped by
// key(event).
func (q *Queue) LogsBy(key func(Event) string) map[string][]string {
	out := map[string][]string{}
	for _, e := range q.All() {
		k := key(e)
		out[k] = append(out[k], e.Log())
	}
	return out
}

// NewRouter returns a router sending everything to q.
func NewRouter(t testing.TB, q pipeline.Queue) *pipeline.Router {
	t.Helper()
	r, err := pipeline.NewRouter(
		[]config.Route{{Match: "**", Outputs: []string{"out"}}}, "",
		[]pipeline.OutputQueue{{ID: "out", Queue: q, ChunkBytes: 64 << 10}},
		metrics.NewSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

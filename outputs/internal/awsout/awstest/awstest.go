// Package awstest holds the test helpers of the AWS outputs: queues of
// numbered events, a running output, log capture and payload decoding.
package awstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
)

// Tag is the events' tag unless a test says otherwise.
const Tag = "app.web"

// Time is the time of event seq: an hour ago plus seq milliseconds.
var base = time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()

// Time returns the event time of seq.
func Time(seq int) int64 { return base + int64(seq)*int64(time.Millisecond) }

// Record is {"seq": seq, "log": "line <seq> xxx...\n", "app": "web"}.
func Record(seq int) []byte {
	r := msgp.AppendMapHeader(nil, 3)
	r = msgp.AppendInt(msgp.AppendString(r, "seq"), seq)
	r = msgp.AppendString(msgp.AppendString(r, "log"), fmt.Sprintf("line %d %s\n", seq, strings.Repeat("x", 60)))
	return msgp.AppendString(msgp.AppendString(r, "app"), "web")
}

// Event is one event to queue.
type Event struct {
	Time   int64
	Record []byte
}

// Append appends one chunk of evs with tag.
func Append(t testing.TB, q *buffer.Queue, tag string, evs ...Event) {
	t.Helper()
	var e []byte
	for _, ev := range evs {
		e = wire.AppendEntry(e, ev.Time, ev.Record)
	}
	if err := q.Append(context.Background(), []byte(tag), len(evs), e); err != nil {
		t.Fatal(err)
	}
}

// Fill appends chunks of per events numbered from `from` (Time, Record),
// tag Tag.
func Fill(t testing.TB, q *buffer.Queue, from, chunks, per int) {
	t.Helper()
	n := from
	for range chunks {
		evs := make([]Event, per)
		for i := range evs {
			evs[i] = Event{Time(n), Record(n)}
			n++
		}
		Append(t, q, Tag, evs...)
	}
}

// OpenQueue opens a queue closed at the test's end.
func OpenQueue(t testing.TB, dir string) *buffer.Queue {
	t.Helper()
	q, err := buffer.Open(dir, buffer.Options{Name: filepath.Base(dir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// FastDelivery retries quickly and flushes soon.
func FastDelivery() config.Delivery {
	return config.Delivery{RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, FlushInterval: 50 * time.Millisecond}
}

// LogBuffer collects an output's logs.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger returns a debug logger writing to l.
func (l *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Runner is an output.
type Runner interface {
	Run(ctx context.Context) error
}

// Start runs o until the returned stop is called or the test ends.
func Start(t testing.TB, o Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitEmpty waits until every chunk of q is settled.
func WaitEmpty(t testing.TB, q *buffer.Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := q.WaitEmpty(ctx); err != nil {
		t.Fatalf("queue not settled within %s: %+v", d, q.Stats())
	}
}

// Seq returns the seq member of one JSON object (a payload, or one line
// of it).
func Seq(t testing.TB, line []byte) int {
	t.Helper()
	var v struct{ Seq *int }
	if err := json.Unmarshal(line, &v); err != nil || v.Seq == nil {
		t.Fatalf("payload without seq: %q (%v)", line, err)
	}
	return *v.Seq
}

// Lines returns the seq of every line of newline-delimited payloads.
func Lines(t testing.TB, payloads ...[]byte) []int {
	t.Helper()
	var out []int
	for _, p := range payloads {
		if len(p) == 0 || p[len(p)-1] != '\n' {
			t.Fatalf("payload does not end with a newline: %q", p)
		}
		for _, l := range bytes.Split(p[:len(p)-1], []byte("\n")) {
			out = append(out, Seq(t, l))
		}
	}
	return out
}

// CheckExactlyOnce fails unless got holds every seq in [0, n) exactly
// once.
func CheckExactlyOnce(t testing.TB, got []int, n int) {
	t.Helper()
	count := map[int]int{}
	for _, s := range got {
		count[s]++
	}
	missing, dups := 0, 0
	for i := range n {
		switch c := count[i]; {
		case c == 0:
			missing++
		case c > 1:
			dups++
		}
	}
	if missing > 0 || dups > 0 || len(count) != n {
		t.Fatalf("of %d events: %d missing, %d duplicated, %d distinct seen", n, missing, dups, len(count))
	}
}

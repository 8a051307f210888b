package tailtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// Logger logs to the test when SLUICE_TEST_LOG is set; else it is nil.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Runner is an input run by Start.
type Runner interface{ Run(context.Context) error }

// Start runs in and returns a function that stops it and returns Run's
// error.
func Start(t testing.TB, in Runner) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// Drainer is a tail engine driven by hand (see Pump).
type Drainer interface {
	Scan()
	Drain(context.Context) error
	Close()
}

// Pump drives a not-running engine by hand: scan, then turns until
// nothing moves, repeated so rotations settle. It returns the flush
// error, if any. The engine is closed when the test ends.
func Pump(t testing.TB, in Drainer) error {
	t.Helper()
	t.Cleanup(in.Close)
	ctx := context.Background()
	for range 4 {
		in.Scan()
		if err := in.Drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Lines returns n complete stdout lines "<prefix><i>", i from from on,
// encoded by enc (a format's encoder of one line), and their logs.
func Lines(enc func(log, stream string) string, prefix string, from, n int) (string, []string) {
	var sb strings.Builder
	var want []string
	for i := from; i < from+n; i++ {
		s := fmt.Sprintf("%s%d", prefix, i)
		sb.WriteString(enc(s+"\n", "stdout"))
		want = append(want, s)
	}
	return sb.String(), want
}

// AppendFile appends data to path, creating it if need be.
func AppendFile(t testing.TB, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// WaitFor waits up to 10 seconds for cond to hold.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// EqualStrings fails the test unless got equals want, item by item.
func EqualStrings(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d\ngot:  %q\nwant: %q", len(got), len(want), Clip(got), Clip(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("item %d: got %q, want %q", i, ClipS(got[i]), ClipS(want[i]))
		}
	}
}

// Clip shortens a long list for a message: its first and last ten items.
func Clip(s []string) []string {
	if len(s) > 20 {
		s = append(s[:10:10], append([]string{"…"}, s[len(s)-10:]...)...)
	}
	return s
}

// ClipS shortens a long string for a message.
func ClipS(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

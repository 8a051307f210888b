package tail

import (
	"context"
	"time"
)

// Driving a Tail by hand, on the caller's goroutine, instead of Run: for
// tests and benchmarks of the inputs built on tail. None of these may be
// called while Run is running.

// Scan runs a full scan.
func (t *Tail) Scan() {
	t.ensureWriter()
	t.scan(time.Now())
}

// Drain gives turns to every source with an open file until none consumes
// anything. It returns the first failed flush.
func (t *Tail) Drain(ctx context.Context) error {
	t.ensureWriter()
	for {
		progressed := false
		for _, s := range t.order {
			f := s.active()
			if f == nil {
				continue
			}
			p, err := t.turn(ctx, f)
			if err != nil {
				return err
			}
			// A closed file counts as progress: the next one may start.
			progressed = progressed || p || f.f == nil
		}
		if !progressed {
			return nil
		}
	}
}

// Rewind moves every open file back to offset 0 and drops what is pending
// in them, so that a benchmark can read the same data again.
func (t *Tail) Rewind() {
	for _, s := range t.order {
		for _, f := range s.files {
			if f.f != nil {
				f.readOff, f.commit, f.long = 0, 0, nil
				clear(f.partials)
				t.dropJoiners(f)
				f.clearSkip()
			}
		}
	}
	t.activePartials = 0
}

// Checkpoint writes the offsets file now (after Router.Sync).
func (t *Tail) Checkpoint() error { return t.checkpoint() }

// Close closes the files a hand-driven Tail opened.
func (t *Tail) Close() { t.closeAll() }

func (t *Tail) ensureWriter() {
	if t.w == nil {
		t.w = t.r.NewWriter()
	}
}

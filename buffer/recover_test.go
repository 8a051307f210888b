package buffer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// writeNine leaves segments 1, 2 and 3 holding chunks 0-2, 3-5 and 6-8.
func writeNine(t *testing.T, dir string) {
	t.Helper()
	q, err := Open(dir, smallOpts())
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, q, 0, 9)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for s := uint64(1); s <= 3; s++ {
		if got := fileSize(t, segFile(dir, s)); got != 3*testFrameLen {
			t.Fatalf("segment %d has %d bytes, want %d", s, got, 3*testFrameLen)
		}
	}
}

func TestRecoverByteFlip(t *testing.T) {
	tests := map[string]struct {
		seg           uint64
		frame         int   // frame index in the segment
		off           int64 // byte in the frame
		lost          int   // chunk index that must be gone
		truncated     int64 // bytes cut off the last segment
		lastSegLength int64 // size of segment 3 after Open
	}{
		"first segment first frame magic": {seg: 1, frame: 0, off: 0, lost: 0},
		"middle segment magic":            {seg: 2, frame: 1, off: 1, lost: 4},
		"middle segment length":           {seg: 2, frame: 1, off: 5, lost: 4},
		"middle segment length high byte": {seg: 2, frame: 1, off: 7, lost: 4},
		"middle segment crc":              {seg: 2, frame: 1, off: 9, lost: 4},
		"middle segment count":            {seg: 2, frame: 1, off: 12, lost: 4},
		"middle segment tag length":       {seg: 2, frame: 1, off: 16, lost: 4},
		"middle segment tag":              {seg: 2, frame: 1, off: 18, lost: 4},
		"middle segment payload":          {seg: 2, frame: 1, off: 40, lost: 4},
		"middle segment last frame":       {seg: 2, frame: 2, off: 30, lost: 5},
		"last segment first frame":        {seg: 3, frame: 0, off: 20, lost: 6},
		"last segment middle frame crc":   {seg: 3, frame: 1, off: 10, lost: 7},
		"last segment last frame magic":   {seg: 3, frame: 2, off: 0, lost: 8, truncated: testFrameLen},
		"last segment last frame length":  {seg: 3, frame: 2, off: 4, lost: 8, truncated: testFrameLen},
		"last segment last frame payload": {seg: 3, frame: 2, off: testFrameLen - 1, lost: 8, truncated: testFrameLen},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeNine(t, dir)
			flipByte(t, segFile(dir, tc.seg), int64(tc.frame)*testFrameLen+tc.off)

			set := metrics.NewSet()
			var logs logBuffer
			opts := smallOpts()
			opts.Metrics, opts.Logger = set, logs.logger()
			q := mustOpen(t, dir, opts)
			if !strings.Contains(logs.String(), "damaged") || !strings.Contains(logs.String(), fmt.Sprintf("segment=%d", tc.seg)) {
				t.Fatalf("damage not logged: %s", logs.String())
			}
			st := q.Stats()
			if st.CorruptChunks != 1 || st.TruncatedBytes != tc.truncated || st.Pending != 8 || st.BadSegments != 0 {
				t.Fatalf("stats after open: %+v", st)
			}
			if got := set.GetOrCreateCounter(`sluice_buffer_corrupt_chunks_total{output="t"}`).Get(); got != 1 {
				t.Fatalf("corrupt counter = %d", got)
			}
			if got, want := fileSize(t, segFile(dir, 3)), 3*testFrameLen-tc.truncated; got != want {
				t.Fatalf("segment 3 size %d, want %d", got, want)
			}
			got, cs := drain(t, q)
			if want := without(seq(0, 9), tc.lost); !equalInts(got, want) {
				t.Fatalf("recovered %v, want %v", got, want)
			}
			for _, c := range cs {
				q.Ack(c.ID)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := q.WaitEmpty(ctx); err != nil {
				t.Fatal(err)
			}
			if st := q.Stats(); st.Segments != 1 || st.Bytes != 0 {
				t.Fatalf("acked segments not deleted: %+v", st)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}

			// Everything acked: a reopen finds nothing, damage included.
			q2 := mustOpen(t, dir, smallOpts())
			if st := q2.Stats(); st.Pending != 0 || st.CorruptChunks != 0 {
				t.Fatalf("stats after second open: %+v", st)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			if len(segs) != 1 {
				t.Fatalf("segment files left: %v", segs)
			}
		})
	}
}

func TestRecoverTornTail(t *testing.T) {
	// Four chunks in one segment; cut the file at every byte of the last frame.
	const start = 3 * testFrameLen
	for cut := int64(start); cut < start+testFrameLen; cut++ {
		dir := t.TempDir()
		q, err := Open(dir, Options{Name: "t"})
		if err != nil {
			t.Fatal(err)
		}
		appendRange(t, q, 0, 4)
		crash(q)
		if err := os.Truncate(segFile(dir, 1), cut); err != nil {
			t.Fatal(err)
		}
		q = mustOpen(t, dir, Options{Name: "t"})
		st := q.Stats()
		wantCorrupt := int64(0)
		if cut > start {
			wantCorrupt = 1
		}
		if st.CorruptChunks != wantCorrupt || st.TruncatedBytes != cut-start || st.Pending != 3 {
			t.Fatalf("cut %d: stats %+v", cut, st)
		}
		if got := fileSize(t, segFile(dir, 1)); got != start {
			t.Fatalf("cut %d: segment truncated to %d, want %d", cut, got, start)
		}
		if got, _ := drain(t, q); !equalInts(got, seq(0, 3)) {
			t.Fatalf("cut %d: recovered %v", cut, got)
		}
		q.Close()
	}
}

func TestRecoverAckFile(t *testing.T) {
	// Chunks 0-5 in one segment; chunks 0, 1, 2 acked one by one, so the
	// newest slot says "after 2" and the other "after 1".
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		q, err := Open(dir, Options{Name: "t"})
		if err != nil {
			t.Fatal(err)
		}
		appendRange(t, q, 0, 6)
		for range 3 {
			q.Ack(next(t, q).ID)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	slots := func(t *testing.T, dir string) (newest, older int64) {
		b, err := os.ReadFile(filepath.Join(dir, ackFileName))
		if err != nil {
			t.Fatal(err)
		}
		g0, _, ok0 := decodeAckSlot(b[:ackSlotLen])
		g1, _, ok1 := decodeAckSlot(b[ackSlotStride : ackSlotStride+ackSlotLen])
		if !ok0 || !ok1 {
			t.Fatal("ack slots not both valid")
		}
		if g0 > g1 {
			return 0, ackSlotStride
		}
		return ackSlotStride, 0
	}
	tests := map[string]struct {
		damage func(t *testing.T, dir string)
		want   []int
		warn   string // expected warning; "" means none
	}{
		"intact": {func(*testing.T, string) {}, seq(3, 6), ""},
		"newest slot damaged": {func(t *testing.T, dir string) {
			n, _ := slots(t, dir)
			flipByte(t, filepath.Join(dir, ackFileName), n+14)
		}, seq(2, 6), "one ack file slot is damaged"},
		"older slot damaged": {func(t *testing.T, dir string) {
			_, o := slots(t, dir)
			flipByte(t, filepath.Join(dir, ackFileName), o+29)
		}, seq(3, 6), "one ack file slot is damaged"},
		"both slots damaged": {func(t *testing.T, dir string) {
			n, o := slots(t, dir)
			flipByte(t, filepath.Join(dir, ackFileName), n)
			flipByte(t, filepath.Join(dir, ackFileName), o+20)
		}, seq(0, 6), "ack file damaged"},
		"ack file missing": {func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ackFileName)); err != nil {
				t.Fatal(err)
			}
		}, seq(0, 6), "ack file missing"},
		"ack file empty": {func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, ackFileName), 0); err != nil {
				t.Fatal(err)
			}
		}, seq(0, 6), "ack file missing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := setup(t)
			tc.damage(t, dir)
			var logs logBuffer
			q := mustOpen(t, dir, Options{Name: "t", Logger: logs.logger()})
			if tc.warn == "" && logs.String() != "" || !strings.Contains(logs.String(), tc.warn) {
				t.Fatalf("logs %q, want %q", logs.String(), tc.warn)
			}
			if got, _ := drain(t, q); !equalInts(got, tc.want) {
				t.Fatalf("delivered %v, want %v", got, tc.want)
			}
			if st := q.Stats(); st.Pending != int64(len(tc.want)) {
				t.Fatalf("pending %d, want %d", st.Pending, len(tc.want))
			}
		})
	}
}

func TestRecoverBadSegments(t *testing.T) {
	tests := map[string]struct {
		damage func(t *testing.T, dir string)
		want   []int
	}{
		"segment is a directory": {func(t *testing.T, dir string) {
			if err := os.Remove(segFile(dir, 2)); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(segFile(dir, 2), 0o750); err != nil {
				t.Fatal(err)
			}
		}, []int{0, 1, 2, 6, 7, 8}},
		"segment is garbage": {func(t *testing.T, dir string) {
			if err := os.WriteFile(segFile(dir, 2), []byte(strings.Repeat("garbage!", 30)), 0o640); err != nil {
				t.Fatal(err)
			}
		}, []int{0, 1, 2, 6, 7, 8}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeNine(t, dir)
			tc.damage(t, dir)
			q := mustOpen(t, dir, smallOpts())
			if st := q.Stats(); st.BadSegments != 1 {
				t.Fatalf("stats %+v", st)
			}
			if _, err := os.Lstat(segFile(dir, 2) + ".bad"); err != nil {
				t.Fatalf("no .bad file: %v", err)
			}
			if got, _ := drain(t, q); !equalInts(got, tc.want) {
				t.Fatalf("delivered %v, want %v", got, tc.want)
			}
			// New segments never reuse the .bad file's sequence.
			appendRange(t, q, 9, 10)
			if got, _ := drain(t, q); !equalInts(got, []int{9}) {
				t.Fatalf("delivered %v after append", got)
			}
		})
	}
}

func TestRecoverCrashLoop(t *testing.T) {
	// Several runs that crash with chunks unacked, acked out of order and
	// unread: after each restart exactly the chunks not in the acked
	// prefix come back, in order.
	dir := t.TempDir()
	opts := smallOpts()
	acked := map[int]bool{}
	total := 0
	for run := range 5 {
		q, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		// Expected: everything after the acked prefix, in order.
		prefix := 0
		for acked[prefix] {
			prefix++
		}
		var want []int
		for i := prefix; i < total; i++ {
			want = append(want, i)
		}
		got, cs := drain(t, q)
		if !equalInts(got, want) {
			t.Fatalf("run %d: delivered %v, want %v", run, got, want)
		}
		// Ack every other chunk, then all of the first half of what is left.
		for i, c := range cs {
			if i%2 == 1 || i < len(cs)/2 {
				q.Ack(c.ID)
				acked[got[i]] = true
			}
		}
		appendRange(t, q, total, total+7)
		total += 7
		// Read some of the new ones without acking.
		for range 3 {
			next(t, q)
		}
		crash(q)
	}
}

func TestOutOfOrderAcksReopen(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, smallOpts())
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, q, 0, 10)
	_, cs := drain(t, q)
	for _, i := range []int{1, 3, 7, 0, 5, 2} {
		q.Ack(cs[i].ID)
	}
	q.Ack(cs[3].ID) // duplicate: ignored
	st := q.Stats()
	if st.Pending != 4 || st.AckedChunks != 6 || st.InFlight != 4 {
		t.Fatalf("stats %+v", st)
	}
	// Prefix 0-3 acked: segment 1 (chunks 0-2) is gone.
	if _, err := os.Stat(segFile(dir, 1)); !os.IsNotExist(err) {
		t.Fatalf("segment 1 not deleted: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = mustOpen(t, dir, smallOpts())
	if got, _ := drain(t, q); !equalInts(got, seq(4, 10)) {
		t.Fatalf("after reopen delivered %v, want 4..9", got)
	}
}

func TestReopenIsQuiet(t *testing.T) {
	// A clean shutdown and restart logs no warning (a fresh ack file has
	// only one slot written).
	dir := t.TempDir()
	for run := range 3 {
		var logs logBuffer
		q, err := Open(dir, Options{Name: "t", Logger: logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		if logs.String() != "" {
			t.Fatalf("run %d: %s", run, logs.String())
		}
		appendRange(t, q, run, run+1)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

package receiver

import (
	"context"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	tests := map[string]struct {
		adds         []int64 // seqs for source "a"
		n            int
		wantDistinct int64
		wantDups     int64
		wantMissing  []int
		wantMissN    int
	}{
		"complete":        {adds: []int64{0, 1, 2, 3}, n: 4, wantDistinct: 4},
		"dups":            {adds: []int64{0, 1, 1, 2, 2, 2}, n: 3, wantDistinct: 3, wantDups: 3},
		"holes":           {adds: []int64{0, 2, 5}, n: 7, wantDistinct: 3, wantMissing: []int{1, 3, 4, 6}, wantMissN: 4},
		"word boundaries": {adds: []int64{63, 64, 127, 128}, n: 130, wantDistinct: 4, wantMissN: 126},
		"none":            {n: 3, wantMissing: []int{0, 1, 2}, wantMissN: 3},
		"out of range":    {adds: []int64{-1, MaxSeq, 0}, n: 1, wantDistinct: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr := NewTracker()
			var b Batch
			for _, s := range tc.adds {
				b.Add([]byte("a"), s, time.Now().UnixNano())
			}
			b.Add([]byte("b"), 0, 0)
			tr.Commit(&b)
			if b.Len() != 0 {
				t.Fatalf("batch not reset: %d", b.Len())
			}
			st := tr.Stats()
			if got := int64(tr.Distinct("a")); got != tc.wantDistinct {
				t.Errorf("distinct %d, want %d", got, tc.wantDistinct)
			}
			if st.Duplicates != tc.wantDups {
				t.Errorf("dups %d, want %d", st.Duplicates, tc.wantDups)
			}
			if got := tr.MissingCount("a", tc.n); got != tc.wantMissN {
				t.Errorf("missing count %d, want %d", got, tc.wantMissN)
			}
			if tc.wantMissing != nil {
				got := tr.Missing("a", tc.n)
				if len(got) != len(tc.wantMissing) {
					t.Fatalf("missing %v, want %v", got, tc.wantMissing)
				}
				for i := range got {
					if got[i] != tc.wantMissing[i] {
						t.Fatalf("missing %v, want %v", got, tc.wantMissing)
					}
				}
			}
			if tr.Distinct("b") != 1 || tr.Count() != tc.wantDistinct+1 {
				t.Errorf("count %d, b %d", tr.Count(), tr.Distinct("b"))
			}
		})
	}
}

func TestTrackerMissingCapped(t *testing.T) {
	tr := NewTracker()
	if got := tr.Missing("x", 1000); len(got) != maxMissing || got[0] != 0 || got[maxMissing-1] != maxMissing-1 {
		t.Fatalf("missing %v", got)
	}
	if tr.MissingCount("x", 1000) != 1000 {
		t.Fatal("missing count")
	}
}

func TestTrackerWait(t *testing.T) {
	tr := NewTracker()
	done := make(chan error, 1)
	go func() { done <- tr.Wait(context.Background(), 3) }()
	var b Batch
	for i := range int64(3) {
		time.Sleep(5 * time.Millisecond)
		b.Add([]byte("s"), i, 0)
		tr.Commit(&b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return")
	}
	if tr.WaitCount(4, 20*time.Millisecond) {
		t.Fatal("WaitCount(4) succeeded with 3 keys")
	}
}

func TestTrackerWindow(t *testing.T) {
	tr := NewTracker()
	var b Batch
	old := time.Now().Add(-2 * time.Second).UnixNano()
	for i := range int64(10) {
		b.Add([]byte("w"), i, old)
	}
	tr.Commit(&b)
	w := tr.Window(time.Now().Add(-time.Second), time.Now().Add(time.Second))
	if w.Events != 10 || w.MeanLatency < 2*time.Second || w.MaxLatency < 2*time.Second || w.Rate <= 0 {
		t.Fatalf("window %v", w)
	}
	if w := tr.Window(time.Now().Add(time.Minute), time.Now().Add(2*time.Minute)); w.Events != 0 {
		t.Fatalf("future window %v", w)
	}
}

func BenchmarkCommit(b *testing.B) {
	tr := NewTracker()
	var batch Batch
	const perReq = 1000
	src := []byte("container-1")
	b.ReportAllocs()
	b.SetBytes(perReq * 200)
	seq := int64(0)
	for b.Loop() {
		for range perReq {
			batch.Add(src, seq%(1<<22), 1)
			seq++
		}
		tr.Commit(&batch)
	}
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/internal/wire"
)

// /tap streams a sample of the events stored into an output's queue from
// now on, as JSON lines {"output", "tag", "time", "record"} (`agent tap`;
// docs/operations.md). It reads the queue's segment files through
// descriptors of its own (buffer.Follow), so it has no effect on delivery:
// no lock, no hook in the pipeline, nothing acked or held.
//
//	GET /tap?output=ID        the output's queue (output=A&output=B: several)
//	    &n=100                stop after this many events (max 10000)
//	    &rate=100             at most this many events per second; the others
//	                          are skipped (max 1000)
//	    &timeout=60s          stop after this long (max 10m)
//
// It knows the outputs and the data dir from Status, whose fields are
// stable, so it does not depend on how the Agent holds its config.
const (
	tapMaxStreams = 4 // concurrent /tap streams per process
	tapMaxN       = 10000
	tapMaxRate    = 1000
	tapMaxTimeout = 10 * time.Minute
	tapPoll       = 100 * time.Millisecond
)

var tapStreams atomic.Int32

var errTapDone = errors.New("tap: done")

func (a *Agent) handleTap(mux *http.ServeMux) {
	mux.HandleFunc("GET /tap", a.serveTap)
}

func (a *Agent) serveTap(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err1 := tapParam(q.Get("n"), 100, 1, tapMaxN)
	rate, err2 := tapParam(q.Get("rate"), 100, 1, tapMaxRate)
	timeout := time.Minute
	var err3 error
	if s := q.Get("timeout"); s != "" {
		if timeout, err3 = time.ParseDuration(s); err3 == nil && (timeout <= 0 || timeout > tapMaxTimeout) {
			err3 = fmt.Errorf("timeout must be in (0, %s]", tapMaxTimeout)
		}
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	outputs := q["output"]
	dataDir, code, err := a.tapOutputs(outputs)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	if tapStreams.Add(1) > tapMaxStreams {
		tapStreams.Add(-1)
		http.Error(w, fmt.Sprintf("already %d taps streaming", tapMaxStreams), http.StatusTooManyRequests)
		return
	}
	defer tapStreams.Add(-1)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	t := &tapSink{w: w, flusher: flusher, n: n, rate: float64(rate), tokens: float64(rate), last: time.Now(), cancel: cancel}
	var wg sync.WaitGroup
	for _, id := range outputs {
		dir := filepath.Join(dataDir, "buffer", id)
		wg.Go(func() {
			err := buffer.Follow(ctx, dir, tapPoll, func(c buffer.Chunk) error { return t.chunk(id, c) })
			if err != nil && !errors.Is(err, errTapDone) {
				a.log.Warn("tap: reading queue", "output", id, "err", err)
				cancel()
			}
		})
	}
	wg.Wait()
}

func tapParam(s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%q: want an integer in [%d, %d]", s, lo, hi)
	}
	return v, nil
}

// tapOutputs checks the requested output ids against the running ones
// and returns them with the data dir.
func (a *Agent) tapOutputs(ids []string) (string, int, error) {
	if len(ids) == 0 {
		return "", http.StatusBadRequest, errors.New("give output=ID")
	}
	st := a.Status()
	for _, id := range ids {
		found := false
		for _, o := range st.Outputs {
			found = found || o.ID == id
		}
		if !found {
			return "", http.StatusNotFound, fmt.Errorf("no output %q", id)
		}
	}
	return st.Agent.DataDir, 0, nil
}

// tapSink writes the sampled events of every followed queue.
type tapSink struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	flusher http.Flusher
	n       int // events still to write
	rate    float64
	tokens  float64 // token bucket: rate per second, burst rate
	last    time.Time
	line    []byte
	cancel  context.CancelFunc
}

func (t *tapSink) chunk(output string, c buffer.Chunk) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n <= 0 {
		return errTapDone
	}
	now := time.Now()
	t.tokens = min(t.rate, t.tokens+now.Sub(t.last).Seconds()*t.rate)
	t.last = now
	wrote := false
	for rest := c.Entries; len(rest) > 0 && t.n > 0; {
		if t.tokens < 1 {
			break // over the rate: skip the rest of this chunk
		}
		ns, rec, _, size, err := wire.NextEntry(rest)
		if err != nil {
			break
		}
		rest = rest[size:]
		t.line = append(t.line[:0], `{"output":`...)
		t.line = jsonl.AppendString(t.line, []byte(output))
		t.line = append(t.line, ',')
		line, err := jsonl.AppendLine(t.line, c.Tag, ns, rec)
		if err != nil {
			continue
		}
		// AppendLine wrote `{"tag":...}`: drop its opening brace.
		t.line = append(line[:len(t.line)], line[len(t.line)+1:]...)
		if _, err := t.w.Write(t.line); err != nil {
			t.cancel()
			return errTapDone
		}
		t.tokens--
		t.n--
		wrote = true
	}
	if wrote && t.flusher != nil {
		t.flusher.Flush()
	}
	if t.n <= 0 {
		t.cancel()
		return errTapDone
	}
	return nil
}

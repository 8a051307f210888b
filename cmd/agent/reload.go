package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-agent/sluice/agent"
)

// watchInterval is how often `agent run --watch-config` looks at the
// config file.
const watchInterval = 2 * time.Second

// newRunLogger is newLogger with a level a reload can change (log_level).
func newRunLogger(w io.Writer, level string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(parseLevel(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})), lv
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		l = slog.LevelInfo
	}
	return l
}

// notifyHUP makes SIGHUP a reload request from now on (instead of its
// default action, exiting): call it before anything slow, so that a
// SIGHUP during the start never kills the agent.
func notifyHUP() chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c
}

// reloader reloads the config file of a running agent on SIGHUP and, with
// --watch-config, when the file's content changes (checked every
// watchInterval: size and mtime first, then a SHA-256 of the content, so
// a touch or a rewrite with the same bytes reloads nothing, and a
// Kubernetes ConfigMap's symlink swap is seen). A file that does not load
// or is refused is logged with its file:line problems and counted
// (sluice_config_reloads_total{result="failure"}); the agent runs on with
// its config. A watched file is tried again only once it changes again.
type reloader struct {
	a     *agent.Agent
	path  string
	log   *slog.Logger
	level *slog.LevelVar

	mu   sync.Mutex // one reload at a time
	seen fileState  // the file as last loaded (or tried)
}

type fileState struct {
	size  int64
	mtime time.Time
	sum   [sha256.Size]byte
	ok    bool // read
}

func stateOf(path string, prev fileState) fileState {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}
	}
	st := fileState{size: fi.Size(), mtime: fi.ModTime(), ok: true}
	if prev.ok && st.size == prev.size && st.mtime.Equal(prev.mtime) {
		st.sum = prev.sum
		return st
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fileState{}
	}
	st.sum = sha256.Sum256(b)
	return st
}

// startReloader serves hup (and watches the file) until ctx ends; the
// returned func waits for it to stop.
func startReloader(ctx context.Context, a *agent.Agent, path string, log *slog.Logger, level *slog.LevelVar, hup chan os.Signal, watch bool) func() {
	r := &reloader{a: a, path: path, log: log, level: level}
	r.seen = stateOf(path, fileState{})
	var t *time.Ticker
	var tick <-chan time.Time
	if watch {
		t = time.NewTicker(watchInterval)
		tick = t.C
		log.Info("watching the config file for changes", "config", path, "interval", watchInterval.String())
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(ctx, hup, tick)
	}()
	return func() {
		cancel()
		<-done
		if t != nil {
			t.Stop()
		}
		signal.Stop(hup)
	}
}

func (r *reloader) loop(ctx context.Context, hup chan os.Signal, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload("SIGHUP", stateOf(r.path, r.seen))
		case <-tick:
			st := stateOf(r.path, r.seen)
			if st.ok && (!r.seen.ok || !bytes.Equal(st.sum[:], r.seen.sum[:])) {
				r.reload("config file changed", st)
			} else {
				r.seen = st
			}
		}
	}
}

// reload applies the file; st is its state just read.
func (r *reloader) reload(reason string, st fileState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = st
	r.log.Info("reloading config", "config", r.path, "reason", reason)
	if err := r.a.ReloadFile(r.path); err != nil {
		return // logged and counted by the agent
	}
	r.level.Set(parseLevel(r.a.Config().LogLevel))
}

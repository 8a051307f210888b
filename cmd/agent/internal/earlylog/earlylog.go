// Package earlylog makes the standard log package write JSON lines from
// the start of the process, before any other package's init runs, so that
// every line the agent prints is JSON.
//
// VictoriaMetrics/metrics logs with log.Printf while it initializes (a
// package variable): "INFO: metrics: disable exposing PSI metrics because
// of failed init: ..." when the cgroup has no pressure files, e.g. in a
// container. That is before main, so main cannot redirect it; this
// package's init can, because it runs first: Go initializes, among the
// packages whose imports are initialized, the first by import path, and
// this one needs only context, log, log/slog, os and strings, while the
// metrics package also waits for net/http, regexp, runtime/metrics and
// more, which sort after github.com/sluice-agent/... and are initialized
// later. TestEarlyLogInitFirst in cmd/agent checks the order in the built
// binary.
//
// cmd/agent's run replaces the output with its own logger (slog.SetDefault)
// once the config is read.
package earlylog

import (
	"context"
	"log"
	"log/slog"
	"os"
	"strings"
)

func init() {
	log.SetFlags(0)
	log.SetOutput(Writer{slog.New(slog.NewJSONHandler(os.Stderr, nil))})
}

// Writer turns each standard log line into one record of its logger. A
// leading "ERROR: ", "WARN: ", "WARNING: " or "INFO: " (the convention of
// VictoriaMetrics/metrics) sets the level and is dropped; the default is
// INFO.
type Writer struct{ Log *slog.Logger }

func (w Writer) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"ERROR: ": slog.LevelError, "WARN: ": slog.LevelWarn, "WARNING: ": slog.LevelWarn, "INFO: ": slog.LevelInfo} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			msg, level = rest, l
			break
		}
	}
	w.Log.Log(context.Background(), level, msg)
	return len(p), nil
}

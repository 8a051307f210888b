// Package stdout is the "stdout" output: JSON lines on the agent's standard
// output, one per event, in the format of package file (undecodable events
// refused and counted the same way; stdout has no dead-letter queue). Meant for debugging; the agent's own
// logs go to stdout as well, as JSON objects with a "msg" key.
package stdout

import (
	"log/slog"
	"os"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/outputs/file"
	"github.com/sluice-agent/sluice/outputs/internal/delivery"
)

// New returns a stdout output reading from src.
func New(id string, src delivery.Source, log *slog.Logger, set *metrics.Set) *file.Output {
	return file.NewWriter(id, os.Stdout, src, log, set)
}

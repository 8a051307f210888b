package docker

import (
	"strconv"
	"strings"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
)

// layout is Docker's json-file layout: <root>/<id>/<id>-json.log, rotated
// to <id>-json.log.1, .2 … (.N.gz when compressed, never read).
type layout struct{ in *Input }

// Wants implements tail.SourceFilter: every container but the agent's own
// (see selfContainerID).
func (l layout) Wants(id string) bool { return l.in.self == "" || id != l.in.self }

// Depth implements tail.Layout: container directories are right below
// the root.
func (layout) Depth() int { return 1 }

// Logs implements tail.Layout.
func (layout) Logs(dst []tail.Log, names []string) []tail.Log {
	for _, name := range names {
		if rank, ok := logRank(name); ok {
			dst = append(dst, tail.Log{Name: name, Rank: rank})
		}
	}
	return dst
}

// Source implements tail.Layout: the key is the container id.
func (l layout) Source(id, dir string) tail.Source { return newContainer(l.in, id, dir) }

// logRank classifies a file name: <x>-json.log is live (rank 0),
// <x>-json.log.N is rotated (rank N); anything else (.gz included) is not a
// log file.
func logRank(name string) (rank int, ok bool) {
	const suffix = "-json.log"
	if strings.HasSuffix(name, suffix) {
		return 0, len(name) > len(suffix)
	}
	i := strings.LastIndex(name, suffix+".")
	if i <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(name[i+len(suffix)+1:])
	if err != nil || n <= 0 || strconv.Itoa(n) != name[i+len(suffix)+1:] {
		return 0, false
	}
	return n, true
}

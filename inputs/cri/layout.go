package cri

import (
	"cmp"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
)

// layout is the kubelet's pod log layout (formats.md §4.2, §4.3):
//
//	<root>/<namespace>_<pod>_<uid>/<container>/<restart>.log
//	                                          /<restart>.log.<YYYYMMDD-hhmmss>   rotated
//	                                          /<restart>.log.<…>.gz, .tmp       never read
//
// It implements tail.Layout and tail.SourceFilter. Its scratch space is
// used on the tail's reader goroutine only.
type layout struct {
	in   *Input
	ents []logName
	// wanted caches SourceFilter answers per source key (the pattern
	// match is done once per source).
	wanted map[string]bool
}

// Depth implements tail.Layout: container directories are two levels
// below the root.
func (*layout) Depth() int { return 2 }

// logName is a parsed log file name.
type logName struct {
	name    string
	restart int    // the container's restart count: <restart>.log
	rotated string // the rotation's timestamp; "" for the live file
}

// Logs implements tail.Layout. The files of a container are ordered by
// restart count, then each restart's rotations by their timestamp (the
// kubelet's "20060102-150405" sorts as it reads), then its live file. The
// newest is rank 0 (the one written to) only if it is a live <n>.log:
// while the kubelet has renamed the live file but the runtime has not
// reopened it yet, every file is finished at its end. The live file of an
// earlier restart (its container exited) is finished too.
func (l *layout) Logs(dst []tail.Log, names []string) []tail.Log {
	ents := l.ents[:0]
	for _, name := range names {
		if e, ok := parseLogName(name); ok {
			ents = append(ents, e)
		}
	}
	slices.SortFunc(ents, func(a, b logName) int {
		if c := cmp.Compare(a.restart, b.restart); c != 0 {
			return c
		}
		switch {
		case a.rotated == b.rotated:
			return 0
		case a.rotated == "": // the live file after its rotations
			return 1
		case b.rotated == "":
			return -1
		}
		return strings.Compare(a.rotated, b.rotated)
	})
	newest := len(ents) - 1
	base := 0
	if newest >= 0 && ents[newest].rotated != "" {
		base = 1
	}
	for i, e := range ents {
		dst = append(dst, tail.Log{Name: e.name, Rank: base + newest - i})
	}
	clear(ents)
	l.ents = ents[:0]
	return dst
}

// parseLogName classifies a file name of a container directory:
// <n>.log is live, <n>.log.<YYYYMMDD-hhmmss> a rotation; anything else
// (.gz, .tmp, other files) is not read.
func parseLogName(name string) (logName, bool) {
	i := strings.Index(name, ".log")
	if i <= 0 || i > 9 || !allDigits(name[:i]) {
		return logName{}, false
	}
	n := 0
	for _, c := range name[:i] {
		n = n*10 + int(c-'0')
	}
	rest := name[i+len(".log"):]
	if rest == "" {
		return logName{name: name, restart: n}, true
	}
	ts, ok := strings.CutPrefix(rest, ".")
	if !ok || !rotationStamp(ts) {
		return logName{}, false
	}
	return logName{name: name, restart: n, rotated: ts}, true
}

// rotationStamp reports whether s is the kubelet's rotation suffix,
// "20060102-150405".
func rotationStamp(s string) bool {
	return len(s) == 15 && s[8] == '-' && allDigits(s[:8]) && allDigits(s[9:])
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Source implements tail.Layout: the key is "<pod dir>/<container>".
func (l *layout) Source(key, dir string) tail.Source { return newContainer(l.in, key) }

// Wants implements tail.SourceFilter: include_namespaces and
// exclude_namespaces, by the namespace in the key; then, with the
// kubernetes metadata, the exclusion annotation of the pod (asked at each
// scan: a pod annotated later is left at the next full scan).
func (l *layout) Wants(key string) bool {
	in := l.in
	if len(in.include) > 0 || len(in.exclude) > 0 {
		ok, seen := l.wanted[key]
		if !seen {
			ok = wantNamespace(parseKey(key).namespace, in.include, in.exclude)
			if l.wanted == nil || len(l.wanted) >= maxWanted {
				l.wanted = make(map[string]bool) // pods come and go: start over
			}
			l.wanted[key] = ok
		}
		if !ok {
			return false
		}
	}
	return !in.excludedByAnnotation(key)
}

// excludedByAnnotation reports whether the pod of source key is known and
// annotated <exclude_annotation>: "true", or
// <exclude_annotation>-<container>: "true" for this container (Fluent
// Bit's fluentbit.io/exclude[-container] convention).
func (in *Input) excludedByAnnotation(key string) bool {
	k := &in.kube
	if k.client == nil || k.exclude == "" {
		return false
	}
	pp := parseKey(key)
	p := k.client.Pod(pp.uid)
	if p == nil || len(p.Annotations) == 0 {
		return false
	}
	return p.Annotations[k.exclude] == "true" || p.Annotations[k.exclude+"-"+pp.container] == "true"
}

// maxWanted bounds the Wants cache.
const maxWanted = 4096

// wantNamespace reports whether namespace ns passes the include (empty:
// all) and exclude patterns.
func wantNamespace(ns string, include, exclude []string) bool {
	for _, p := range exclude {
		if ok, _ := path.Match(p, ns); ok {
			return false
		}
	}
	if len(include) == 0 {
		return true
	}
	for _, p := range include {
		if ok, _ := path.Match(p, ns); ok {
			return true
		}
	}
	return false
}

// podPath is what a source key says about its container.
type podPath struct {
	namespace, pod, uid, container string
}

// parseKey splits "<namespace>_<pod>_<uid>/<container>". Neither a
// namespace (a DNS label) nor a pod name (a DNS subdomain) holds "_", so
// the namespace ends at the first "_" and the uid starts after the last,
// as the kubelet's parsePodUIDFromLogsDirectory takes it. An old kubelet's
// "<uid>/<container>" gives the uid alone.
func parseKey(key string) podPath {
	podDir, container, _ := strings.Cut(key, string(filepath.Separator))
	p := podPath{container: container, uid: podDir}
	i, j := strings.IndexByte(podDir, '_'), strings.LastIndexByte(podDir, '_')
	if i >= 0 && j > i {
		p.namespace, p.pod, p.uid = podDir[:i], podDir[i+1:j], podDir[j+1:]
	} else if i >= 0 {
		p.uid = podDir[i+1:]
	}
	return p
}

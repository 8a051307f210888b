package agent

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluice-agent/sluice/buffer"
)

// Status is the document /status serves (docs/operations.md has it with
// an example). Its field names are stable: tools such as `agent top` read
// them. It never holds a secret: ids, types, addresses without userinfo,
// paths, numbers and error messages (with any URL userinfo removed).
type Status struct {
	Agent   AgentInfo `json:"agent"`
	Healthy bool      `json:"healthy"`
	Ready   bool      `json:"ready"`
	// HealthProblems and ReadinessProblems are what /healthz and /readyz
	// answer 503 with (empty when they answer 200).
	HealthProblems    []Problem      `json:"health_problems"`
	ReadinessProblems []Problem      `json:"readiness_problems"`
	Inputs            []InputStatus  `json:"inputs"`
	Outputs           []OutputStatus `json:"outputs"`
	// RetainedQueues are the queues on disk of outputs the running config
	// does not have (removed by a reload, or from the file while the agent
	// was stopped): kept, with what they hold, until `agent buffer drop`
	// (or until the output is configured again, which sends it).
	RetainedQueues []RetainedQueue `json:"retained_queues"`
}

// RetainedQueue is a queue directory under the data dir whose output is
// not configured and holds data. Bytes and Files are its segment files as
// listed now (acked data not yet truncated included); `agent buffer ls`
// reads what they hold.
type RetainedQueue struct {
	Output string `json:"output"`
	Queue  string `json:"queue"` // buffer/<id> or deadletter/<id>
	Bytes  int64  `json:"bytes"`
	Files  int    `json:"files"`
}

// AgentInfo describes the agent process.
type AgentInfo struct {
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	ConfigFile    string    `json:"config_file"`
	DataDir       string    `json:"data_dir"`
	ShuttingDown  bool      `json:"shutting_down"`
	// LastReload is the outcome of the last config reload (SIGHUP,
	// --watch-config); omitted before the first one.
	LastReload *ReloadStatus `json:"last_reload,omitempty"`
}

// InputStatus is one input. Detail is the input type's own status while
// it runs: a forward.Status for forward inputs, a tail.Status for docker
// and cri inputs.
type InputStatus struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	State string `json:"state"` // running, stopping, stopped, failed, exited
	Ready bool   `json:"ready"` // running and accepting
	Error string `json:"error,omitempty"`
	// Detail is the type's own status (omitted while stopped).
	Detail any `json:"detail,omitempty"`
}

// OutputStatus is one output and its queue. The queue is reported
// whether the output runs or not (a stopped output's queue keeps filling).
type OutputStatus struct {
	ID    string             `json:"id"`
	Type  string             `json:"type"`
	State string             `json:"state"`
	Error string             `json:"error,omitempty"` // why Run returned, when failed
	Queue buffer.QueueStatus `json:"queue"`
	// LastError is the last delivery failure and its time, for outputs
	// that report one.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// Detail is the type's own status (the forward output: a
	// forward.Status with its servers and its delivery engine).
	Detail any `json:"detail,omitempty"`
}

// statuser is a component with a status of its own, put in /status as
// its detail. Status must be safe from any goroutine and quick (no
// network, no waiting on the component's loop).
type statuser interface{ Status() any }

// lastErrorer is an output that remembers its last delivery failure.
type lastErrorer interface {
	LastError() (string, time.Time)
}

// Status returns the agent's status now. Safe from any goroutine.
func (a *Agent) Status() Status {
	now := time.Now()
	l := a.cur()
	s := Status{
		Agent: AgentInfo{
			Version:      a.status.version,
			StartedAt:    a.startedAt(),
			ConfigFile:   l.cfg.File,
			DataDir:      l.cfg.DataDir,
			ShuttingDown: a.status.stopping.Load(),
		},
		HealthProblems:    a.Health(),
		ReadinessProblems: a.Readiness(),
		Inputs:            []InputStatus{},
		Outputs:           []OutputStatus{},
	}
	if !s.Agent.StartedAt.IsZero() {
		s.Agent.UptimeSeconds = now.Sub(s.Agent.StartedAt).Seconds()
	}
	s.Healthy, s.Ready = len(s.HealthProblems) == 0, len(s.ReadinessProblems) == 0
	if s.HealthProblems == nil {
		s.HealthProblems = []Problem{}
	}
	if s.ReadinessProblems == nil {
		s.ReadinessProblems = []Problem{}
	}
	s.Agent.LastReload = a.reload.last()
	for _, u := range l.inputs {
		st := a.sup.state(u.ref)
		is := InputStatus{ID: u.ref.id, Type: u.typ, State: st.state}
		if st.err != nil {
			is.Error = redact(st.err.Error())
		}
		if st.state == stateRunning {
			is.Ready = true
			if r, ok := st.c.(readier); ok {
				is.Ready = r.Ready()
			}
		}
		if sr, ok := st.c.(statuser); ok {
			is.Detail = sr.Status()
		}
		s.Inputs = append(s.Inputs, is)
	}
	for i, u := range l.outputs {
		st := a.sup.state(u.ref)
		out := OutputStatus{ID: u.ref.id, Type: u.typ, State: st.state, Queue: l.queues[i].q.Status()}
		if out.Queue.Error != "" {
			out.Queue.Error = redact(out.Queue.Error)
		}
		if st.err != nil {
			out.Error = redact(st.err.Error())
		}
		if le, ok := st.c.(lastErrorer); ok {
			if msg, at := le.LastError(); msg != "" {
				out.LastError, out.LastErrorAt = redact(msg), &at
			}
		}
		if sr, ok := st.c.(statuser); ok {
			out.Detail = sr.Status()
		}
		s.Outputs = append(s.Outputs, out)
	}
	s.RetainedQueues = retainedQueues(l.cfg.DataDir, s.Outputs)
	return s
}

// retainedQueues lists the queue directories under dataDir (buffer/<id>,
// deadletter/<id>) of outputs not in outs. It reads directory listings
// only (no segment content), so /status stays cheap.
func retainedQueues(dataDir string, outs []OutputStatus) []RetainedQueue {
	rq := []RetainedQueue{}
	if dataDir == "" {
		return rq
	}
	for _, kind := range []string{"buffer", "deadletter"} {
		ents, err := os.ReadDir(filepath.Join(dataDir, kind))
		if err != nil {
			continue
		}
		for _, e := range ents {
			id := e.Name()
			if !e.IsDir() || strings.HasPrefix(id, ".") || slices.ContainsFunc(outs, func(o OutputStatus) bool { return o.ID == id }) {
				continue
			}
			q := RetainedQueue{Output: id, Queue: kind + "/" + id}
			files, _ := os.ReadDir(filepath.Join(dataDir, kind, id))
			for _, f := range files {
				if fi, err := f.Info(); err == nil && fi.Mode().IsRegular() && strings.HasSuffix(f.Name(), ".seg") {
					q.Bytes += fi.Size()
					q.Files++
				}
			}
			if q.Bytes > 0 { // an empty queue retains nothing
				rq = append(rq, q)
			}
		}
	}
	return rq
}

// handleStatus registers /healthz, /readyz and /status on mux and marks
// the agent started: Run calls it once every component was started.
func (a *Agent) handleStatus(mux *http.ServeMux) {
	a.status.started.CompareAndSwap(0, time.Now().UnixNano())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		problems(w, a.Health())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		problems(w, a.Readiness())
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
}

// problems answers 200 "ok" when ps is empty, else 503 with
// {"status": "unavailable", "problems": [...]}.
func problems(w http.ResponseWriter, ps []Problem) {
	if len(ps) == 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n")) //nolint:errcheck // the client went away
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, struct {
		Status   string    `json:"status"`
		Problems []Problem `json:"problems"`
	}{"unavailable", ps})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encode status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n')) //nolint:errcheck // the client went away
}

// userinfo matches the userinfo of a URL ("scheme://user:pass@").
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]*@`)

// redact removes URL userinfo from a message: an error can quote a URL a
// user configured with credentials in it.
func redact(s string) string { return userinfo.ReplaceAllString(s, "$1") }

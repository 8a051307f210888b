package cri

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sluice-agent/sluice/inputs/internal/tail"
)

// TestLogsRanks: the kubelet's files of one container directory are read
// oldest first (restart count, then rotation time, then the live file);
// only a newest live <n>.log is rank 0; .gz, .tmp and other names are
// never logs.
func TestLogsRanks(t *testing.T) {
	tests := map[string]struct {
		names []string
		want  []tail.Log // in reading order
	}{
		"live only": {[]string{"0.log"}, []tail.Log{{Name: "0.log", Rank: 0}}},
		"kubelet steady state": {
			[]string{"0.log", "0.log.20240102-030405", "0.log.20240102-020405.gz", "0.log.20240102-010405.gz", "0.log.20240102-030405.tmp"},
			[]tail.Log{{Name: "0.log.20240102-030405", Rank: 1}, {Name: "0.log", Rank: 0}},
		},
		"two rotations not yet compressed (stopped agent)": {
			[]string{"0.log.20240102-030405", "0.log", "0.log.20240102-040405"},
			[]tail.Log{{Name: "0.log.20240102-030405", Rank: 2}, {Name: "0.log.20240102-040405", Rank: 1}, {Name: "0.log", Rank: 0}},
		},
		"renamed, not reopened yet": {
			[]string{"0.log.20240102-030405"},
			[]tail.Log{{Name: "0.log.20240102-030405", Rank: 1}},
		},
		"restarts": {
			[]string{"1.log", "0.log", "0.log.20240102-030405", "2.log.20240102-050405", "2.log", "10.log"},
			[]tail.Log{{Name: "0.log.20240102-030405", Rank: 5}, {Name: "0.log", Rank: 4}, {Name: "1.log", Rank: 3},
				{Name: "2.log.20240102-050405", Rank: 2}, {Name: "2.log", Rank: 1}, {Name: "10.log", Rank: 0}},
		},
		"not logs": {
			[]string{"x.log", ".log", "0.logx", "0.log.gz", "0.log.1", "0.log.20240102-0304", "0.log.20240102_030405",
				"0.log.20240102-030405.gz", "0.log.20240102-030405.tmp", "-1.log", "1234567890.log", "0.log.", "0.json"},
			nil,
		},
	}
	var l layout
	for name, tc := range tests {
		for range 5 { // the order of names does not matter
			names := append([]string(nil), tc.names...)
			rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			got := l.Logs(nil, names)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s: %v gives %+v, want %+v", name, names, got, tc.want)
			}
		}
	}
}

func TestParseKey(t *testing.T) {
	sep := string(filepath.Separator)
	tests := map[string]podPath{
		"default_web-7d9f8b6c5-x2x4z_0b5c8e2a-1111-2222-3333-444455556666" + sep + "nginx": {
			"default", "web-7d9f8b6c5-x2x4z", "0b5c8e2a-1111-2222-3333-444455556666", "nginx"},
		"kube-system_etcd-node.example.com_a1b2" + sep + "etcd": {"kube-system", "etcd-node.example.com", "a1b2", "etcd"},
		// Old kubelets: /var/log/pods/<uid>/<container>.
		"0b5c8e2a-1111-2222-3333-444455556666" + sep + "app": {"", "", "0b5c8e2a-1111-2222-3333-444455556666", "app"},
		"odd_uid" + sep + "c":                                {"", "", "uid", "c"},
	}
	for key, want := range tests {
		if got := parseKey(key); got != want {
			t.Errorf("%q: %+v, want %+v", key, got, want)
		}
	}
}

func TestWantNamespace(t *testing.T) {
	tests := []struct {
		ns               string
		include, exclude []string
		want             bool
	}{
		{"default", nil, nil, true},
		{"kube-system", nil, []string{"kube-*"}, false},
		{"kubeflow", nil, []string{"kube-*"}, true},
		{"team-a", []string{"team-*", "prod"}, nil, true},
		{"prod", []string{"team-*", "prod"}, nil, true},
		{"staging", []string{"team-*", "prod"}, nil, false},
		{"team-secret", []string{"team-*"}, []string{"*-secret"}, false}, // exclude wins
		{"", []string{"*"}, nil, true},
	}
	for _, tc := range tests {
		if got := wantNamespace(tc.ns, tc.include, tc.exclude); got != tc.want {
			t.Errorf("%q include %v exclude %v: %v", tc.ns, tc.include, tc.exclude, got)
		}
	}
}

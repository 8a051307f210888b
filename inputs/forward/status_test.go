package forward

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-agent/sluice/config"
)

// TestStatus: Ready while listening; Status counts the open connections
// per listener and per source, and names no secret.
func TestStatus(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "f.sock")
	s := startServer(t, config.ForwardInput{Listen: "127.0.0.1:0", Unix: sock,
		Security: &config.Security{SelfHostname: "agent", SharedKey: "never-in-status"}}, nil)
	if !s.in.Ready() {
		t.Fatal("not ready while listening")
	}
	for _, a := range [][2]string{{"tcp", s.addr}, {"tcp", s.addr}, {"unix", sock}} {
		c, err := net.Dial(a[0], a[1])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var st Status
	deadline := time.Now().Add(5 * time.Second)
	for st = s.in.Status().(Status); st.Connections < 3 && time.Now().Before(deadline); st = s.in.Status().(Status) {
		time.Sleep(10 * time.Millisecond)
	}
	if !st.Listening || st.Connections != 3 || len(st.Listeners) != 2 || st.SourcesTotal != 2 {
		t.Fatalf("status %+v", st)
	}
	if l := st.Listeners[0]; l.Network != "tcp" || l.Address != s.addr || l.Connections != 2 || l.MaxConnections != 1024 {
		t.Errorf("tcp listener %+v", l)
	}
	if l := st.Listeners[1]; l.Network != "unix" || l.Address != sock || l.Connections != 1 {
		t.Errorf("unix listener %+v", l)
	}
	if want := []SourceStatus{{"127.0.0.1", 2}, {"unix", 1}}; len(st.Sources) != 2 || st.Sources[0] != want[0] || st.Sources[1] != want[1] {
		t.Errorf("sources %+v, want %+v", st.Sources, want)
	}
	if b, _ := json.Marshal(st); strings.Contains(string(b), "never-in-status") {
		t.Errorf("the shared key is in the status: %s", b)
	}
	s.stop()
	if s.in.Ready() {
		t.Error("ready after Run returned")
	}
}

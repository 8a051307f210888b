package config

import (
	"strings"
	"testing"
)

// TestUnixPathTooLong: a forward input's unix socket path longer than a
// sockaddr_un holds is refused by validate (run's bind would refuse it); the
// longest accepted one is valid.
func TestUnixPathTooLong(t *testing.T) {
	yml := func(path string) string {
		return "data_dir: /tmp/x\ninputs:\n  - {id: f, type: forward, unix: " + path + "}\noutputs:\n  - {id: o, type: stdout}\n"
	}
	ok := "/" + strings.Repeat("a", maxUnixPath-1)
	if _, err := Parse([]byte(yml(ok)), "t.yml"); err != nil {
		t.Fatalf("%d-byte path: %v", len(ok), err)
	}
	_, err := Parse([]byte(yml(ok+"b")), "t.yml")
	if err == nil || !strings.Contains(err.Error(), ".unix: socket path is 108 bytes") {
		t.Fatalf("108-byte path: %v", err)
	}
}

package forward

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-agent/sluice/config"
)

// TestUnixSocketCreatesDir: the socket's missing parent directories are
// created (0755), as the image's default /var/run/sluice/fluent.sock needs
// on a FROM scratch image with no /var/run.
func TestUnixSocketCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "run", "sluice")
	path := filepath.Join(dir, "fluent.sock")
	s := startServer(t, config.ForwardInput{Unix: path}, nil)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&^0o755 != 0 {
		t.Fatalf("socket directory: %v %v", err, fi)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(message("app", 1700000000, rec("log", "via unix"), "c1"))
	if got := readN(t, c, len(ack("c1"))); !bytes.Equal(got, ack("c1")) {
		t.Fatalf("ack %x", got)
	}
	s.stop()
}

package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// finalStage returns the instructions of a Dockerfile's last stage (from
// its last FROM), comments and blank lines left out, with the build-stage
// source of COPY --from=build (the multi-stage file's /rootfs/) and the
// offline build context's rootfs/ written the same way, so that the two
// files can be compared line by line.
func finalStage(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, name))
	if err != nil {
		t.Fatal(err)
	}
	var stage []string
	norm := regexp.MustCompile(`^COPY (--from=build )?(--chown=\S+ )?/?rootfs/`)
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "FROM ") {
			stage = nil
		}
		if m := norm.FindStringSubmatch(l); m != nil {
			l = "COPY " + m[2] + "ROOTFS/" + l[len(m[0]):]
		}
		stage = append(stage, l)
	}
	return stage
}

// TestDockerfilesAgree: the multi-stage Dockerfile (docker build .) and the
// offline one (deploy/build-image.sh, no pull) end in the same image: the
// same final stage, FROM scratch, the data and socket directories owned by
// the non-root user 65532, exec-form ENTRYPOINT /sluice.
func TestDockerfilesAgree(t *testing.T) {
	multi := finalStage(t, "Dockerfile")
	offline := finalStage(t, "deploy/Dockerfile.offline")
	if !slices.Equal(multi, offline) {
		t.Fatalf("final stages differ:\nDockerfile:\n  %s\ndeploy/Dockerfile.offline:\n  %s", strings.Join(multi, "\n  "), strings.Join(offline, "\n  "))
	}
	for _, want := range []string{
		"FROM scratch",
		"COPY --chown=65532:65532 ROOTFS/var/lib/sluice/ /var/lib/sluice/",
		"COPY --chown=65532:65532 ROOTFS/var/run/sluice/ /var/run/sluice/",
		`ENTRYPOINT ["/sluice"]`,
	} {
		if !slices.Contains(multi, want) {
			t.Errorf("final stage lacks %q:\n  %s", want, strings.Join(multi, "\n  "))
		}
	}
	if entrypoint(t) != "/sluice" {
		t.Errorf("ENTRYPOINT %q", entrypoint(t))
	}
	// The multi-stage file builds from the module: it needs the sources
	// the binary is built from, so .dockerignore must not exclude them.
	ign, err := os.ReadFile(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(ign), "\n") {
		switch strings.TrimSpace(l) {
		case "*", "*.go", "go.mod", "go.sum", "cmd", "deploy":
			t.Errorf(".dockerignore excludes %q, which the build stage needs", l)
		}
	}
}

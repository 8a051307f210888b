package docker

import (
	"bufio"
	"os"
	"regexp"
)

// EnvSelfContainerID overrides the detection of the agent's own container
// id: set it to the 64-hex id, or to "none" to read every container.
const EnvSelfContainerID = "SLUICE_SELF_CONTAINER_ID"

// containerIDIn finds a 64-hex container id in a mountinfo or cgroup line:
// Docker bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from
// /var/lib/docker/containers/<id>/ (cgroup v1 and v2 alike), and cgroup v1
// paths end in /docker/<id> or docker-<id>.scope.
var containerIDIn = regexp.MustCompile(`(?:/containers/|/docker/|docker-)([0-9a-f]{64})(?:/|\.scope|\s|$)`)

// selfContainerID returns the id of the container the agent runs in, or ""
// when it runs on the host (or the id cannot be found). The agent's own
// logs are under the tailed root when it runs as a container with the
// json-file driver (the DaemonSet and ECS daemon layouts); reading them
// back would make every output line a new input line, so the docker input
// never reads that container.
func selfContainerID() string {
	switch v := os.Getenv(EnvSelfContainerID); {
	case v == "none":
		return ""
	case v != "":
		return v
	}
	for _, path := range []string{"/proc/self/mountinfo", "/proc/self/cgroup"} {
		if id := scanContainerID(path); id != "" {
			return id
		}
	}
	return ""
}

func scanContainerID(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := containerIDIn.FindSubmatch(sc.Bytes()); m != nil {
			return string(m[1])
		}
	}
	return ""
}

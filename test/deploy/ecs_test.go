package deploy

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/sluice-agent/sluice/config"
)

// decodeTaskDefinition decodes a task definition file (the JSON of `aws ecs
// register-task-definition --cli-input-json`) into the aws-sdk-go-v2 ECS
// input type, failing on fields it does not have. (The SDK types have no
// json tags: encoding/json matches the camelCase keys to their fields
// without regard to case, so a key misspelled only in case is accepted.)
func decodeTaskDefinition(t *testing.T, path string) *ecs.RegisterTaskDefinitionInput {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var td ecs.RegisterTaskDefinitionInput
	if err := dec.Decode(&td); err != nil {
		t.Fatalf("%s: strict decode: %v", path, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data", path)
	}
	if aws.ToString(td.Family) == "" || len(td.ContainerDefinitions) == 0 {
		t.Fatalf("%s: no family or containers", path)
	}
	// Every mount point names a volume of the task.
	vols := map[string]types.Volume{}
	for _, v := range td.Volumes {
		vols[aws.ToString(v.Name)] = v
	}
	for _, c := range td.ContainerDefinitions {
		for _, mp := range c.MountPoints {
			if _, ok := vols[aws.ToString(mp.SourceVolume)]; !ok {
				t.Errorf("%s: %s mounts unknown volume %s", path, aws.ToString(c.Name), aws.ToString(mp.SourceVolume))
			}
		}
	}
	return &td
}

// agentContainer returns the task's container running the sluice image
// and its environment.
func agentContainer(t *testing.T, td *ecs.RegisterTaskDefinitionInput) (*types.ContainerDefinition, map[string]string) {
	t.Helper()
	for i := range td.ContainerDefinitions {
		c := &td.ContainerDefinitions[i]
		if strings.Contains(aws.ToString(c.Image), "sluice") {
			env := map[string]string{}
			for _, kv := range c.Environment {
				env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
			}
			// The agent must never log through itself (formats.md §5.1).
			if lc := c.LogConfiguration; lc == nil || lc.LogDriver == types.LogDriverFluentd || lc.LogDriver == types.LogDriverAwsfirelens {
				t.Errorf("agent container log configuration %+v", lc)
			}
			if !slices.Equal(c.Command, []string{"run", "--config", "/etc/sluice/agent.yml"}) {
				t.Errorf("agent command %v", c.Command)
			}
			checkHealthCheck(t, c)
			return c, env
		}
	}
	t.Fatal("no sluice container")
	return nil, nil
}

// checkHealthCheck: the container's healthCheck runs the agent binary at
// the path the Dockerfile's ENTRYPOINT names (the image is FROM scratch:
// no shell, curl or wget), as `health --config FILE` with the config the
// container runs, within a timeout above the command's own (3 s).
func checkHealthCheck(t *testing.T, c *types.ContainerDefinition) {
	t.Helper()
	hc := c.HealthCheck
	if hc == nil {
		t.Errorf("%s: no healthCheck", aws.ToString(c.Name))
		return
	}
	want := []string{"CMD", entrypoint(t), "health", "--config", c.Command[len(c.Command)-1]}
	if !slices.Equal(hc.Command, want) {
		t.Errorf("%s: healthCheck command %q, want %q", aws.ToString(c.Name), hc.Command, want)
	}
	if to := aws.ToInt32(hc.Timeout); to <= 3 || aws.ToInt32(hc.Interval) <= to || aws.ToInt32(hc.Retries) < 1 {
		t.Errorf("%s: healthCheck timeout %ds interval %ds retries %d", aws.ToString(c.Name), to, aws.ToInt32(hc.Interval), aws.ToInt32(hc.Retries))
	}
}

// entrypoint returns the binary of the Dockerfile's (last) ENTRYPOINT, in
// exec form.
func entrypoint(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var ep []string
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "ENTRYPOINT "); ok {
			ep = nil
			if err := json.Unmarshal([]byte(rest), &ep); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s is not in exec form: %v", rest, err)
			}
		}
	}
	if len(ep) == 0 {
		t.Fatal("Dockerfile: no ENTRYPOINT")
	}
	return ep[0]
}

// imageConfig validates the image's built-in config (deploy/agent.yml,
// what the task runs: /etc/sluice/agent.yml) with the container's
// environment.
func imageConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "deploy", "agent.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return validateAgentConfig(t, "deploy/agent.yml", string(data), env)
}

func mountAt(c *types.ContainerDefinition, path string) (types.MountPoint, bool) {
	for _, mp := range c.MountPoints {
		if aws.ToString(mp.ContainerPath) == path {
			return mp, true
		}
	}
	return types.MountPoint{}, false
}

// TestECSDaemonTaskDefinition: deploy/ecs/task-definition.json, the daemon
// service's task (EC2, host networking): its config validates with its
// environment; the Docker root is mounted read-only where the docker
// input reads it, data_dir writable, the forward socket's directory (and
// only it) from the host; stopTimeout above shutdown_grace.
func TestECSDaemonTaskDefinition(t *testing.T) {
	td := decodeTaskDefinition(t, filepath.Join(repo, "deploy", "ecs", "task-definition.json"))
	if td.NetworkMode != types.NetworkModeHost || !slices.Equal(td.RequiresCompatibilities, []types.Compatibility{types.CompatibilityEc2}) {
		t.Errorf("networkMode %s, compatibilities %v: a daemon service runs on EC2 with host networking", td.NetworkMode, td.RequiresCompatibilities)
	}
	c, env := agentContainer(t, td)
	cfg := imageConfig(t, env)
	var docker *config.DockerInput
	var fwd *config.ForwardInput
	for _, in := range cfg.Inputs {
		if in.Docker != nil {
			docker = in.Docker
		}
		if in.Forward != nil {
			fwd = in.Forward
		}
	}
	if docker == nil || fwd == nil {
		t.Fatalf("inputs %+v", cfg.Inputs)
	}
	if mp, ok := mountAt(c, docker.Root); !ok || !aws.ToBool(mp.ReadOnly) {
		t.Errorf("docker root %s not mounted read-only", docker.Root)
	}
	if mp, ok := mountAt(c, cfg.DataDir); !ok || aws.ToBool(mp.ReadOnly) {
		t.Errorf("data_dir %s not mounted writable", cfg.DataDir)
	}
	sock := strings.TrimPrefix(fwd.Unix, "unix://")
	if _, ok := mountAt(c, filepath.Dir(sock)); !ok || filepath.Dir(sock) == "/var/run" {
		t.Errorf("forward socket %s: its own directory must be mounted (never all of /var/run)", sock)
	}
	if host, _, err := net.SplitHostPort(fwd.Listen); err != nil || host != "127.0.0.1" {
		t.Errorf("forward listen %q: loopback only", fwd.Listen)
	}
	if st := aws.ToInt32(c.StopTimeout); time.Duration(st)*time.Second <= cfg.ShutdownGrace {
		t.Errorf("stopTimeout %ds not above shutdown_grace %s", st, cfg.ShutdownGrace)
	}
	if !aws.ToBool(c.Essential) || c.MemoryReservation == nil {
		t.Errorf("essential %v memoryReservation %v", c.Essential, c.MemoryReservation)
	}
}

// TestECSFireLensTaskDefinition: deploy/ecs/firelens-task-definition.json,
// an application task whose log router is sluice: FireLens mounts the
// socket directory at /var/run/ in the router, so the forward input
// listens on /var/run/fluent.sock (formats.md §5.2); the application
// containers log with awsfirelens and start after the router.
func TestECSFireLensTaskDefinition(t *testing.T) {
	td := decodeTaskDefinition(t, filepath.Join(repo, "deploy", "ecs", "firelens-task-definition.json"))
	c, env := agentContainer(t, td)
	if c.FirelensConfiguration == nil || (c.FirelensConfiguration.Type != types.FirelensConfigurationTypeFluentd &&
		c.FirelensConfiguration.Type != types.FirelensConfigurationTypeFluentbit) {
		t.Fatalf("router firelensConfiguration %+v", c.FirelensConfiguration)
	}
	cfg := imageConfig(t, env)
	var fwd *config.ForwardInput
	for _, in := range cfg.Inputs {
		if in.Forward != nil {
			fwd = in.Forward
		}
	}
	if fwd == nil || strings.TrimPrefix(fwd.Unix, "unix://") != "/var/run/fluent.sock" {
		t.Fatalf("forward input %+v: FireLens sends to /var/run/fluent.sock", fwd)
	}
	if mp, ok := mountAt(c, cfg.DataDir); !ok || aws.ToBool(mp.ReadOnly) {
		t.Errorf("data_dir %s not on a writable volume", cfg.DataDir)
	}
	apps := 0
	for _, a := range td.ContainerDefinitions {
		if aws.ToString(a.Name) == aws.ToString(c.Name) {
			continue
		}
		apps++
		if a.LogConfiguration == nil || a.LogConfiguration.LogDriver != types.LogDriverAwsfirelens {
			t.Errorf("%s does not log through FireLens", aws.ToString(a.Name))
		}
		if !slices.ContainsFunc(a.DependsOn, func(d types.ContainerDependency) bool {
			return aws.ToString(d.ContainerName) == aws.ToString(c.Name) && d.Condition == types.ContainerConditionStart
		}) {
			t.Errorf("%s does not start after the log router", aws.ToString(a.Name))
		}
	}
	if apps == 0 {
		t.Error("no application container")
	}
}

// TestECSStrictDecodeRejects: an unknown field fails the decoding.
func TestECSStrictDecodeRejects(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"family":"x","containerDefinitions":[{"name":"a","image":"b","mountPoint":[]}]}`))
	dec.DisallowUnknownFields()
	var td ecs.RegisterTaskDefinitionInput
	if err := dec.Decode(&td); err == nil {
		t.Fatal("unknown field mountPoint accepted")
	}
}

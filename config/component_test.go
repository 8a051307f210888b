package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestTypes: the type list is the tagged section fields, in order, and
// each type's New and Options come from its own defaults.
func TestTypes(t *testing.T) {
	var got []string
	for _, ty := range Types() {
		got = append(got, ty.Kind+" "+ty.Name)
		if ty.Doc == "" {
			t.Errorf("%s %s has no doc tag", ty.Kind, ty.Name)
		}
	}
	want := []string{"input docker", "input forward", "input cri", "output forward", "output file", "output stdout", "output s3", "output cloudwatch_logs", "output kinesis", "output firehose", "output elasticsearch", "output kafka"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	for _, ty := range Types() {
		if ty.Name == "docker" {
			if d := ty.New().(*DockerInput); !reflect.DeepEqual(*d, DefaultDockerInput()) {
				t.Errorf("New for docker: %s", spew(d))
			}
		}
	}
	opts := map[string]Option{}
	for _, ty := range Types() {
		for _, o := range ty.Options() {
			opts[ty.Kind+" "+ty.Name+" "+o.Key] = o
		}
	}
	for key, want := range map[string]Option{
		"input docker root":                       {Value: "string", Default: "/var/lib/docker/containers"},
		"input docker max_line_bytes":             {Value: "size", Default: "1MiB"},
		"input docker include_labels":             {Value: "bool", Default: "true"},
		"input docker parse_json":                 {Value: "bool", Default: "false"},
		"input docker poll_interval":              {Value: "duration", Default: "1s"},
		"input forward unix_mode":                 {Value: "file mode", Default: "0660"},
		"input forward tag":                       {Value: "string"},
		"input forward tls.ca_file":               {Value: "string"},
		"input forward security.shared_key":       {Value: "secret"},
		"input forward security.users[].password": {Value: "secret"},
		"output forward servers[].weight":         {Value: "integer", Default: "60"},
		"output forward servers[].standby":        {Value: "bool", Default: "false"},
		"output forward max_retries":              {Value: "integer", Default: "0"},
		"output forward require_ack":              {Value: "bool", Default: "true"},
		"output file path":                        {Value: "string"},
	} {
		want.Key = key[strings.LastIndexByte(key, ' ')+1:]
		if got, ok := opts[key]; !ok || got != want {
			t.Errorf("%s: got %+v (present %v), want %+v", key, got, ok, want)
		}
	}
	b := Options(ptr(DefaultBuffer()))
	if len(b) != 6 || b[0] != (Option{Key: "max_bytes", Value: "size", Default: "1GiB"}) {
		t.Errorf("buffer options: %+v", b)
	}
}

func TestSpec(t *testing.T) {
	d := ptr(DefaultDockerInput())
	in := Input{Type: "docker", Docker: d}
	if in.Spec() != any(d) {
		t.Error("Spec does not return the docker section")
	}
	for _, in := range []Input{{Type: "docker"}, {Type: "kafka"}, {}} {
		if s := in.Spec(); s != nil {
			t.Errorf("%+v: Spec = %#v, want nil", in, s)
		}
	}
	// A type without options may leave its section nil.
	o := Output{Type: "stdout"}
	if _, ok := o.Spec().(*StdoutOutput); !ok {
		t.Errorf("stdout Spec = %#v", o.Spec())
	}
}

func TestKindsOfRejectsBadSection(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a section that is not a spec")
		}
	}()
	kindsOf(reflect.TypeFor[struct {
		X *struct{ A int } `type:"x"`
	}]())
}

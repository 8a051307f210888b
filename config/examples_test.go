package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamplesValidate: every shipped example config (examples/*/agent.yml)
// and the image's default (deploy/agent.yml) parses and validates, with
// the secrets they take from the environment set to placeholders, and
// asks for no risky setting (Warnings).
func TestExamplesValidate(t *testing.T) {
	paths, err := filepath.Glob("../examples/*/agent.yml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	paths = append(paths, "../deploy/agent.yml")
	secrets := map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret",
		"ES_PASSWORD": "example", "KAFKA_PASSWORD": "example",
	}
	lookup := func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseWithEnv(data, p, lookup)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if len(c.Inputs) == 0 || len(c.Outputs) == 0 {
				t.Fatalf("%d inputs, %d outputs", len(c.Inputs), len(c.Outputs))
			}
			if w := c.Warnings(); len(w) > 0 {
				t.Errorf("warnings: %q", w)
			}
		})
	}
}

package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// secretsDoc uses secrets from the environment and literally, next to
// mistakes of every kind, so that every error path runs near them.
const secretsDoc = `inputs:
  - id: f
    type: forward
    unix: /run/f.sock
    security:
      shared_key: ${KEY}
      users:
        - username: alice
          password: ${ALICE}
        - username: alice
          password: literal-PW-9
  - id: g
    type: forward
    listen: "${ALICE}"
    security:
      shared_key: ["${KEY}"]
      users:
        - username: bob
          password: {nested: "${ALICE}"}
        - username: carol
          password: ${UNSET_SECRET}
outputs:
  - id: app
    type: forward
    servers:
      - address: 10.0.0.5:24224
        username: node
        password: ${NODE}
        pasword: ${NODE}
    security:
      shared_key: ${KEY}
      users: [{username: x, password: "${KEY}"}]
`

var secretValues = []string{"KEY-s3cr3t-1", "ALICE-s3cr3t-2", "NODE-s3cr3t-3", "literal-PW-9"}

func secretEnv() func(string) (string, bool) {
	return lookupIn(map[string]string{"KEY": secretValues[0], "ALICE": secretValues[1], "NODE": secretValues[2]})
}

func TestSecretsNotInErrors(t *testing.T) {
	_, err := ParseWithEnv([]byte(secretsDoc), "s.yml", secretEnv())
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, s := range secretValues {
		if strings.Contains(msg, s) {
			t.Errorf("error output contains secret %q:\n%s", s, msg)
		}
	}
	// The secret-related problems are reported, by name only.
	for _, m := range []string{
		`s.yml:10: inputs[0].forward.security.users[1].username: duplicate user "alice"`,
		`s.yml:16: inputs[1].forward.security.shared_key: expected a string, got a list`,
		`s.yml:19: inputs[1].forward.security.users[0].password: expected a string, got a mapping`,
		`s.yml:21: inputs[1].forward.security.users[1].password: environment variable "UNSET_SECRET" is not set`,
		`s.yml:29: outputs[0].forward.servers[0].pasword: unknown field "pasword" (did you mean "password"?)`,
		`outputs[0].forward.security.users: only valid for inputs`,
	} {
		if !strings.Contains(msg, m) {
			t.Errorf("missing %q in\n%s", m, msg)
		}
	}
	// A value from the environment is shown as written, even in a plain
	// field: it may be a secret put in the wrong place.
	if !strings.Contains(msg, `s.yml:14: inputs[1].forward.listen: invalid address "${ALICE}" (want host:port)`) {
		t.Errorf("env value in a plain field: %s", msg)
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	doc := `inputs:
  - id: f
    type: forward
    security:
      shared_key: ${KEY}
      users: [{username: alice, password: "${ALICE}"}, {username: bob, password: literal-PW-9}]
outputs:
  - id: app
    type: forward
    servers: [{address: "10.0.0.5:24224", username: node, password: "${NODE}"}]
    security: {shared_key: "${KEY}"}
`
	c, err := ParseWithEnv([]byte(doc), "ok.yml", secretEnv())
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Inputs[0].Forward.Security.SharedKey) != secretValues[0] ||
		string(c.Outputs[0].Forward.Servers[0].Password) != secretValues[2] {
		t.Fatal("secrets not decoded")
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", c, "key", c.Inputs[0].Forward.Security.SharedKey,
		"sec", *c.Inputs[0].Forward.Security)
	renderings := map[string]string{
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", c),
		"%#v":      fmt.Sprintf("%#v", c),
		"%v value": fmt.Sprintf("%v", *c),
		"%+v security": fmt.Sprintf("%+v %+v", *c.Inputs[0].Forward.Security,
			c.Outputs[0].Forward.Servers),
		"%#v security": fmt.Sprintf("%#v %#v", *c.Inputs[0].Forward.Security,
			c.Outputs[0].Forward.Servers),
		"%s %q %x secret": fmt.Sprintf("%s %q %x", c.Inputs[0].Forward.Security.SharedKey,
			c.Inputs[0].Forward.Security.SharedKey, c.Inputs[0].Forward.Security.SharedKey),
		"Redacted": c.Redacted(),
		"json":     string(js),
		"slog":     logged.String(),
	}
	for name, out := range renderings {
		for _, s := range secretValues {
			if strings.Contains(out, s) {
				t.Errorf("%s shows secret %q:\n%s", name, s, out)
			}
		}
	}
	if n := strings.Count(c.Redacted(), "<secret>"); n != 5 {
		t.Errorf("Redacted shows %d <secret>, want 5:\n%s", n, c.Redacted())
	}
}

// TestRedactedRoundTrip parses Redacted output again: it is a valid config
// equal to the original except that secrets read "<secret>".
func TestRedactedRoundTrip(t *testing.T) {
	for _, f := range []string{"full.good.yml", "example.good.yml", "minimal.good.yml", "anchors.good.yml"} {
		t.Run(f, func(t *testing.T) {
			c := mustParseFile(t, f)
			out := c.Redacted()
			if strings.HasPrefix(out, "#") {
				t.Fatal(out)
			}
			back, err := ParseWithEnv([]byte(out), f, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			redactSecrets(reflect.ValueOf(c))
			clearLines(c)
			clearLines(back)
			if !reflect.DeepEqual(c, back) {
				t.Errorf("round trip differs at %s\nyaml:\n%s", diff(back, c), out)
			}
		})
	}
}

func redactSecrets(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			redactSecrets(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			redactSecrets(v.Field(i))
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			redactSecrets(v.Index(i))
		}
	case reflect.String:
		if v.Type() == reflect.TypeFor[Secret]() && v.String() != "" {
			v.SetString("<secret>")
		}
	}
}

func clearLines(c *Config) {
	for i := range c.Inputs {
		c.Inputs[i].Line = 0
	}
	for i := range c.Outputs {
		c.Outputs[i].Line = 0
	}
	for i := range c.Routes {
		c.Routes[i].Line = 0
	}
	for i := range c.Processors {
		c.Processors[i].Line = 0
	}
}

package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted returns c as YAML in the shape Parse accepts, with every Secret
// shown as "<secret>". It is meant for logs and `validate` output.
func (c *Config) Redacted() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("# cannot render config: %v\n", err)
	}
	return string(out)
}

// MarshalYAML renders an input with its type's keys inline, as in the file.
func (in Input) MarshalYAML() (any, error) {
	common := struct {
		ID   string `yaml:"id"`
		Type string `yaml:"type"`
	}{in.ID, in.Type}
	return inline(common, in.Spec())
}

// MarshalYAML renders an output with its type's keys inline, as in the file.
func (o Output) MarshalYAML() (any, error) {
	common := struct {
		ID       string   `yaml:"id"`
		Type     string   `yaml:"type"`
		Buffer   Buffer   `yaml:"buffer"`
		Delivery Delivery `yaml:"delivery"`
	}{o.ID, o.Type, o.Buffer, o.Delivery}
	return inline(common, o.Spec())
}

// inline encodes common and appends spec's keys (if spec is not nil) to
// the same mapping.
func inline(common, spec any) (*yaml.Node, error) {
	var n yaml.Node
	if err := n.Encode(common); err != nil {
		return nil, err
	}
	if spec != nil {
		var s yaml.Node
		if err := s.Encode(spec); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, s.Content...)
	}
	// unix_mode is read as octal and *_bytes as sizes; write them so.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			continue
		}
		switch {
		case k.Value == "unix_mode":
			if m, err := strconv.ParseUint(v.Value, 10, 32); err == nil {
				v.Value = fmt.Sprintf("0%o", m)
			}
		case strings.HasSuffix(k.Value, "_bytes"):
			if b, err := strconv.ParseInt(v.Value, 10, 64); err == nil {
				v.Value = formatSize(ByteSize(b))
				v.Tag = "!!str"
			}
		}
	}
	return &n, nil
}

// MarshalYAML writes a size with the largest exact binary unit (1GiB).
func (b ByteSize) MarshalYAML() (any, error) { return formatSize(b), nil }

// GoString keeps %#v from printing a Secret's value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalJSON shows "<secret>", like MarshalYAML.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

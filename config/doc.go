// Package config loads, expands, defaults and validates the agent's YAML
// configuration file.
//
// # Invariants
//
//   - Every problem is reported, not just the first: Parse returns Errors, one
//     *Error per problem, each naming the file, the line and the field path
//     (for example "agent.yml:14: outputs[1].buffer.max_bytes: invalid size
//     \"12XB\"").
//   - A YAML syntax error names the line of the problem, not of the
//     mapping or list around it (an unclosed string: the line it starts
//     on), and the line a flow collection starts on when that is earlier;
//     an unquoted ${VAR} inside { } or [ ], whose braces YAML reads as a
//     nested mapping, gets a hint to quote it (see yamlerr.go).
//   - Decoding is strict: unknown keys at any depth, duplicate keys, values of
//     the wrong type and multiple YAML documents are errors.
//   - ${VAR} and ${VAR:-default} are expanded from the environment in scalar
//     values only (never in keys), after YAML parsing, so an environment value
//     can never add YAML structure. $${ is a literal ${. An unset ${VAR}
//     without a default is an error naming the variable. ${VAR:-default}
//     uses the default when VAR is unset or empty.
//   - The value of a Secret never appears in an error, in Redacted, or in
//     fmt output of a Config (%v, %+v, %#v). Messages about any value that
//     came from the environment quote it as written ("${VAR}"), since a
//     secret may sit in the wrong field.
//   - A value that fails to decode is reported once: validation problems
//     at or under its path are dropped.
//   - Defaults are the values documented on the struct fields; the Default*
//     functions (defaults.go and each component type's file) are their one
//     declaration, which the plugins use too. A key present with an explicit value
//     keeps that value (an explicit 0 is not replaced by a default, it is
//     rejected by validation where 0 is invalid); a key with a null value is
//     treated as absent.
//   - Inputs and outputs are polymorphic by "type": their type-specific keys
//     sit inline next to id and type. Field paths in messages name the type
//     as a section, e.g. inputs[0].docker.root, so the reader knows which
//     type's keys were expected.
//   - Route matches are checked with the router's own parser (package
//     internal/tagpattern): a file that validates compiles.
//
// # Component types
//
// Every input and output type is declared once, as a tagged section field
// of Input or Output whose struct holds the type's options, defaults
// (setDefaults) and validation (check); see component.go. Decoding,
// validation, marshalling, Types (printed by `agent types`) and the
// agent's wiring all read those declarations. Only the constructor lives
// elsewhere, in the agent, because the plugins import config.
//
// # Value syntax
//
//   - Durations use Go syntax: 500ms, 5s, 1m30s.
//   - Sizes (the keys of type size) accept plain integers and units:
//     512KiB, 8MiB, 1GiB, 100MB, 10k.
//   - unix_mode is octal, with or without a leading 0 or 0o: 0660, 660, 0o660.
//   - YAML anchors, aliases and merge keys (<<) are supported. Top-level
//     keys starting with "x-" are ignored, so they can hold anchors (as in
//     Docker Compose files).
//   - Any scalar value may hold ${VAR} or ${VAR:-default}, expanded from
//     the environment after parsing (a value can never add YAML
//     structure); $${ is a literal ${. Inside { } or [ ] quote it:
//     {max_bytes: '${MAX_BYTES}'}.
//
// # Known limitations
//
//   - Line numbers of values reached through an alias or merge key are the
//     lines of the anchored original.
//   - A default value inside ${VAR:-default} ends at the first '}' and is not
//     itself expanded.
//   - Validation checks what can be checked from the file alone: it does not
//     probe ports, files or certificates.
package config

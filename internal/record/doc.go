// Package record holds what the docker and forward inputs share to build
// an event: the conversion of a JSON-object log payload into msgpack record
// fields (parse_json), a lookup of a few of its fields without converting
// the rest ({field:KEY} without parse_json), and the tag template.
//
// # Invariants
//
//   - Zero allocations on the hot path. Fields, Keys and a compiled
//     Template keep and reuse their buffers: after warm-up, Fields.Parse,
//     Fields.Find, Fields.Value, AppendText and Template.Render do not
//     allocate, also not for bad input (failure is a bool, not an error).
//     Compile allocates; call it once, at start.
//   - Parse and Find accept exactly the same inputs, and for a kept key
//     Find yields the bytes Parse would (FuzzFind checks it): whether a tag
//     renders never depends on parse_json.
//   - A payload that is not accepted leaves no fields behind; the caller
//     stores the record without them and loses nothing else.
//
// # Accepted JSON
//
// Exactly one JSON object, surrounding whitespace allowed (RFC 8259
// grammar for tokens and numbers), with two leniencies that keep data
// applications write: raw control bytes inside strings and invalid UTF-8
// are passed through unchanged. Escapes are decoded as encoding/json does,
// a lone surrogate becoming U+FFFD. Anything else (trailing bytes, a
// trailing comma, a bad escape, 01, 1., tru) rejects the whole payload.
//
// Of the top-level members, a key in the caller's skip set (the record's
// own keys) is dropped, and so is a key repeating an earlier member: the
// first wins. Keys are compared after unescaping.
//
// # Mapping to msgpack
//
//   - string: str (the shortest str header); object: map; array: array;
//     true/false: bool; null: nil.
//   - number: an integer (no fraction, no exponent) that fits in int64
//     becomes a signed msgpack int, fixint or the narrowest of int8 to
//     int64 that holds it (msgp.AppendInt64); any other number is a float64
//     (one out of float64 range becomes ±Inf, one too small 0).
//
// # Bounds
//
//   - Nesting below the top-level object is limited to MaxDepth (64)
//     containers; a deeper payload is rejected. Scanning recurses once per
//     level, so the stack cost is bounded too.
//   - Repeated keys are dropped while at most 256 members were kept; past
//     that, members are only checked against the skip set. So the check
//     costs at most 256 key compares per member, never quadratic time.
//   - The converted fields take at most about 2.25 times the payload's
//     length (a 3-byte number such as 1e1 becomes a 9-byte float64). The
//     payload's own length is the caller's bound (max_line_bytes,
//     max_message_bytes).
//
// # Tag templates
//
// Compile parses a template such as "docker.{name}.{label:app}" once:
// literal text and the placeholders {name}, {id}, {short_id}, {stream},
// {label:KEY}, {field:KEY}, and {tag} only with the AllowTag flag; with
// the AllowKube flag (the cri input) {namespace}, {pod}, {pod_id} and
// {container} take the place of {name}, {id} and {short_id}, and
// {annotation:KEY} is added (a pod annotation; {label:KEY} is then a pod
// label). Unknown
// placeholders, an unclosed '{' and an unmatched '}' are errors, so a typo
// fails at start, not at the first event. A placeholder may list
// alternatives separated by '|', {label:logging.sluice.dev/type|field:log_type}:
// the first that has a value renders. Render appends the tag to a
// reused buffer, asking the caller's Values for each placeholder; one that
// gets no value renders as "unknown".
//
// # JSON strings
//
// AppendUnescaped, UnescapeByte, Hex4, SkipWS and ScanSpecial are the JSON
// string primitives of the conversion, exported for the docker input's
// json-file line parser so that both decode strings the same way.
package record

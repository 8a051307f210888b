// Package receiver is a Forward protocol server for end-to-end tests and the
// benchmark: it stands in for an aggregator and checks that every generated
// log line arrived.
//
// # Invariants
//
//   - A request's events are recorded in the Tracker BEFORE its
//     {"ack": chunk} is written, so an acknowledged chunk is always counted:
//     the agent may delete what the receiver acked, and the receiver never
//     acks what it has not recorded.
//   - Every event is keyed by (source, sequence number). The key comes from
//     the record's top-level "src" (string) and "seq" (number) fields (the
//     docker input with parse_json), or else from the JSON text in the
//     record's "log" string (`..."src":"c1","seq":42...`), which is what the
//     loggen package writes. An event without a key is counted as Unkeyed.
//   - Per source the Tracker keeps a bitset of the sequence numbers seen, so
//     Missing and Duplicates are exact and memory is one bit per line.
//   - A Server listens on a fixed address: the first Start may bind port 0,
//     every later Start binds the same resolved address, so the agent under
//     test reconnects to a restarted "aggregator" as it would in production.
//     Stop closes the listener and every connection (a dead aggregator; the
//     client sees resets or EOF).
//
// # Decoding
//
// The Server is generic over a Codec, which reads one connection's stream
// and reports events. Wire (this package) decodes with our internal/wire
// codec, zero-copy. Package ibmpeer provides a Codec built on IBM's
// fluent-forward-go protocol package, an independent implementation.
//
// # Known limitations
//
//   - No TLS and no handshake (shared_key): the agent under test must be
//     configured without a security section for its outputs.
//   - Sequence numbers above MaxSeq are counted as Unkeyed (the bitset is
//     bounded).
package receiver

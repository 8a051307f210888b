// Package processors reshapes, tames and re-tags events between an input
// and the router: the top-level processors: list of the config. The
// pipeline runs them in Writer.Add, before routing, on the goroutine of the
// input that adds the event.
//
// Types: add (a static value or the hostname), rename, remove, keep (an
// allow-list), lift (a nested map's members to the top), nest (fields
// under a new map), drop, rewrite_tag, throttle, redact and parse (a
// parser of internal/parse on one string field, default log: per route
// parsing with match; its fields join the record without replacing a key
// it has, a rejected value gains parse_error: <type>, and the parsed time
// stays a field: the event time is the input's). Each processor
// may have a match (tag patterns, as routes) and a when (a condition,
// package internal/cond) that select the events it applies to.
//
// # Invariants
//
//   - Order: processors apply in the order listed, each to the event as
//     the previous ones left it (a when sees the fields an earlier add
//     set). A processor that does not match the tag, or whose when is
//     false, leaves the event as it is. A drop, or a throttle that
//     refuses the event, ends the chain: the event is not routed.
//   - rewrite_tag gives the event a new tag and runs the chain again from
//     its first processor under that tag, as if the event had arrived with
//     it (Fluent Bit's re-emit); routing then uses the final tag. An event
//     is re-tagged at most MaxRewrites times: a further rewrite is skipped
//     and counted in sluice_processor_rewrite_loops_total{processor}, and
//     the chain goes on with the next processor under the current tag. A
//     rewrite to the tag the event already has does not restart the chain.
//   - Cost: which processors can apply to a tag is decided once per tag
//     (Chain.Select; the Writer caches it with its per-tag state), so for
//     a tag no processor matches the chain costs nothing. When processors
//     apply, the record is decoded once into a list of field views and
//     encoded once, after the last change, into buffers the Runner reuses
//     (a when after a change encodes the record then, so that it sees the
//     change). Conditions, drop, throttle and rewrite_tag read the record
//     in place. In steady state a Runner does not allocate, except for
//     user regexes of redact (package regexp's FindAllIndex).
//   - Counting: every event a processor removes is counted:
//     sluice_processor_dropped_total{processor} for drop and throttle,
//     and per throttle key sluice_processor_throttled_total{processor,key}
//     (at most MaxThrottleSeries keys per processor get their own series;
//     the rest share key="_other"). An event a throttle keeps by sampling
//     is counted in sluice_processor_sampled_total{processor}.
//   - Ownership: a Chain is immutable, except for the throttle state,
//     which the Chain owns and shares between every Runner (every Writer,
//     hence every goroutine of every input using the Router) under one
//     mutex per throttle processor: a container read by several
//     goroutines, or a tag used by several inputs, has one budget. A
//     Runner is owned by one goroutine (one Writer) and is not safe for
//     concurrent use; the tag and record Run returns are valid until its
//     next Run.
//   - Field operations (add, rename, remove, keep, lift, nest) and redact
//     work on top-level keys (lift and nest name a top-level map); a
//     condition, the throttle key and {field:PATH} of rewrite_tag may use
//     dotted paths. A record that is not a msgpack map is passed through
//     unchanged by the field operations.
//
// # Known limitations
//
//   - Throttle state lives in the Router's Chain: a reload that builds a
//     new Router starts every budget afresh, and so does a restart. A
//     file input that re-reads lines after a restart counts them again.
//   - The throttle clock is the agent's (arrival), not the event time: a
//     backlog read at start-up is throttled as if it arrived at that rate.
package processors

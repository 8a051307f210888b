// Package ibmtest holds only tests: it drives the forward input with
// github.com/IBM/fluent-forward-go v0.4.0, an independent Forward client
// (all four modes, gzip, acks, TLS, the shared_key handshake). It is
// separate from loggertest because both client libraries register msgp
// extension 0 and cannot be linked into one test binary.
package ibmtest

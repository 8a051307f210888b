// Package loggertest holds only tests: it drives the forward input with
// fluent-logger-golang v1.10.2, the client Docker's fluentd log driver uses
// (Message mode, one event per write, optional ack per event, EventTime with
// sub-second precision, unix socket or TCP or TLS). It is a separate package
// because fluent-logger-golang and IBM/fluent-forward-go both register msgp
// extension 0 and cannot be linked into one test binary.
package loggertest

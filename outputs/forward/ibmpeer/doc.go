// Package ibmpeer holds only tests: the forward output sending to a server
// built on IBM/fluent-forward-go's protocol package, an independent decoder
// of what our client writes. It is a separate package because
// fluent-forward-go and fluent-logger-golang both register msgpack
// extension 0 and cannot be linked into one binary.
package ibmpeer

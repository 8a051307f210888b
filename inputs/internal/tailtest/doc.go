// Package tailtest holds test support shared by the tests of the tail
// engine and of the inputs built on it: a recording fake pipeline.Queue,
// a router over it, and small file, wait and comparison helpers. It is
// imported only by tests.
package tailtest

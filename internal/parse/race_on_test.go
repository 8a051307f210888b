//go:build race

package parse

// raceEnabled: under the race detector sync.Pool drops items on purpose,
// so package regexp allocates its matchers again and allocation counts
// of the regex parser mean nothing.
const raceEnabled = true

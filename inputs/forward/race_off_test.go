//go:build !race

package forward

// raceOn: the race detector slows everything tenfold; load tests skip.
const raceOn = false

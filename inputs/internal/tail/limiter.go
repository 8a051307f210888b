package tail

import "time"

// logEvery is the least time between two messages of one kind.
const logEvery = 10 * time.Second

// limiter rate-limits one kind of log message. It is owned by one
// goroutine.
type limiter struct {
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many messages were suppressed
// since the last one.
func (l *limiter) allow(now time.Time) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

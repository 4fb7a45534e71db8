// Package ratelog limits how often a kind of event is logged, so that a flood
// of bad requests or failing writes produces one line per interval, not one
// line per event.
package ratelog

import (
	"sync/atomic"
	"time"
)

// Limiter allows one event per interval and counts the ones it suppressed.
// The zero value is not usable; use New. It is safe for concurrent use and
// costs two atomic operations per suppressed event.
type Limiter struct {
	every      time.Duration
	next       atomic.Int64 // unix nanoseconds before which events are suppressed
	suppressed atomic.Int64
}

// New returns a Limiter that allows one event per interval.
func New(every time.Duration) *Limiter {
	return &Limiter{every: every}
}

// Allow reports whether the caller may log this event now. When it may, it
// also returns how many events were suppressed since the last allowed one, so
// the line can say so.
func (l *Limiter) Allow() (ok bool, suppressed int64) {
	now := time.Now().UnixNano()
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(l.every)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

package ingest

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// room counts the free places of the task queue, so that a request can
// reserve places for all of its tasks before it queues the first: either
// every task of a request is queued or none is, even when the request gives
// up waiting. It is a weighted semaphore: first come, first served once
// anyone waits, so that a large request is not starved by a stream of small
// ones. A second room counts body bytes (MaxQueueBytes) the same way; those
// are given back when a request's batch is released, not task by task.
//
// The dispatcher gives a place back for every task it takes off the queue.
// Since the places reserved and not yet given back never exceed the
// queue's capacity, a reserved send to the queue never blocks.
type room struct {
	free    atomic.Int64 // places neither reserved nor occupied
	waiters atomic.Int32 // len(queue), readable without mu

	mu    sync.Mutex
	queue []*roomWaiter // FIFO of reservations waiting for places
}

type roomWaiter struct {
	n       int64
	since   time.Time
	granted chan struct{} // closed when the places are the waiter's
}

// errRoomTimeout is returned by reserve when the wait ran out.
var errRoomTimeout = errors.New("no room in the queue")

func newRoom(places int) *room { return newRoom64(int64(places)) }

// newRoom64 is newRoom for units counted in int64: bytes.
func newRoom64(units int64) *room {
	r := &room{}
	r.free.Store(units)
	return r
}

// tryReserve takes n places if they are free and nobody waits.
func (r *room) tryReserve(n int64) bool {
	if r.waiters.Load() > 0 {
		return false // first come, first served
	}
	for {
		f := r.free.Load()
		if f < n {
			return false
		}
		if r.free.CompareAndSwap(f, f-n) {
			return true
		}
	}
}

// reserve takes n places, waiting for them at most timeout (forever when
// timeout is 0) or until stop is closed. n must not exceed the capacity.
func (r *room) reserve(n int64, timeout time.Duration, stop <-chan struct{}) error {
	if r.tryReserve(n) {
		return nil
	}
	w := &roomWaiter{n: n, since: time.Now(), granted: make(chan struct{})}
	r.mu.Lock()
	r.queue = append(r.queue, w)
	r.waiters.Add(1)
	r.grantLocked() // places freed before we were queued
	r.mu.Unlock()

	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-w.granted:
		return nil
	case <-expired:
	case <-stop:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-w.granted: // granted while we gave up: keep the places
		return nil
	default:
	}
	for i, q := range r.queue {
		if q == w {
			r.queue = append(r.queue[:i], r.queue[i+1:]...)
			r.waiters.Add(-1)
			break
		}
	}
	r.grantLocked() // the head may have changed
	return errRoomTimeout
}

// release gives n places back.
func (r *room) release(n int64) {
	if n == 0 {
		return
	}
	r.free.Add(n)
	// A waiter counts itself before it checks the free places, so either
	// it sees these places or this sees it.
	if r.waiters.Load() > 0 {
		r.mu.Lock()
		r.grantLocked()
		r.mu.Unlock()
	}
}

// grantLocked hands free places to waiters in arrival order.
func (r *room) grantLocked() {
	for len(r.queue) > 0 {
		w := r.queue[0]
		f := r.free.Load()
		if f < w.n || !r.free.CompareAndSwap(f, f-w.n) {
			if f < w.n {
				return
			}
			continue // a concurrent tryReserve changed free; look again
		}
		close(w.granted)
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.waiters.Add(-1)
	}
}

// longestWait returns how long the oldest waiter has waited, or 0.
func (r *room) longestWait(now time.Time) time.Duration {
	if r.waiters.Load() == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		return 0
	}
	return now.Sub(r.queue[0].since)
}

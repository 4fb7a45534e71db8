package ingest

import (
	"testing"
	"time"
)

// A shorter wait that ended while a longer one still counted must still
// count once the longer one has aged out of the window.
func TestRecentQueueWaitKeepsEveryRecentWait(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, 1, 1, &recordingSink{})
	defer shutdown(t, d)
	// Slots of 1 s, the default window's.
	now := time.Now().Unix()
	d.recentWaits[(now-5)%5] = waitBucket{slot: now - 5, longest: 3 * time.Second} // ended 5 s ago: counts
	d.recentWaits[(now-2)%5] = waitBucket{slot: now - 2, longest: time.Second}
	if got := d.RecentQueueWait(); got != 3*time.Second {
		t.Errorf("RecentQueueWait() = %v, want the 3s that ended 5 s ago", got)
	}
	d.recentWaits[(now-5)%5] = waitBucket{slot: now - 6, longest: 3 * time.Second} // aged out
	if got := d.RecentQueueWait(); got != time.Second {
		t.Errorf("RecentQueueWait() = %v, want the 1s that ended 2 s ago", got)
	}
	d.noteWait(2 * time.Second)
	d.noteWait(time.Millisecond)
	if got := d.RecentQueueWait(); got != 2*time.Second {
		t.Errorf("RecentQueueWait() = %v, want the 2s that just ended", got)
	}
}

// Reservations are served in arrival order once anyone waits: a large
// request is not starved by small ones that would fit.
func TestRoomFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	r := newRoom(10)
	if !r.tryReserve(8) {
		t.Fatal("tryReserve(8) of 10 free failed")
	}
	big := make(chan error, 1)
	go func() { big <- r.reserve(6, 0, nil) }() // needs 6, 2 free: waits
	waitFor(t, "the large reservation to wait", func() bool { return r.waiters.Load() == 1 })
	if r.tryReserve(1) {
		t.Fatal("a small reservation went ahead of a waiting large one")
	}
	small := make(chan error, 1)
	go func() { small <- r.reserve(1, 0, nil) }()
	waitFor(t, "the small reservation to queue behind", func() bool { return r.waiters.Load() == 2 })
	r.release(3) // 5 free: not enough for the head (6), so nobody goes
	select {
	case <-small:
		t.Fatal("the small reservation was granted before the large one ahead of it")
	case <-time.After(20 * time.Millisecond):
	}
	r.release(2) // 7 free: the head takes 6, then the small one 1
	if err := <-big; err != nil {
		t.Fatalf("large reserve() = %v", err)
	}
	if err := <-small; err != nil {
		t.Fatalf("small reserve() = %v", err)
	}
	if got := r.free.Load(); got != 0 {
		t.Errorf("free = %d after all grants, want 0", got)
	}
}

// A reservation that times out takes nothing, and stops blocking those
// behind it.
func TestRoomTimeoutTakesNothing(t *testing.T) {
	t.Parallel()
	r := newRoom(4)
	r.tryReserve(3)
	behind := make(chan error, 1)
	if err := r.reserve(4, 10*time.Millisecond, nil); err != errRoomTimeout {
		t.Fatalf("reserve(4) with 1 free = %v, want errRoomTimeout", err)
	}
	go func() { behind <- r.reserve(1, 0, nil) }()
	if err := <-behind; err != nil {
		t.Fatalf("reserve(1) after the timed-out one = %v", err)
	}
	if got := r.free.Load(); got != 0 {
		t.Errorf("free = %d, want 0 (3 + 1 reserved, the timed-out 4 took nothing)", got)
	}
	if got := r.longestWait(time.Now()); got != 0 {
		t.Errorf("longestWait() = %v with nobody waiting, want 0", got)
	}
}

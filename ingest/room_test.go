package ingest

import (
	"testing"
	"time"
)

// A shorter wait that ended while a longer one still counted must still
// count once the longer one has aged out of the window.
func TestRecentQueueWaitKeepsEveryRecentWait(t *testing.T) {
	d := newDispatcher(t, 1, 1, &recordingSink{})
	defer shutdown(t, d)
	now := time.Now().Unix()
	d.recentWaits[(now-5)%5] = waitBucket{second: now - 5, longest: 3 * time.Second} // ended 5 s ago: counts
	d.recentWaits[(now-2)%5] = waitBucket{second: now - 2, longest: time.Second}
	if got := d.RecentQueueWait(); got != 3*time.Second {
		t.Errorf("RecentQueueWait() = %v, want the 3s that ended 5 s ago", got)
	}
	d.recentWaits[(now-5)%5] = waitBucket{second: now - 6, longest: 3 * time.Second} // aged out
	if got := d.RecentQueueWait(); got != time.Second {
		t.Errorf("RecentQueueWait() = %v, want the 1s that ended 2 s ago", got)
	}
	d.noteWait(2 * time.Second)
	d.noteWait(time.Millisecond)
	if got := d.RecentQueueWait(); got != 2*time.Second {
		t.Errorf("RecentQueueWait() = %v, want the 2s that just ended", got)
	}
}

package ratelog

import (
	"sync"
	"testing"
	"time"
)

func TestAllowOncePerInterval(t *testing.T) {
	l := New(time.Hour)
	ok, suppressed := l.Allow()
	if !ok || suppressed != 0 {
		t.Fatalf("first Allow() = %v, %d; want true, 0", ok, suppressed)
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow(); ok {
			t.Fatalf("Allow() #%d within the interval = true; want false", i+2)
		}
	}
	// Open the interval again without waiting for it.
	l.next.Store(0)
	ok, suppressed = l.Allow()
	if !ok || suppressed != 5 {
		t.Fatalf("Allow() after the interval = %v, %d; want true, 5", ok, suppressed)
	}
}

func TestAllowConcurrentAllowsExactlyOne(t *testing.T) {
	l := New(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Allow(); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("allowed = %d; want 1", allowed)
	}
	if got := l.suppressed.Load(); got != 31 {
		t.Fatalf("suppressed = %d; want 31", got)
	}
}

//go:build !race

package ingest

import (
	"testing"
	"time"
)

// TestSubmitAndWaitAllocations guards the allocation budget of an
// ACK=persisted request after decoding: a pooled batch submitted with
// SubmitAndWait, stored by the workers, the wait's timer and the batch back
// in their pools. At most 2 per request, whatever its number of parcels.
// Not under the race detector, whose sync.Pool drops items at random.
func TestSubmitAndWaitAllocations(t *testing.T) {
	d := newDispatcher(t, 64, 4, discardSink{})
	defer shutdown(t, d)
	body := referencePayload()
	now := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		b := AcquireBatch()
		if err := b.Decode(body); err != nil {
			t.Fatal(err)
		}
		if err := d.SubmitAndWait(now, b, 10*time.Second); err != nil {
			t.Fatalf("SubmitAndWait() = %v", err)
		}
	})
	if allocs > 2 {
		t.Errorf("SubmitAndWait allocates %.1f times per request; want at most 2", allocs)
	}
	t.Logf("%.1f allocations per request", allocs)
}

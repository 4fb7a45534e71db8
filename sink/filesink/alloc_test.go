//go:build !race

package filesink

import (
	"context"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

// Store allocates nothing in the steady state: the record is encoded into
// the group's buffer, and the groups' buffers and task slices are reused.
func TestStoreAllocations(t *testing.T) {
	s := newSink(t, Config{FsyncInterval: DefaultFsyncInterval})
	p := ingest.Parcel{ID: "1", Time: "2017-01-01T00:00:01Z", Data: "abc"}
	task := ingest.NewTask(&p, time.Now(), 1, func(error) {})
	ctx := context.Background()
	for range 10000 { // grow both groups' task slices first
		if err := s.Store(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := s.Store(ctx, task); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.01 {
		t.Errorf("Store allocates %.2f times per parcel; want 0", allocs)
	}
}

//go:build !race

package kafkasink

import (
	"context"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/sink"
)

// Turning a task into a record allocates nothing in the steady state: the
// entry, its buffer and the encoder are recycled.
func TestNewEntryAllocations(t *testing.T) {
	s := &Sink{cfg: Config{Topic: "t"}, life: context.Background()}
	p := ingest.Parcel{ID: "7", Time: "2017-01-01T00:00:07Z", Data: "abc"}
	task := ingest.NewTask(&p, time.Now(), 1, func(error) {})
	if allocs := testing.AllocsPerRun(1000, func() {
		enc := encoders.Get().(*sink.RecordEncoder)
		putEntry(s.newEntry(task, enc))
		encoders.Put(enc)
	}); allocs > 0 {
		t.Errorf("newEntry allocates %v times per record; want 0", allocs)
	}
}

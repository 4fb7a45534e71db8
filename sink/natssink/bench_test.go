package natssink

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

// BenchmarkStore measures a parcel's way from Store to JetStream's
// acknowledgement against an embedded single server with file storage.
// The server runs in the test process, so its allocations are counted with
// the sink's, as is NewTask's batch: the figure bounds the sink's cost, it
// does not isolate it.
func BenchmarkStore(b *testing.B) {
	srv := runServer(b, -1, b.TempDir())
	s := newSink(b, testConfig(srv.ClientURL()))
	p := ingest.Parcel{ID: "bench-parcel", Time: "2017-01-01T00:00:01Z", Data: "a payload of some forty bytes, or so..."}
	var done sync.WaitGroup
	finish := func(err error) {
		if err != nil {
			b.Error(err)
		}
		done.Done()
	}
	ctx := context.Background()
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		done.Add(1)
		if err := s.Store(ctx, ingest.NewTask(&p, time.Now(), seq, finish)); err != nil {
			b.Fatal(err)
		}
	}
	done.Wait()
}

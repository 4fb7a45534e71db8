package filesink

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

// BenchmarkStore measures a parcel's way through the sink: Store by a
// worker, then the writer's write (and fdatasync, when durable) and Finish.
// The benchmark waits for the last Finish, so writing is included.
func BenchmarkStore(b *testing.B) {
	for _, durable := range []bool{false, true} {
		b.Run(fmt.Sprintf("durable=%v", durable), func(b *testing.B) {
			s, err := New(Config{Dir: b.TempDir(), Durable: durable, FsyncInterval: DefaultFsyncInterval})
			if err != nil {
				b.Fatal(err)
			}
			var finished atomic.Int64
			p := ingest.Parcel{ID: "1", Time: "2017-01-01T00:00:01Z", Data: "abc"}
			task := ingest.NewTask(&p, time.Now(), 1, func(error) { finished.Add(1) })
			ctx := context.Background()
			b.ReportAllocs()
			n := int64(0)
			for b.Loop() {
				if err := s.Store(ctx, task); err != nil {
					b.Fatal(err)
				}
				n++
			}
			for finished.Load() < n {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(n)/float64(max(st.Writes, 1)), "parcels/write")
			if err := s.Close(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

package kafkasink

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fastingest/fastingest/ingest"
)

// BenchmarkStore measures a parcel's way from Store to the brokers'
// acknowledgement, for each codec, against a 3-broker kfake cluster that
// discards what it is sent. The cluster runs in the test process, so its
// CPU and allocations are counted with the sink's, as is NewTask's batch:
// the figure bounds the sink's cost, it does not isolate it.
func BenchmarkStore(b *testing.B) {
	for _, codec := range []string{"zstd", "lz4", "none"} {
		b.Run(codec, func(b *testing.B) {
			c := newCluster(b, 3, kfake.SeedTopics(6, testTopic), kfake.BlackholeProduce())
			cfg := testConfig(c)
			cfg.Compression = codec
			s := newSink(b, cfg)
			waitHealthy(b, s)
			ps := make([]ingest.Parcel, 1024)
			for i := range ps {
				ps[i] = ingest.Parcel{ID: "bench-" + strconv.Itoa(i), Time: "2017-01-01T00:00:01Z", Data: "abc"}
			}
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
				if err := s.Store(ctx, ingest.NewTask(&ps[seq%1024], time.Now(), seq, finish)); err != nil {
					b.Fatal(err)
				}
			}
			done.Wait()
		})
	}
}

package ingest

import (
	"io"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/fastingest/fastingest/internal/promtext"
)

// sinkLatencySample: one task in this many has its sink latency measured.
// Two clock reads per task would cost about 3 % of a request on the null
// sink; a sample of one in 16 keeps the histogram's shape at a fraction of
// that.
const sinkLatencySample = 16

// epoch is the origin of monotonic(): a fixed point, set once.
var epoch = time.Now()

// monotonic returns nanoseconds since epoch on the monotonic clock, never 0
// in practice.
func monotonic() int64 { return int64(time.Since(epoch)) + 1 }

// latencyBuckets: 100 µs to 10 s.
var latencyBuckets = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// registerMetrics creates the dispatcher's histograms in set (a private
// set when nil) and has set write the figures of one Stats snapshot per
// scrape, so that accepted = completed + failed + in flight holds in every
// scrape, not only on average.
func (d *Dispatcher) registerMetrics(set *metrics.Set) {
	if set == nil {
		set = metrics.NewSet()
	}
	d.queueWait = promtext.NewHistogram("fastingest_queue_wait_seconds", "", latencyBuckets...)
	d.sinkLatency = promtext.NewHistogram("fastingest_sink_latency_seconds", "", latencyBuckets...)
	set.RegisterMetricsWriter(func(w io.Writer) {
		d.queueWait.WriteFamily(w, "Time each request waited for room in the queue.")
		d.sinkLatency.WriteFamily(w, "Store called to parcel finished, one parcel in 16.")
		st := d.Stats()
		promtext.Counter(w, "fastingest_parcels_accepted_total", "Parcels of accepted requests.", st.Accepted)
		promtext.Counter(w, "fastingest_parcels_completed_total", "Parcels the sink stored.", st.Completed)
		promtext.Counter(w, "fastingest_parcels_failed_total", "Parcels the sink could not store.", st.Failed)
		promtext.Gauge(w, "fastingest_parcels_in_flight", "Accepted parcels neither completed nor failed: accepted - completed - failed in this scrape.", st.InFlight())
		promtext.Gauge(w, "fastingest_queue_length", "Tasks waiting in the global queue.", uint64(st.Queued))
		promtext.Gauge(w, "fastingest_queue_capacity", "Capacity of the global queue (MAX_QUEUE).", uint64(st.QueueCap))
		var waiting int64
		for _, sh := range d.shards {
			waiting += int64(sh.room.waiters.Load())
		}
		if d.bodyRoom != nil {
			waiting += int64(d.bodyRoom.waiters.Load())
		}
		promtext.Gauge(w, "fastingest_requests_waiting", "Requests waiting for queue room: body bytes (MAX_QUEUE_BYTES) or places (MAX_QUEUE).", uint64(waiting))
		if d.bodyRoom != nil {
			held := d.maxBytes - d.bodyRoom.free.Load()
			promtext.Gauge(w, "fastingest_queue_body_bytes", "Body bytes reserved by the queue's requests, from before their body is copied until their parcels are stored.", uint64(held))
			promtext.Gauge(w, "fastingest_queue_body_bytes_capacity", "Most body bytes the queue's requests may hold (MAX_QUEUE_BYTES).", uint64(d.maxBytes))
		}
		promtext.Gauge(w, "fastingest_workers_busy", "Workers on a task.", uint64(st.BusyWorkers))
		promtext.Gauge(w, "fastingest_workers", "Workers (MAX_WORKERS).", uint64(st.Workers))
	})
}

package natssink

import (
	"bytes"
	"testing"
	"time"

	"github.com/fastingest/fastingest/internal/testutil"
)

// metricsAfterFifty returns what the sink writes to /metrics once 50
// parcels are stored and acknowledged.
func metricsAfterFifty(t *testing.T) string {
	t.Helper()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))
	d := newDispatcher(t, s)
	submit(t, d, parcels("m", 50), 10, make(map[string]string))
	// The acknowledged count rises before the parcel's slot is given back.
	waitFor(t, 10*time.Second, "50 parcels acknowledged and none held", func() bool {
		return s.Stats().Acknowledged == 50 && len(s.slots) == 0
	})
	var b bytes.Buffer
	s.WriteMetrics(&b)
	shutdownDispatcher(t, d)
	return b.String()
}

// TestWriteMetrics: after 50 parcels are stored, the sink's families, each
// described and typed, count what happened: 50 published and acknowledged,
// none pending, ready, every acknowledgement in the latency histogram.
// TestWriteMetricsPrometheus (e2e) parses them with Prometheus' parser and
// promlint.
func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	text := metricsAfterFifty(t)
	testutil.Families(t, text, []testutil.Want{
		{Name: "fastingest_nats_published_total", Type: "counter", Value: 50},
		{Name: "fastingest_nats_acknowledged_total", Type: "counter", Value: 50},
		{Name: "fastingest_nats_retried_total", Type: "counter", Value: 0},
		{Name: "fastingest_nats_abandoned_total", Type: "counter", Value: 0},
		{Name: "fastingest_nats_pending", Type: "gauge", Value: 0},
		{Name: "fastingest_nats_pending_capacity", Type: "gauge", Value: float64(DefaultMaxPending)},
		{Name: "fastingest_nats_ready", Type: "gauge", Value: 1},
		{Name: "fastingest_nats_ack_latency_seconds", Type: "histogram", Value: 50},
	}...)
	if n := testutil.Described(t, text); n != 8 {
		t.Errorf("families = %d; want 8", n)
	}
}

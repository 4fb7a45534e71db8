package kafkasink

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
)

// metricsAfterNine returns what the sink writes to /metrics once 9 parcels
// are stored.
func metricsAfterNine(t *testing.T) string {
	t.Helper()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic))
	s := newSink(t, testConfig(c))
	d := newDispatcher(t, s)
	if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels("m", 9)), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	s.WriteMetrics(&b)
	return b.String()
}

// The sink's six families, each described and typed, with the sink's
// figures. TestWriteMetricsPrometheus (e2e) parses them with Prometheus'
// parser and promlint.
func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	text := metricsAfterNine(t)
	testutil.Families(t, text, []testutil.Want{
		{Name: "fastingest_kafka_records_produced_total", Type: "counter", Value: 9},
		{Name: "fastingest_kafka_produce_errors_total", Type: "counter", Value: 0},
		{Name: "fastingest_kafka_buffered_records", Type: "gauge", Value: 0},
		{Name: "fastingest_kafka_buffered_bytes", Type: "gauge", Value: 0},
		{Name: "fastingest_kafka_ready", Type: "gauge", Value: 1},
		{Name: "fastingest_kafka_produce_latency_seconds", Type: "histogram", Value: 9},
	}...)
	if n := testutil.Described(t, text); n != 6 {
		t.Errorf("families = %d; want 6", n)
	}
}

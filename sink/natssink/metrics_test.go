package natssink

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestWriteMetrics: after 50 parcels are stored, the sink's metrics parse
// as the Prometheus text format, pass promlint, and count what happened:
// 50 published and acknowledged, none pending, ready, every acknowledgement
// in the latency histogram.
func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))
	d := newDispatcher(t, s)
	submit(t, d, parcels("m", 50), 10, make(map[string]string))
	waitFor(t, 10*time.Second, "50 parcels acknowledged", func() bool { return s.Stats().Acknowledged == 50 })

	var b bytes.Buffer
	s.WriteMetrics(&b)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("parsing the metrics: %v\n%s", err, b.String())
	}
	problems, err := promlint.New(bytes.NewReader(b.Bytes())).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}
	value := func(name string) float64 {
		f, ok := families[name]
		if !ok || len(f.Metric) != 1 {
			t.Fatalf("no single series %s in\n%s", name, b.String())
		}
		m := f.Metric[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		default:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	for name, want := range map[string]float64{
		"fastingest_nats_published_total":     50,
		"fastingest_nats_acknowledged_total":  50,
		"fastingest_nats_retried_total":       0,
		"fastingest_nats_abandoned_total":     0,
		"fastingest_nats_pending":             0,
		"fastingest_nats_pending_capacity":    float64(DefaultMaxPending),
		"fastingest_nats_ready":               1,
		"fastingest_nats_ack_latency_seconds": 50,
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	shutdownDispatcher(t, d)
}

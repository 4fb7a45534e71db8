package kafkasink

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fastingest/fastingest/ingest"
)

// The sink's families parse with Prometheus' own parser, each typed and
// described, promlint finds nothing, and the figures are the sink's.
func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic))
	s := newSink(t, testConfig(c))
	d := newDispatcher(t, s)
	if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels("m", 9)), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	s.WriteMetrics(&b)
	text := b.String()
	if problems, err := promlint.New(strings.NewReader(text)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v\n%s", problems, err, text)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus' parser: %v\n%s", err, text)
	}
	for name, want := range map[string]struct {
		typ   dto.MetricType
		value float64
	}{
		"fastingest_kafka_records_produced_total":  {dto.MetricType_COUNTER, 9},
		"fastingest_kafka_produce_errors_total":    {dto.MetricType_COUNTER, 0},
		"fastingest_kafka_buffered_records":        {dto.MetricType_GAUGE, 0},
		"fastingest_kafka_buffered_bytes":          {dto.MetricType_GAUGE, 0},
		"fastingest_kafka_ready":                   {dto.MetricType_GAUGE, 1},
		"fastingest_kafka_produce_latency_seconds": {dto.MetricType_HISTOGRAM, 9},
	} {
		f := families[name]
		if f == nil || f.GetType() != want.typ || f.GetHelp() == "" || len(f.Metric) != 1 {
			t.Errorf("family %s = %v; want one %v metric with help", name, f, want.typ)
			continue
		}
		m := f.Metric[0]
		var got float64
		switch want.typ {
		case dto.MetricType_COUNTER:
			got = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			got = m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			got = float64(m.GetHistogram().GetSampleCount())
		}
		if got != want.value {
			t.Errorf("%s = %v; want %v", name, got, want.value)
		}
	}
	if len(families) != 6 {
		t.Errorf("families = %d; want 6", len(families))
	}
}

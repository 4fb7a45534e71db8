//go:build e2e

package kafkasink

import (
	"testing"

	"github.com/fastingest/fastingest/internal/testutil/promtest"
)

// The sink's six families parse with Prometheus' own parser, one series
// each, and promlint finds nothing (TestWriteMetrics checks the figures).
func TestWriteMetricsPrometheus(t *testing.T) {
	t.Parallel()
	families := promtest.Check(t, metricsAfterNine(t))
	for name, f := range families {
		if len(f.Metric) != 1 {
			t.Errorf("family %s has %d series; want 1", name, len(f.Metric))
		}
	}
	if len(families) != 6 {
		t.Errorf("families = %d; want 6", len(families))
	}
}

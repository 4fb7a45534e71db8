//go:build e2e

package natssink

import (
	"testing"

	"github.com/fastingest/fastingest/internal/testutil/promtest"
)

// The sink's families parse with Prometheus' own parser and promlint finds
// nothing (TestWriteMetrics checks the figures).
func TestWriteMetricsPrometheus(t *testing.T) {
	t.Parallel()
	promtest.Check(t, metricsAfterFifty(t))
}

//go:build e2e

package s3ship

import (
	"testing"

	"github.com/fastingest/fastingest/internal/testutil/promtest"
)

// The shipper's metrics parse with Prometheus' own parser and promlint
// finds nothing to remark.
func TestMetricsPrometheus(t *testing.T) {
	t.Parallel()
	promtest.Check(t, shipperMetrics(t))
}

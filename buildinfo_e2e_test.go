//go:build e2e

package main

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/fastingest/fastingest/internal/testutil/promtest"
)

// TestBuildInfoMetricParses: fastingest_build_info, with a version that
// needs escaping, is valid and lint-free for Prometheus' own parser and
// promlint (TestBuildInfo checks the exact text).
func TestBuildInfoMetricParses(t *testing.T) {
	b := buildInfo{Version: `v1"\` + "\n", Revision: "abc123", Modified: true, GoVersion: "go1.26.8"}
	if f := promtest.Check(t, b.metric())["fastingest_build_info"]; f.GetType() != dto.MetricType_GAUGE {
		t.Errorf("fastingest_build_info = %v; want a gauge", f)
	}
}

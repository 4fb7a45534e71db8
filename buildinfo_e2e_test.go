//go:build e2e

package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestBuildInfoMetricParses: fastingest_build_info, with a version that
// needs escaping, is valid and lint-free for Prometheus' own parser and
// promlint (TestBuildInfo checks the exact text).
func TestBuildInfoMetricParses(t *testing.T) {
	b := buildInfo{Version: `v1"\` + "\n", Revision: "abc123", Modified: true, GoVersion: "go1.26.8"}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(b.metric()))
	if f := families["fastingest_build_info"]; err != nil || f.GetType() != dto.MetricType_GAUGE || f.GetHelp() == "" {
		t.Errorf("Prometheus' parser: %v, %v", err, f)
	}
	if problems, err := promlint.New(strings.NewReader(b.metric())).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

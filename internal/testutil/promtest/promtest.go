// Package promtest checks metrics in the Prometheus text format with
// Prometheus' own parser and promlint, for the e2e tests only: those
// packages, with protobuf, would make every test binary that links them
// slower to build on each go test ./..., where testutil.Family and
// testutil.Described read the same text line by line.
package promtest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Check parses text with Prometheus' parser, fails the test on a parse
// error, on a family without HELP and on anything promlint remarks, and
// returns the families.
func Check(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus' parser: %v\n%s", err, text)
	}
	for name, f := range families {
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}
	if problems, err := promlint.New(strings.NewReader(text)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v\n%s", err, problems, text)
	}
	return families
}

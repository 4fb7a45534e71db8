package testutil

import (
	"strconv"
	"strings"
	"testing"
)

// The sinks' fast tests read the metrics they write with Family and
// Described, line by line. Their e2e tests (metrics_e2e_test.go) run
// Prometheus' own parser and promlint over the same text: those packages,
// with protobuf, made each sink's test binary slower to link on every
// go test ./....

// Family checks that text, metrics in the Prometheus text format, holds
// the family name, described by a HELP line and typed typ ("counter",
// "gauge", "histogram") by a TYPE line, with one series, and returns that
// series' value: for a histogram, its _count.
func Family(t testing.TB, text, name, typ string) float64 {
	t.Helper()
	sample := name
	if typ == "histogram" {
		sample = name + "_count"
	}
	var described, typed bool
	var value float64
	series := 0
	for line := range strings.SplitSeq(text, "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "+name+" "):
			described = true
		case line == "# TYPE "+name+" "+typ:
			typed = true
		case strings.HasPrefix(line, sample+" ") || strings.HasPrefix(line, sample+"{"):
			series++
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Errorf("%s: %q has no value: %v", name, line, err)
			}
			value = v
		}
	}
	if !described || !typed || series != 1 {
		t.Errorf("family %s: HELP %v, TYPE %s %v, %d series; want both and one series in\n%s",
			name, described, typ, typed, series, text)
	}
	return value
}

// Described checks that every series in text belongs to a family with a
// HELP and a TYPE line, a histogram's _bucket, _sum and _count series to
// the histogram's, and returns how many families text describes.
func Described(t testing.TB, text string) int {
	t.Helper()
	help, types := map[string]bool{}, map[string]string{}
	var series []string
	for line := range strings.SplitSeq(text, "\n") {
		switch fields := strings.Fields(line); {
		case len(fields) >= 3 && fields[0] == "#" && fields[1] == "HELP":
			help[fields[2]] = true
		case len(fields) == 4 && fields[0] == "#" && fields[1] == "TYPE":
			types[fields[2]] = fields[3]
		case len(fields) > 0 && !strings.HasPrefix(line, "#"):
			series = append(series, strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0])
		}
	}
	for _, name := range series {
		family := name
		if _, ok := types[family]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
					family = base
				}
			}
		}
		if !help[family] || types[family] == "" {
			t.Errorf("series %s: its family %s has no HELP or no TYPE line in\n%s", name, family, text)
		}
	}
	return len(types)
}

// Want is a family Families expects: its name, type and value.
type Want struct {
	Name, Type string
	Value      float64
}

// Families checks each wanted family with Family, and its value.
func Families(t testing.TB, text string, want ...Want) {
	t.Helper()
	for _, w := range want {
		if got := Family(t, text, w.Name, w.Type); got != w.Value {
			t.Errorf("%s = %v; want %v", w.Name, got, w.Value)
		}
	}
}

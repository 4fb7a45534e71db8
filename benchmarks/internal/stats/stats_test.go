package stats

import (
	"math"
	"slices"
	"testing"
)

// same reports whether two figures are equal to 1e-9, NaN equal to NaN.
func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func TestMedian(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, nan},
		{"one", []float64{3.5}, 3.5},
		{"odd count, unsorted", []float64{74958.2, 74201.3, 75551.7}, 74958.2},
		{"even count: mean of the middle two", []float64{4, 1, 3, 2}, 2.5},
		{"NaN ignored", []float64{nan, 2, 9, nan, 4}, 4},
		{"only NaN", []float64{nan, nan}, nan},
		{"negative", []float64{-1, -3, -2}, -2},
	} {
		in := slices.Clone(tc.in)
		if got := Median(in); !same(got, tc.want) {
			t.Errorf("%s: Median(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
		if !slices.EqualFunc(in, tc.in, same) {
			t.Errorf("%s: Median modified its argument: %v", tc.name, in)
		}
	}
}

func TestRatio(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		a, b, want float64
	}{
		{74958, 23159, 74958.0 / 23159},
		{1, 1, 1},
		{0, 5, 0},
		{5, 0, nan},
		{5, -1, nan},
		{nan, 1, nan},
		{1, nan, nan},
	} {
		if got := Ratio(tc.a, tc.b); !same(got, tc.want) {
			t.Errorf("Ratio(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"none", nil, 0.5, math.NaN()},
		{"one", []float64{7}, 0.999, 7},
		{"p50 of 1..100", hundred, 0.5, 50},
		{"p99 of 1..100", hundred, 0.99, 99},
		{"p99.9 of 1..100 is the largest", hundred, 0.999, 100},
		{"p50 of 1..3 is the middle", []float64{1, 2, 3}, 0.5, 2},
		{"p50 of 1..4 is the lower middle (nearest rank)", []float64{1, 2, 3, 4}, 0.5, 2},
		{"tiny p is the smallest", []float64{1, 2, 3}, 0.0001, 1},
		{"p 1 is the largest", []float64{1, 2, 3}, 1, 3},
	} {
		if got := Quantile(tc.sorted, tc.p); !same(got, tc.want) {
			t.Errorf("%s: Quantile(p=%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestCPUPerRequest(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name               string
		ticks, hz, reqs    int64
		elapsed            float64
		wantUS, wantPctCPU float64
	}{
		// 10 s at 100 % of a core, 757,091 requests: the 13.2 us/request of
		// a results file's fastingest round.
		{"saturated round", 1000, 100, 757091, 10.0, 1e7 / 757091, 100},
		{"half a core", 250, 100, 1000, 5.0, 2500, 50},
		{"1024 Hz", 1024, 1024, 1e6, 1, 1, 100},
		{"no request", 100, 100, 0, 1, nan, 100},
		{"no time", 100, 100, 10, 0, 1e5, nan},
		{"no clock rate", 100, 0, 10, 1, nan, nan},
	} {
		us, pct := CPUPerRequest(tc.ticks, tc.hz, tc.reqs, tc.elapsed)
		if !same(us, tc.wantUS) || !same(pct, tc.wantPctCPU) {
			t.Errorf("%s: CPUPerRequest(%d, %d, %d, %v) = %v us, %v %%; want %v us, %v %%", tc.name,
				tc.ticks, tc.hz, tc.reqs, tc.elapsed, us, pct, tc.wantUS, tc.wantPctCPU)
		}
	}
}

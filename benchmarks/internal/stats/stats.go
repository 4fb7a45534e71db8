// Package stats holds the arithmetic and the parsers of the benchmark
// harness (benchmarks/bench and benchmarks/loadtest): medians and ratios over
// rounds, CPU time read from /proc, and the figures wrk, hey and vegeta print.
//
// Everything here is pure: it takes text or numbers and returns numbers, so
// that it is tested with table tests, without running a tool. A figure that
// is missing is NaN, never 0: a 0 would read as a measurement.
package stats

import (
	"math"
	"slices"
)

// Median returns the median of xs: the middle value, or the mean of the two
// middle values for an even count. NaN values are ignored; with none left the
// median is NaN. xs is not modified.
func Median(xs []float64) float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ratio returns a / b, or NaN when either is missing (NaN) or b is not
// positive: a ratio to nothing is no figure.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// Quantile returns the nearest-rank p-quantile (0 < p <= 1) of sorted, which
// must be in ascending order: the smallest value with at least p of the
// values at or below it. NaN for no values. Nearest rank, not interpolation:
// p99.9 of 166,673 latencies is one of them.
func Quantile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p * float64(n)))
	i = min(max(i, 1), n)
	return sorted[i-1]
}

// CPUPerRequest turns the CPU clock ticks a process used over elapsedSec
// seconds, during which requests requests completed, into microseconds of CPU
// per request and the share of one core in percent. hz is the kernel's clock
// tick rate (getconf CLK_TCK, 100 on Linux). NaN when a figure is missing.
func CPUPerRequest(ticks, hz int64, requests int64, elapsedSec float64) (usPerRequest, pctOfCore float64) {
	if hz <= 0 {
		return math.NaN(), math.NaN()
	}
	cpuSec := float64(ticks) / float64(hz)
	usPerRequest = math.NaN()
	if requests > 0 {
		usPerRequest = cpuSec * 1e6 / float64(requests)
	}
	pctOfCore = math.NaN()
	if elapsedSec > 0 {
		pctOfCore = 100 * cpuSec / elapsedSec
	}
	return usPerRequest, pctOfCore
}

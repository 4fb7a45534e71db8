package promtext

import (
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"
)

// Histogram is a latency histogram for the request path: observing a
// duration is a bucket search and two atomic additions, with no lock, and
// it writes itself with cumulative "le" buckets.
//
// VictoriaMetrics/metrics' PrometheusHistogram takes a mutex per
// observation; with two histograms per request that was measurable on a
// 15 µs request (the benchmarks/RESULTS.md metrics section has the
// figures). The zero value is not usable; call NewHistogram.
type Histogram struct {
	name, labels string          // labels: `path="/"` or ""
	bounds       []time.Duration // upper bounds, increasing
	counts       []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNanos     atomic.Uint64
}

// NewHistogram returns a histogram named name with the given labels (for example
// `path="/"`, or "") and upper bounds in increasing order.
func NewHistogram(name, labels string, bounds ...time.Duration) *Histogram {
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			panic("promtext: histogram bounds must increase: " + name)
		}
	}
	return &Histogram{name: name, labels: labels, bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe counts d; a negative d counts as 0.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNanos.Add(uint64(d))
}

// WriteFamily writes the histogram as a whole family: its HELP and TYPE
// lines, then WritePrometheus's series.
func (h *Histogram) WriteFamily(w io.Writer, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, help, h.name)
	h.WritePrometheus(w)
}

// WritePrometheus writes the histogram's buckets, sum and count. The count
// is the sum of the buckets as read, so the lines agree with each other
// even while observations go on.
func (h *Histogram) WritePrometheus(w io.Writer) {
	sep := ""
	if h.labels != "" {
		sep = ","
	}
	var cumulative uint64
	for i := range h.counts {
		cumulative += h.counts[i].Load()
		le := "+Inf"
		if i < len(h.bounds) {
			le = strconv.FormatFloat(h.bounds[i].Seconds(), 'g', -1, 64)
		}
		fmt.Fprintf(w, "%s_bucket{%s%sle=%q} %d\n", h.name, h.labels, sep, le, cumulative)
	}
	braces := ""
	if h.labels != "" {
		braces = "{" + h.labels + "}"
	}
	sum := time.Duration(h.sumNanos.Load()).Seconds()
	fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", h.name, braces, strconv.FormatFloat(sum, 'g', -1, 64), h.name, braces, cumulative)
}

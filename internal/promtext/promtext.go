// Package promtext writes what the server, the dispatcher and the sinks add
// to /metrics beside the metrics package's own, in the Prometheus text
// format: families of one series each, with their HELP and TYPE lines, and
// lock-free latency histograms.
package promtext

import (
	"fmt"
	"io"
)

// Counter writes a counter family of one series.
func Counter(w io.Writer, name, help string, v uint64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
}

// Gauge writes a gauge family of one series with an integer value.
func Gauge(w io.Writer, name, help string, v uint64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
}

// GaugeFloat writes a gauge family of one series with any value.
func GaugeFloat(w io.Writer, name, help string, v float64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
}

package server

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
)

// The routes requests are counted by: a fixed set, so that a scanner
// trying random paths cannot create series.
const (
	routeIngest = iota
	routeHealthz
	routeReadyz
	routeMetrics
	routeOther
	numRoutes
)

var routeLabels = [numRoutes]string{"/", "/healthz", "/readyz", "/metrics", "other"}

// countedStatuses are the statuses fastingest answers; anything else is
// counted as "other".
var countedStatuses = []int{200, 202, 400, 401, 404, 405, 408, 413, 415, 431, 500, 503}

// Shed reasons: requests refused because the server could not take them
// now, as opposed to bad requests.
const (
	shedQueueFull = iota
	shedSinkUnavailable
	shedShuttingDown
	shedNotStored
	numShed
)

var shedLabels = [numShed]string{"queue_full", "sink_unavailable", "shutting_down", "not_stored"}

// serverMetrics holds the server's metrics, all created up front: counting
// a request is an array index and an atomic add, with no map lookup and no
// label string built per request.
type serverMetrics struct {
	set      *metrics.Set
	requests [numRoutes][]*metrics.Counter // indexed by statusIndex; last is "other"
	latency  *metrics.PrometheusHistogram  // POST / only: what autoscaling watches
	shedBy   [numShed]*metrics.Counter
}

func newServerMetrics(set *metrics.Set, s *Server) *serverMetrics {
	m := &serverMetrics{set: set}
	for r, route := range routeLabels {
		for _, status := range countedStatuses {
			m.requests[r] = append(m.requests[r], set.NewCounter(
				`fastingest_requests_total{path="`+route+`",status="`+strconv.Itoa(status)+`"}`))
		}
		m.requests[r] = append(m.requests[r], set.NewCounter(
			`fastingest_requests_total{path="`+route+`",status="other"}`))
	}
	m.latency = set.NewPrometheusHistogramExt(`fastingest_request_duration_seconds{path="/"}`,
		[]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})
	for i, reason := range shedLabels {
		m.shedBy[i] = set.NewCounter(`fastingest_requests_shed_total{reason="` + reason + `"}`)
	}
	set.RegisterMetricsWriter(func(w io.Writer) {
		fmt.Fprintf(w, "# HELP fastingest_decoder_panics_total JSON decoder panics recovered (each answered 500).\n"+
			"# TYPE fastingest_decoder_panics_total counter\nfastingest_decoder_panics_total %d\n", s.decoderPanics.Load())
		// fasthttp answers connections past MAX_CONNS itself, without
		// calling the handler: only its own count sees them.
		fmt.Fprintf(w, "# HELP fastingest_connections_rejected_total Connections refused with 503 past MAX_CONNS.\n"+
			"# TYPE fastingest_connections_rejected_total counter\nfastingest_connections_rejected_total %d\n",
			s.fast.GetRejectedConnectionsCount())
	})
	return m
}

func statusIndex(status int) int {
	for i, s := range countedStatuses {
		if s == status {
			return i
		}
	}
	return len(countedStatuses)
}

// observe counts a request answered on route, and for POST / its latency,
// from when fasthttp began to handle it.
func (m *serverMetrics) observe(ctx *fasthttp.RequestCtx, route int) {
	m.requests[route][statusIndex(ctx.Response.StatusCode())].Inc()
	if route == routeIngest && ctx.IsPost() {
		m.latency.Update(time.Since(ctx.Time()).Seconds())
	}
}

// observeUnparsed counts a request fasthttp could not read (answered by
// handleParseError), under the route "other".
func (m *serverMetrics) observeUnparsed(status int) {
	m.requests[routeOther][statusIndex(status)].Inc()
}

// shed counts err if it refused a request for want of capacity.
func (m *serverMetrics) shed(err error) {
	var full *ingest.QueueFullError
	var ns *ingest.NotStoredError
	switch {
	case errors.As(err, &full):
		m.shedBy[shedQueueFull].Inc()
	case errors.Is(err, errSinkUnavailable):
		m.shedBy[shedSinkUnavailable].Inc()
	case errors.Is(err, ingest.ErrClosed), errors.Is(err, errShuttingDown):
		m.shedBy[shedShuttingDown].Inc()
	case errors.As(err, &ns):
		m.shedBy[shedNotStored].Inc()
	}
}

// serveMetrics answers GET /metrics in the Prometheus text format: the
// server's, the dispatcher's and the process's metrics.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) error {
	if !ctx.IsGet() && !ctx.IsHead() {
		return errMethodNotAllowed("GET, HEAD")
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	s.metrics.set.WritePrometheus(ctx)
	metrics.WriteProcessMetrics(ctx)
	return nil
}

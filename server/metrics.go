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
	"github.com/fastingest/fastingest/internal/histogram"
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
	latency  *histogram.Histogram          // POST / only: what autoscaling watches
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
	ms := time.Millisecond
	m.latency = histogram.New("fastingest_request_duration_seconds", `path="/"`,
		ms/2, ms, 5*ms/2, 5*ms, 10*ms, 25*ms, 50*ms, 100*ms, 250*ms, 500*ms, time.Second,
		5*time.Second/2, 5*time.Second, 10*time.Second, 30*time.Second)
	for i, reason := range shedLabels {
		m.shedBy[i] = set.NewCounter(`fastingest_requests_shed_total{reason="` + reason + `"}`)
	}
	set.RegisterMetricsWriter(func(w io.Writer) {
		fmt.Fprint(w, "# HELP fastingest_request_duration_seconds Time to answer POST /, from the request read.\n"+
			"# TYPE fastingest_request_duration_seconds histogram\n")
		m.latency.WritePrometheus(w)
		fmt.Fprintf(w, "# HELP fastingest_decoder_panics_total Panics of the JSON decoder or a decompressor, recovered (each answered 500).\n"+
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
		m.latency.Observe(time.Since(ctx.Time()))
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

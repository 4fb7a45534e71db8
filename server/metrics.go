package server

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/promtext"
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

// routeStatuses are the statuses each route can answer, and the only
// series fastingest_requests_total has: no precreated pair that cannot
// happen, such as path="/healthz",status="202". A request answered with
// any other status is counted under status="other", which every route has.
// Every route answers 505 to an HTTP version other than 1.0 and 1.1, and
// 400, 408 and 431 when fasthttp refuses a request before the handler: a
// malformed line or header, a timeout, headers over MAX_HEADER_BYTES. Those
// are counted under the route their request line named: fasthttp discards
// the line before its ErrorHandler runs, so the edge notes it as it is read
// (sniffedRoute, plain HTTP; under TLS they count as "other").
var routeStatuses = [numRoutes][]int{
	routeIngest:  {202, 400, 401, 405, 408, 413, 415, 431, 500, 503, 505},
	routeHealthz: {200, 400, 405, 408, 431, 505},
	routeReadyz:  {200, 400, 405, 408, 431, 503, 505},
	routeMetrics: {200, 400, 401, 405, 408, 431, 505},
	routeOther:   {400, 404, 408, 431, 505},
}

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
// label string built per request. The counters are plain atomics written by
// the server's own writer rather than metrics.Counters, which
// VictoriaMetrics/metrics writes without HELP and TYPE lines.
type serverMetrics struct {
	set *metrics.Set
	// requests counts by route, then by the index of the status in
	// routeStatuses; the last is status="other".
	requests [numRoutes][]atomic.Uint64
	// requestSeries are the series names of requests, in the same order.
	requestSeries [numRoutes][]string
	latency       *promtext.Histogram // POST / only: what autoscaling watches
	shedBy        [numShed]atomic.Uint64
}

func newServerMetrics(set *metrics.Set, s *Server) *serverMetrics {
	m := &serverMetrics{set: set}
	for r, route := range routeLabels {
		for _, status := range routeStatuses[r] {
			m.requestSeries[r] = append(m.requestSeries[r],
				`fastingest_requests_total{path="`+route+`",status="`+strconv.Itoa(status)+`"}`)
		}
		m.requestSeries[r] = append(m.requestSeries[r], `fastingest_requests_total{path="`+route+`",status="other"}`)
		m.requests[r] = make([]atomic.Uint64, len(m.requestSeries[r]))
	}
	ms := time.Millisecond
	m.latency = promtext.NewHistogram("fastingest_request_duration_seconds", `path="/"`,
		ms/2, ms, 5*ms/2, 5*ms, 10*ms, 25*ms, 50*ms, 100*ms, 250*ms, 500*ms, time.Second,
		5*time.Second/2, 5*time.Second, 10*time.Second, 30*time.Second)
	set.RegisterMetricsWriter(func(w io.Writer) {
		m.writeRequests(w)
		m.latency.WriteFamily(w, "Time to answer POST /, from the request read.")
		fmt.Fprintf(w, "# HELP fastingest_decoder_panics_total Panics of the JSON decoder or a decompressor, recovered (each answered 500).\n"+
			"# TYPE fastingest_decoder_panics_total counter\nfastingest_decoder_panics_total %d\n", s.decoderPanics.Load())
		// fastingest_connections_rejected_total: the edge's (edge.go).
	})
	return m
}

// statusIndex returns the index of status in routeStatuses[route], or
// that of "other".
func statusIndex(route, status int) int {
	statuses := routeStatuses[route]
	for i, s := range statuses {
		if s == status {
			return i
		}
	}
	return len(statuses)
}

// observe counts a request answered on route, and for POST / its latency,
// from when fasthttp began to handle it.
func (m *serverMetrics) observe(ctx *fasthttp.RequestCtx, route int) {
	m.requests[route][statusIndex(route, ctx.Response.StatusCode())].Add(1)
	if route == routeIngest && ctx.IsPost() {
		m.latency.Observe(time.Since(ctx.Time()))
	}
}

// observeUnparsed counts a request fasthttp could not read (answered by
// handleParseError) under the route its request line named, when fasthttp
// still holds it, and for POST / observes its latency. fasthttp sets the
// request's time only once it has read the request, so the latency runs
// from the connection's accept for its first request, and from the
// previous request's start otherwise: at worst an overestimate.
func (m *serverMetrics) observeUnparsed(ctx *fasthttp.RequestCtx) {
	route := routeOfUnparsed(&ctx.Request.Header)
	post := ctx.IsPost()
	if route == routeOther {
		// Refused while its line or headers were read: the edge saw the
		// line go by (plain HTTP). Its method is forgotten too; any
		// request to / counts as ingestion.
		var sniffed bool
		if route, sniffed = sniffedRoute(ctx.Conn()); sniffed && route == routeIngest {
			post = true
		}
	}
	m.requests[route][statusIndex(route, ctx.Response.StatusCode())].Add(1)
	if route == routeIngest && post {
		start := ctx.Time()
		if start.IsZero() {
			start = ctx.ConnTime()
		}
		m.latency.Observe(time.Since(start))
	}
}

// routeOfUnparsed returns the route of a request fasthttp refused, from
// what it has parsed of it when its ErrorHandler runs. When reading the
// request line or the headers fails, fasthttp resets the header, request
// line included, and so it does when reading the body fails
// (Request.ReadBody, ContinueReadBodyStream): only a request whose line
// and headers it read whole, refused for its URI (a Host that is no host),
// still has them. A reset header has no Host and no raw headers, where an
// HTTP/1.1 request needs a Host; RequestURI would answer "/" for it.
func routeOfUnparsed(h *fasthttp.RequestHeader) int {
	if len(h.Host()) == 0 && len(h.RawHeaders()) == 0 {
		return routeOther
	}
	return routeOf(h.RequestURI())
}

// shed counts err if it refused a request for want of capacity, and
// returns its reason (numShed for none).
func (m *serverMetrics) shed(err error) int {
	reason := shedReason(err)
	if reason < numShed {
		m.shedBy[reason].Add(1)
	}
	return reason
}

// shedReason is the shed reason of err, or numShed when err did not refuse
// a request for want of capacity.
func shedReason(err error) int {
	var full *ingest.QueueFullError
	var ns *ingest.NotStoredError
	switch {
	case errors.As(err, &full):
		return shedQueueFull
	case errors.Is(err, errSinkUnavailable):
		return shedSinkUnavailable
	case errors.Is(err, ingest.ErrClosed), errors.Is(err, errShuttingDown):
		return shedShuttingDown
	case errors.As(err, &ns):
		return shedNotStored
	}
	return numShed
}

// writeRequests writes fastingest_requests_total and
// fastingest_requests_shed_total with their HELP and TYPE lines.
func (m *serverMetrics) writeRequests(w io.Writer) {
	b := make([]byte, 0, 4096)
	b = append(b, "# HELP fastingest_requests_total Requests answered, by path (/, /healthz, /readyz, /metrics; other: "+
		"any other path, and requests too malformed to route) and status.\n"+
		"# TYPE fastingest_requests_total counter\n"...)
	for r := range m.requests {
		for i := range m.requests[r] {
			b = appendSample(b, m.requestSeries[r][i], m.requests[r][i].Load())
		}
	}
	b = append(b, "# HELP fastingest_requests_shed_total POST / requests refused for want of capacity, by reason.\n"+
		"# TYPE fastingest_requests_shed_total counter\n"...)
	for i, reason := range shedLabels {
		b = append(b, `fastingest_requests_shed_total{reason="`...)
		b = appendSample(append(b, reason...), `"}`, m.shedBy[i].Load())
	}
	_, _ = w.Write(b)
}

// appendSample appends a sample line: series (or the end of it), a space,
// v.
func appendSample(b []byte, series string, v uint64) []byte {
	b = append(b, series...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '\n')
}

// serveMetrics answers GET /metrics in the Prometheus text format: the
// server's, the dispatcher's and the process's metrics.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) error {
	if !ctx.IsGet() && !ctx.IsHead() {
		return errMethodNotAllowed("GET, HEAD")
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	s.metrics.set.WritePrometheus(ctx)
	writeProcessMetrics(ctx)
	return nil
}

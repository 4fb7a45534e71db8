package server

import (
	"bufio"
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"
)

// promlintExceptions are the problems promlint may report: three families
// of VictoriaMetrics/metrics end in _count, a suffix Prometheus keeps for
// histograms and summaries, and two of them are counters without _total.
// They keep the library's names, which dashboards built for it know, and
// are typed as what they are (see processFamilies).
var promlintExceptions = []promlint.Problem{
	{Metric: "go_cgo_calls_count", Text: `non-histogram and non-summary metrics should not have "_count" suffix`},
	{Metric: "go_cgo_calls_count", Text: `counter metrics should have "_total" suffix`},
	{Metric: "go_cpu_count", Text: `non-histogram and non-summary metrics should not have "_count" suffix`},
	{Metric: "go_gc_forced_count", Text: `non-histogram and non-summary metrics should not have "_count" suffix`},
	{Metric: "go_gc_forced_count", Text: `counter metrics should have "_total" suffix`},
}

// TestExposition parses the whole of /metrics, after requests of every kind,
// with Prometheus' own parser: no parse error, every family typed and
// described (VictoriaMetrics/metrics writes its own without either), and
// promlint finds nothing beyond promlintExceptions. The figures are those of
// the requests made, refused ones counted under their route; the file
// descriptor gauges are there; no series exists for a pair that cannot
// happen.
func TestExposition(t *testing.T) {
	t.Parallel()
	var sinkDown atomic.Bool
	env := startTunedEnv(t, tunedOptions{tcp: true, server: Config{
		AuthToken:      leakToken,
		MaxHeaderBytes: 1024,
		// Short enough for a 408 soon, long enough to read a request
		// written in one piece.
		ReadTimeout: 300 * time.Millisecond,
		SinkHealth: func() error {
			if sinkDown.Load() {
				return errStore
			}
			return nil
		},
	}})
	auth := [2]string{"Authorization", "Bearer " + leakToken}
	post := func(body string, want int, headers ...[2]string) {
		t.Helper()
		checkStatus(t, env.do(t, request{ctype: "application/json", body: body, headers: append(headers, auth)}), want)
	}
	post(refBody, fasthttp.StatusAccepted)
	post(refBody, fasthttp.StatusAccepted)
	post(`{"Data":[`, fasthttp.StatusBadRequest)
	checkStatus(t, env.do(t, request{body: refBody}), fasthttp.StatusUnauthorized)
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet, headers: [][2]string{auth}}), fasthttp.StatusMethodNotAllowed)
	checkStatus(t, env.do(t, request{ctype: "text/plain", body: refBody, headers: [][2]string{auth}}), fasthttp.StatusUnsupportedMediaType)
	overLimit := "POST / HTTP/1.1\r\nHost: fastingest.test\r\nAuthorization: Bearer " + leakToken +
		"\r\nContent-Length: " + strconv.Itoa(testMaxBody+1) + "\r\n\r\n" + strings.Repeat(" ", testMaxBody+1)
	checkStatus(t, firstAnswer(t, env.addr, overLimit), fasthttp.StatusRequestEntityTooLarge)
	sinkDown.Store(true)
	post(refBody, fasthttp.StatusServiceUnavailable)
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet, path: "/readyz"}), fasthttp.StatusServiceUnavailable)
	sinkDown.Store(false)
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet, path: "/readyz"}), fasthttp.StatusOK)
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet, path: "/metrics"}), fasthttp.StatusUnauthorized)
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet, path: "/nope"}), fasthttp.StatusNotFound)
	// Requests fasthttp refuses before the handler.
	badHost := "POST / HTTP/1.1\r\nHost: [::1\r\nContent-Length: 2\r\n\r\n{}"
	checkStatus(t, parseAnswer(t, sendRaw(t, env.addr, badHost)), fasthttp.StatusBadRequest)
	noVersion := "POST /\r\nHost: fastingest.test\r\nContent-Length: 2\r\n\r\n{}"
	checkStatus(t, parseAnswer(t, sendRaw(t, env.addr, noVersion)), fasthttp.StatusBadRequest)
	tooLarge := "GET /healthz HTTP/1.1\r\nHost: fastingest.test\r\nX-Pad: " + strings.Repeat("p", 2048) + "\r\n\r\n"
	checkStatus(t, parseAnswer(t, sendRaw(t, env.addr, tooLarge)), fasthttp.StatusRequestHeaderFieldsTooLarge)
	checkStatus(t, parseAnswer(t, sendRaw(t, env.addr, "POST / HTTP/1.1\r\nHost: fastingest.test\r\nContent-Le")),
		fasthttp.StatusRequestTimeout)
	checkStatus(t, firstAnswer(t, env.addr, "GET /healthz HTTP/1.2\r\nHost: fastingest.test\r\n\r\n"),
		fasthttp.StatusHTTPVersionNotSupported)
	waitFor(t, "the accepted parcels stored", func() bool { return env.disp.Stats().Completed == 18 })

	resp := env.do(t, request{method: fasthttp.MethodGet, path: "/metrics", headers: [][2]string{auth}})
	if got := resp.StatusCode(); got != fasthttp.StatusOK {
		t.Fatalf("GET /metrics: got %d %q, want 200", got, resp.Body())
	}
	exposition := bytes.Clone(resp.Body())

	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(exposition))
	if err != nil {
		t.Fatalf("Prometheus' parser: %v\n%s", err, exposition)
	}
	for name, f := range families {
		if f.GetType() == dto.MetricType_UNTYPED || f.Type == nil {
			t.Errorf("%s: untyped", name)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no help", name)
		}
		if f.GetHelp() == unknownFamilyHelp {
			t.Errorf("%s: VictoriaMetrics/metrics writes a family processFamilies does not describe", name)
		}
	}
	for _, name := range []string{
		"fastingest_requests_total", "fastingest_requests_shed_total", "fastingest_request_duration_seconds",
		"fastingest_decoder_panics_total", "fastingest_connections_rejected_total",
		"fastingest_connections_open", "fastingest_connections_max", "fastingest_accept_errors_total",
		"fastingest_lingering_closes_total",
		"fastingest_queue_wait_seconds", "fastingest_sink_latency_seconds",
		"fastingest_parcels_accepted_total", "fastingest_parcels_completed_total", "fastingest_parcels_failed_total",
		"fastingest_parcels_in_flight", "fastingest_queue_length", "fastingest_queue_capacity",
		"fastingest_requests_waiting", "fastingest_workers_busy", "fastingest_workers",
		"go_goroutines", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
	} {
		if _, ok := families[name]; !ok {
			t.Errorf("no family %s", name)
		}
	}
	for _, name := range []string{"process_open_fds", "process_max_fds"} {
		if f, ok := families[name]; ok && f.GetMetric()[0].GetGauge().GetValue() < 1 {
			t.Errorf("%s: got %v, want at least 1", name, f.GetMetric()[0].GetGauge().GetValue())
		}
	}

	problems, err := promlint.New(bytes.NewReader(exposition)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		if !slices.Contains(promlintExceptions, p) {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}

	requests := map[[2]string]float64{} // path, status
	for _, m := range families["fastingest_requests_total"].GetMetric() {
		var path, status string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "path":
				path = l.GetValue()
			case "status":
				status = l.GetValue()
			}
		}
		requests[[2]string{path, status}] = m.GetCounter().GetValue()
	}
	for key, want := range map[[2]string]float64{
		{"/", "202"}: 2, {"/", "400"}: 3, {"/", "401"}: 1, {"/", "405"}: 1, {"/", "408"}: 1, {"/", "413"}: 1,
		{"/", "415"}: 1, {"/", "503"}: 1,
		{"/readyz", "200"}: 1, {"/readyz", "503"}: 1, {"/metrics", "401"}: 1, {"/healthz", "505"}: 1, {"/healthz", "431"}: 1,
		{"other", "400"}: 0, {"other", "404"}: 1, {"other", "408"}: 0, {"other", "431"}: 0,
		{"/healthz", "202"}: -1, {"/metrics", "202"}: -1, {"other", "202"}: -1, {"/", "404"}: -1, // no such series
	} {
		got, ok := requests[key]
		switch {
		case want < 0 && ok:
			t.Errorf("requests_total{path=%q,status=%q}: a series for a pair that cannot happen", key[0], key[1])
		case want >= 0 && got != want:
			t.Errorf("requests_total{path=%q,status=%q}: got %v, want %v", key[0], key[1], got, want)
		}
	}
	duration := families["fastingest_request_duration_seconds"].GetMetric()[0].GetHistogram()
	// Every POST /, those refused before the handler included (the edge
	// saw their request line), but not the GET / answered 405.
	if got, want := duration.GetSampleCount(), uint64(10); got != want {
		t.Errorf("request duration count: got %d, want %d", got, want)
	}
	var shed []string
	for _, m := range families["fastingest_requests_shed_total"].GetMetric() {
		if m.GetCounter().GetValue() > 0 {
			shed = append(shed, m.GetLabel()[0].GetValue())
		}
	}
	if !slices.Equal(shed, []string{"sink_unavailable"}) {
		t.Errorf("shed reasons counted: got %v, want [sink_unavailable]", shed)
	}
}

// firstAnswer writes raw to a new TCP connection and reads one answer,
// for requests that leave the connection open.
func firstAnswer(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	conn := dialAndWrite(t, addr, raw)
	defer conn.Close()
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp
}

// TestAnnotate: a family's HELP and TYPE lines come once, before its first
// sample, with a histogram's or summary's suffixed lines in it;
// VictoriaMetrics' own metadata lines are dropped; an unknown family is
// typed by its name.
func TestAnnotate(t *testing.T) {
	t.Parallel()
	in := "# HELP a_seconds\n# TYPE a_seconds summary\n" +
		"a_seconds{quantile=\"0.5\"} 1\na_seconds_sum 2\na_seconds_count 3\n" +
		"b_total 4\nc_bytes 5\nh_bucket{le=\"+Inf\"} 6\n"
	families := map[string]family{
		"a_seconds": {"summary", "A."},
		"b_total":   {"counter", "B."},
		"h":         {"histogram", "H."},
	}
	var out strings.Builder
	annotate(&out, []byte(in), families)
	want := "# HELP a_seconds A.\n# TYPE a_seconds summary\n" +
		"a_seconds{quantile=\"0.5\"} 1\na_seconds_sum 2\na_seconds_count 3\n" +
		"# HELP b_total B.\n# TYPE b_total counter\nb_total 4\n" +
		"# HELP c_bytes " + unknownFamilyHelp + "\n# TYPE c_bytes gauge\nc_bytes 5\n" +
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 6\n"
	if got := out.String(); got != want {
		t.Errorf("annotate:\ngot\n%s\nwant\n%s", got, want)
	}
}

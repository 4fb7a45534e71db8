package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
)

// tunedOptions configures startTunedEnv: the dispatcher and the server are
// built from whole configurations, sharing one metrics set.
type tunedOptions struct {
	// ingest configures the dispatcher. MaxQueue and MaxWorkers default
	// to 64 and 4, Sink to a recordingSink; Metrics is always the env's set.
	ingest ingest.Config
	// server configures the server. MaxBodyBytes defaults to testMaxBody;
	// QueueWait is the dispatcher's and Metrics the env's set.
	server Config
	// tcp listens on 127.0.0.1:0 instead of an in-memory listener.
	tcp bool
	// noProbe skips waiting for GET /healthz through the client, whose
	// keep-alive connection would take one of MaxConns.
	noProbe bool
	// wrap, when set, wraps the listener before Serve.
	wrap func(net.Listener) net.Listener
	// tune, when set, adjusts the server between New and Serve.
	tune func(*Server)
}

// tunedEnv is a testEnv built by startTunedEnv.
type tunedEnv struct {
	*testEnv
	set  *metrics.Set
	addr string // the TCP address with tcp; "" on the in-memory listener
	// log is the server's log, written out when the test fails, unless
	// opts.server.Logger was set.
	log *testutil.SyncBuffer
}

// startTunedEnv starts a dispatcher and a server built from opts, and shuts
// both down when the test ends (the server first). env.sink is set when the
// sink is a *recordingSink.
func startTunedEnv(t *testing.T, opts tunedOptions) *tunedEnv {
	t.Helper()
	set := metrics.NewSet()
	ic := opts.ingest
	if ic.MaxQueue == 0 {
		ic.MaxQueue = 64
	}
	if ic.MaxWorkers == 0 {
		ic.MaxWorkers = 4
	}
	if ic.Sink == nil {
		ic.Sink = &recordingSink{}
	}
	ic.Metrics = set
	disp, err := ingest.New(ic)
	if err != nil {
		t.Fatalf("ingest.New: %v", err)
	}
	disp.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := disp.Shutdown(ctx); err != nil {
			t.Errorf("dispatcher Shutdown: %v", err)
		}
	})

	cfg := opts.server
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = testMaxBody
	}
	cfg.QueueWait = disp.RecentQueueWait
	cfg.Metrics = set
	logBuf := &testutil.SyncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logBuf, nil))
	}
	srv, err := New(cfg, disp)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if opts.tune != nil {
		opts.tune(srv)
	}

	env := &tunedEnv{
		testEnv: &testEnv{srv: srv, disp: disp, served: make(chan error, 1)},
		set:     set,
		log:     logBuf,
	}
	env.sink, _ = ic.Sink.(*recordingSink)
	var ln net.Listener
	if opts.tcp {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		ln, env.addr = tl, tl.Addr().String()
		env.client = &fasthttp.HostClient{Addr: env.addr}
	} else {
		ml := fasthttputil.NewInmemoryListener()
		ln, env.ln = ml, ml
		env.client = &fasthttp.HostClient{
			Addr: "fastingest.test",
			Dial: func(string) (net.Conn, error) { return ml.Dial() },
		}
	}
	if opts.wrap != nil {
		ln = opts.wrap(ln)
	}
	go func() { env.served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		env.stop(t)
		if !t.Failed() {
			return
		}
		if log := logBuf.String(); log != "" {
			t.Logf("server log:\n%s", log)
		}
	})
	if !opts.noProbe {
		env.waitReady(t)
	}
	return env
}

// series maps each sample of a scrape, "name{labels}" exactly as written,
// to its value.
type series map[string]float64

// sampleLine is one sample of the Prometheus text format as fastingest
// writes it: a name, optional labels, one space, a value (no timestamp).
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^{}]*\})?) (\S+)$`)

// parseMetrics reads the Prometheus text format: comment lines, blank
// lines, and samples, each series at most once.
func parseMetrics(body []byte) (series, error) {
	s := series{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %q is not a sample", line)
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: value: %v", line, err)
		}
		if _, dup := s[m[1]]; dup {
			return nil, fmt.Errorf("series %s written twice", m[1])
		}
		s[m[1]] = v
	}
	return s, nil
}

// get returns the value of a series, failing the test when it is missing.
func (s series) get(t *testing.T, name string) float64 {
	t.Helper()
	v, ok := s[name]
	if !ok {
		t.Fatalf("scrape has no series %s", name)
	}
	return v
}

// requests returns fastingest_requests_total for path and status.
func (s series) requests(t *testing.T, path, status string) float64 {
	t.Helper()
	return s.get(t, `fastingest_requests_total{path="`+path+`",status="`+status+`"}`)
}

// Dispatcher series.
const (
	mAccepted  = "fastingest_parcels_accepted_total"
	mCompleted = "fastingest_parcels_completed_total"
	mFailed    = "fastingest_parcels_failed_total"
	mInFlight  = "fastingest_parcels_in_flight"
	mQueueLen  = "fastingest_queue_length"
	mQueueCap  = "fastingest_queue_capacity"
	mBusy      = "fastingest_workers_busy"
	mWorkers   = "fastingest_workers"
	mQueueWait = "fastingest_queue_wait_seconds_count"
	mDuration  = `fastingest_request_duration_seconds_count{path="/"}`
)

// checkAccounting checks what every scrape must satisfy, whatever the load:
// accepted = completed + failed + in flight, with in flight neither
// negative (the snapshot reads completed and failed before accepted, so an
// unsigned subtraction cannot wrap around) nor more than accepted, and the
// queue within its capacity. In flight is not checked against MAX_QUEUE +
// MAX_WORKERS under load: completions and acceptances between the snapshot's
// reads may make it exceed that briefly.
func checkAccounting(s series) error {
	for _, name := range []string{mAccepted, mCompleted, mFailed, mInFlight, mQueueLen, mQueueCap, mBusy, mWorkers} {
		if _, ok := s[name]; !ok {
			return fmt.Errorf("no series %s", name)
		}
	}
	accepted, completed, failed, inFlight := s[mAccepted], s[mCompleted], s[mFailed], s[mInFlight]
	if inFlight > accepted {
		return fmt.Errorf("in flight %v more than accepted %v (completed %v, failed %v)", inFlight, accepted, completed, failed)
	}
	if accepted != completed+failed+inFlight {
		return fmt.Errorf("accepted %v != completed %v + failed %v + in flight %v", accepted, completed, failed, inFlight)
	}
	if s[mQueueLen] > s[mQueueCap] {
		return fmt.Errorf("queue length %v over its capacity %v", s[mQueueLen], s[mQueueCap])
	}
	return nil
}

// scrape GETs /metrics with the given headers and parses it.
func (e *testEnv) scrape(t *testing.T, headers ...[2]string) series {
	t.Helper()
	resp := e.do(t, request{method: fasthttp.MethodGet, path: "/metrics", headers: headers})
	if got := resp.StatusCode(); got != fasthttp.StatusOK {
		t.Fatalf("GET /metrics: got %d %q, want 200", got, resp.Body())
	}
	s, err := parseMetrics(resp.Body())
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return s
}

// scrapeSet parses what set writes, as /metrics does without HTTP.
func scrapeSet(set *metrics.Set) (series, error) {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	return parseMetrics(b.Bytes())
}

// TestMetricsEndpoint: GET /metrics answers the Prometheus text format with
// every fastingest family and the process metrics, and counts each request
// under its path and status: unknown paths as "other"; a body over
// MAX_BODY_BYTES under "/", whoever refuses it.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{})

	resp := env.do(t, request{method: fasthttp.MethodGet, path: "/metrics"})
	if got := resp.StatusCode(); got != fasthttp.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", got)
	}
	if got, want := string(resp.Header.ContentType()), "text/plain; version=0.0.4; charset=utf-8"; got != want {
		t.Errorf("Content-Type: got %q, want %q", got, want)
	}
	before, err := parseMetrics(resp.Body())
	if err != nil {
		t.Fatal(err)
	}
	families := []string{
		`fastingest_requests_total{path="/",status="202"}`,
		`fastingest_requests_total{path="/healthz",status="200"}`,
		`fastingest_requests_total{path="/readyz",status="503"}`,
		`fastingest_requests_total{path="/metrics",status="401"}`,
		`fastingest_requests_total{path="other",status="404"}`,
		`fastingest_requests_total{path="other",status="other"}`,
		`fastingest_request_duration_seconds_bucket{path="/",le="0.001"}`,
		`fastingest_request_duration_seconds_bucket{path="/",le="+Inf"}`,
		`fastingest_request_duration_seconds_sum{path="/"}`,
		mDuration,
		`fastingest_requests_shed_total{reason="queue_full"}`,
		`fastingest_requests_shed_total{reason="sink_unavailable"}`,
		`fastingest_requests_shed_total{reason="shutting_down"}`,
		`fastingest_requests_shed_total{reason="not_stored"}`,
		"fastingest_decoder_panics_total",
		`fastingest_queue_wait_seconds_bucket{le="+Inf"}`,
		"fastingest_queue_wait_seconds_sum",
		mQueueWait,
		`fastingest_sink_latency_seconds_bucket{le="+Inf"}`,
		"fastingest_sink_latency_seconds_count",
		mAccepted, mCompleted, mFailed, mInFlight, mQueueLen, mQueueCap, mBusy, mWorkers,
	}
	for _, name := range families {
		if _, ok := before[name]; !ok {
			t.Errorf("first scrape has no series %s", name)
		}
	}
	process := 0
	for name := range before {
		if strings.HasPrefix(name, "process_") {
			process++
		}
	}
	if process == 0 {
		t.Errorf("scrape has no process_* series")
	}
	if got, want := before.get(t, mQueueCap), 64.0; got != want {
		t.Errorf("%s: got %v, want %v", mQueueCap, got, want)
	}
	if got, want := before.get(t, mWorkers), 4.0; got != want {
		t.Errorf("%s: got %v, want %v", mWorkers, got, want)
	}

	const n = 5
	for range n {
		checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)
	}
	for range 2 {
		checkStatus(t, env.do(t, request{body: `{"Data":[`}), fasthttp.StatusBadRequest)
	}
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet}), fasthttp.StatusMethodNotAllowed)
	checkStatus(t, env.do(t, request{ctype: "text/plain", body: refBody}), fasthttp.StatusUnsupportedMediaType)
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet, path: "/nope"}), fasthttp.StatusNotFound)
	checkStatus(t, env.do(t, request{path: "/admin/../etc", body: refBody}), fasthttp.StatusNotFound)
	checkStatus(t, env.do(t, request{method: fasthttp.MethodPost, path: "/metrics"}), fasthttp.StatusMethodNotAllowed)
	overLimit := refBody + strings.Repeat(" ", testMaxBody+1-len(refBody))
	checkError(t, env.do(t, request{body: overLimit, raw: true}), fasthttp.StatusRequestEntityTooLarge, "MAX_BODY_BYTES")
	waitFor(t, "the accepted parcels stored", func() bool { return env.disp.Stats().Completed == 9*n })

	after := env.scrape(t)
	tests := []struct {
		path, status string
		want         float64 // the increase between the two scrapes
	}{
		{"/", "202", n},
		{"/", "400", 2},
		{"/", "405", 1},
		{"/", "415", 1},
		{"/", "413", 1},
		{"other", "404", 2},
		{"/metrics", "200", 1}, // the first scrape; a scrape is counted once answered
		{"/metrics", "405", 1},
	}
	for _, tt := range tests {
		if got := after.requests(t, tt.path, tt.status) - before.requests(t, tt.path, tt.status); got != tt.want {
			t.Errorf("requests_total{path=%q,status=%q} rose by %v; want %v", tt.path, tt.status, got, tt.want)
		}
	}
	if got, want := after.get(t, mAccepted)-before.get(t, mAccepted), float64(9*n); got != want {
		t.Errorf("parcels accepted rose by %v; want %v", got, want)
	}
	if got, want := after.get(t, mCompleted)-before.get(t, mCompleted), float64(9*n); got != want {
		t.Errorf("parcels completed rose by %v; want %v", got, want)
	}
	if got := after.get(t, mInFlight); got != 0 {
		t.Errorf("parcels in flight: got %v, want 0", got)
	}
	if err := checkAccounting(after); err != nil {
		t.Error(err)
	}

	// HEAD: the headers of GET, no body.
	resp = env.do(t, request{method: fasthttp.MethodHead, path: "/metrics"})
	if got := resp.StatusCode(); got != fasthttp.StatusOK || len(resp.Body()) != 0 {
		t.Errorf("HEAD /metrics: got %d with %d body bytes, want 200 and none", got, len(resp.Body()))
	}
}

// randomSink sleeps up to 1 ms per parcel and fails every parcel with id
// "3", one of the nine of the reference payload.
type randomSink struct{}

func (randomSink) Store(_ context.Context, t ingest.Task) error {
	time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
	if t.Parcel.ID == "3" {
		return errStore
	}
	return nil
}

// TestMetricsAccountingUnderLoad: accepted = completed + failed + in flight
// holds in every scrape taken while 8 clients post to a slow sink that fails
// some parcels, the counters never go back, and once the dispatcher has
// drained the figures are exact; both histograms then count every request.
func TestMetricsAccountingUnderLoad(t *testing.T) {
	t.Parallel()
	const clients, perClient = 8, 25
	const maxQueue, maxWorkers = 40, 4 // smaller than the load: requests wait for room
	env := startTunedEnv(t, tunedOptions{ingest: ingest.Config{MaxQueue: maxQueue, MaxWorkers: maxWorkers, Sink: randomSink{}}})
	before := env.scrape(t)

	var posted sync.WaitGroup
	var failures atomic.Int64
	for c := range clients {
		posted.Go(func() {
			for r := range perClient {
				resp := fasthttp.AcquireResponse()
				req := fasthttp.AcquireRequest()
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI("http://fastingest.test/")
				req.Header.SetContentType("application/json")
				req.SetBodyString(refBody)
				err := env.client.DoTimeout(req, resp, waitTimeout)
				ok := err == nil && resp.StatusCode() == fasthttp.StatusAccepted
				if !ok {
					failures.Add(1)
					t.Errorf("client %d request %d: %v %d %s", c, r, err, resp.StatusCode(), resp.Body())
				}
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
				if !ok {
					return
				}
			}
		})
	}
	postingDone := make(chan struct{})
	go func() { posted.Wait(); close(postingDone) }()

	// Scrape over HTTP while the clients post, as Prometheus would.
	scrapes := 0
	var last series
	for loading := true; loading; {
		select {
		case <-postingDone:
			loading = false
		default:
		}
		s := env.scrape(t)
		scrapes++
		if err := checkAccounting(s); err != nil {
			t.Fatalf("scrape %d under load: %v", scrapes, err)
		}
		for _, name := range []string{mAccepted, mCompleted, mFailed, mQueueWait, mDuration} {
			if last != nil && s[name] < last[name] {
				t.Fatalf("scrape %d: %s went from %v back to %v", scrapes, name, last[name], s[name])
			}
		}
		last = s
		// A pause between scrapes leaves the CPU to the load: a scrape
		// and its parsing cost more than a request.
		time.Sleep(5 * time.Millisecond)
	}
	if failures.Load() > 0 {
		t.FailNow()
	}
	if scrapes < 3 {
		t.Logf("only %d scrapes during the load", scrapes)
	}

	waitFor(t, "the dispatcher to drain", func() bool { return env.disp.Stats().InFlight() == 0 })
	requests := float64(clients * perClient)
	after := env.scrape(t)
	if err := checkAccounting(after); err != nil {
		t.Fatal(err)
	}
	delta := func(name string) float64 { return after.get(t, name) - before.get(t, name) }
	for _, c := range []struct {
		name string
		want float64
	}{
		{mAccepted, 9 * requests},
		{mCompleted, 8 * requests},
		{mFailed, requests},
		{mDuration, requests},
		{mQueueWait, requests},
		{`fastingest_requests_total{path="/",status="202"}`, requests},
	} {
		if got := delta(c.name); got != c.want {
			t.Errorf("%s rose by %v; want %v", c.name, got, c.want)
		}
	}
	for _, name := range []string{mInFlight, mQueueLen, mBusy} {
		if got := after.get(t, name); got != 0 {
			t.Errorf("%s after draining: got %v, want 0", name, got)
		}
	}
	t.Logf("%d scrapes during %v requests", scrapes, requests)
}

// TestMetricsHistogramCounts: the request duration histogram counts each
// POST / (whatever its answer; not the GET / answered 405), the queue wait
// histogram each request that reserved queue room
// or gave up waiting for it, and not those refused before (400, 413 for
// MAX_QUEUE) nor an empty Data, which queues nothing.
func TestMetricsHistogramCounts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	env := startTunedEnv(t, tunedOptions{ingest: ingest.Config{
		MaxQueue: 20, MaxWorkers: 1, Sink: &recordingSink{release: release}, EnqueueTimeout: 20 * time.Millisecond,
	}})
	t.Cleanup(releaseOnce) // before the env's cleanups
	before := env.scrape(t)

	post := func(body string, want int) {
		t.Helper()
		checkStatus(t, env.do(t, request{body: body}), want)
	}
	post(refBody, fasthttp.StatusAccepted)                                                 // queued at once
	post(refBody, fasthttp.StatusAccepted)                                                 // 18 of 20 places
	post(refBody, fasthttp.StatusServiceUnavailable)                                       // waits 20ms, gives up
	post(`{"Data":[]}`, fasthttp.StatusAccepted)                                           // nothing to queue
	post(`{"Data":[`, fasthttp.StatusBadRequest)                                           // refused before the queue
	post(parcelsJSON(numberedParcels("big", 21)...), fasthttp.StatusRequestEntityTooLarge) // more than MAX_QUEUE
	checkStatus(t, env.do(t, request{method: fasthttp.MethodGet}), fasthttp.StatusMethodNotAllowed)

	after := env.scrape(t)
	for _, c := range []struct {
		name string
		want float64
	}{
		{mDuration, 6},
		{mQueueWait, 3},
		{`fastingest_requests_shed_total{reason="queue_full"}`, 1},
		{`fastingest_requests_total{path="/",status="503"}`, 1},
		{`fastingest_requests_total{path="/",status="413"}`, 1},
	} {
		if got := after.get(t, c.name) - before.get(t, c.name); got != c.want {
			t.Errorf("%s rose by %v; want %v", c.name, got, c.want)
		}
	}
	// The request that gave up waited at least EnqueueTimeout: its
	// observation is in no bucket below 20ms.
	if got := after.get(t, `fastingest_queue_wait_seconds_bucket{le="0.01"}`); got != 2 {
		t.Errorf("queue waits up to 10ms: got %v, want the 2 requests queued at once", got)
	}
	releaseOnce()
	waitFor(t, "18 parcels stored", func() bool { return env.disp.Stats().Completed == 18 })
}

// TestMetricsDuringShutdown: /metrics answers while the server drains (a
// request still waiting for queue room) and the accounting holds in every
// scrape while the dispatcher drains, ending with nothing in flight.
func TestMetricsDuringShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	env := startTunedEnv(t, tunedOptions{ingest: ingest.Config{
		MaxQueue: 20, MaxWorkers: 2, Sink: &recordingSink{release: release},
	}})
	t.Cleanup(releaseOnce)

	checkAccepted(t, env.do(t, request{body: refBody}), `{"accepted":9}`)
	checkAccepted(t, env.do(t, request{body: refBody}), `{"accepted":9}`)
	waiting := env.postAsync(refBody) // 18 queued or held of 20: 9 more do not fit
	waitFor(t, "the third request to wait for room", func() bool { return env.disp.RecentQueueWait() > 0 })

	// Shutdown waits for the request in progress; serve /metrics through
	// the handler meanwhile, as a connection still open would.
	env.client.CloseIdleConnections()
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		shutdown <- env.srv.Shutdown(ctx)
	}()
	waitFor(t, "the server to start draining", env.srv.draining.Load)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	ctx.Request.SetRequestURI("/metrics")
	env.srv.handle(&ctx)
	if got := ctx.Response.StatusCode(); got != fasthttp.StatusOK {
		t.Fatalf("GET /metrics while draining: got %d %q, want 200", got, ctx.Response.Body())
	}
	s, err := parseMetrics(ctx.Response.Body())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAccounting(s); err != nil {
		t.Errorf("scrape while the server drains: %v", err)
	}
	if got := s[mAccepted]; got != 18 {
		t.Errorf("accepted while the third request waits: got %v, want 18", got)
	}
	checkNotAnswered(t, waiting, "before the sink was released")

	releaseOnce()
	checkAccepted(t, awaitAnswer(t, waiting), `{"accepted":9}`)
	if err := <-shutdown; err != nil {
		t.Fatalf("server Shutdown: %v", err)
	}

	// The dispatcher drains; scrape the set directly (no listener is left).
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		drained <- env.disp.Shutdown(ctx)
	}()
	for draining := true; draining; {
		select {
		case err := <-drained:
			if err != nil {
				t.Fatalf("dispatcher Shutdown: %v", err)
			}
			draining = false
		default:
		}
		s, err := scrapeSet(env.set)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkAccounting(s); err != nil {
			t.Fatalf("scrape while the dispatcher drains: %v", err)
		}
	}
	s, err = scrapeSet(env.set)
	if err != nil {
		t.Fatal(err)
	}
	if s[mAccepted] != 27 || s[mCompleted] != 27 || s[mInFlight] != 0 {
		t.Errorf("after draining: accepted %v, completed %v, in flight %v; want 27, 27, 0", s[mAccepted], s[mCompleted], s[mInFlight])
	}
	if got := s[`fastingest_requests_shed_total{reason="shutting_down"}`]; got != 0 {
		t.Errorf("shed shutting_down: got %v, want 0: no request was refused", got)
	}
}

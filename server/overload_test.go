package server

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
)

// gatedEnv starts an env whose single worker blocks in the sink until the
// returned function is called (it is also called when the test ends, before
// the env shuts down), with MAX_QUEUE 20, and fills the queue with two
// reference requests: 18 parcels accepted, one with the worker, 17 queued,
// 3 places free.
func gatedEnv(t *testing.T, enqueueTimeout time.Duration, cfg Config) (*tunedEnv, func()) {
	t.Helper()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	env := startTunedEnv(t, tunedOptions{
		ingest: ingest.Config{MaxQueue: 20, MaxWorkers: 1, Sink: &recordingSink{release: release}, EnqueueTimeout: enqueueTimeout,
			// Short, so that readiness tests do not wait out 5 s; long
			// enough to see a wait still count once it has ended.
			RecentWaitWindow: gatedWaitWindow},
		server: cfg,
	})
	t.Cleanup(releaseOnce) // before the env's cleanups
	for range 2 {
		checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)
	}
	waitFor(t, "17 tasks queued and the worker busy", func() bool {
		st := env.disp.Stats()
		return st.Queued == 17 && st.BusyWorkers == 1
	})
	return env, releaseOnce
}

// gatedWaitWindow is gatedEnv's RecentWaitWindow. A wait counts for at
// least 4/5 of it once ended (dispatcher.go's slots).
const gatedWaitWindow = 300 * time.Millisecond

// numberedParcels returns n parcels with the ids prefix-0 ... prefix-(n-1).
func numberedParcels(prefix string, n int) []ingest.Parcel {
	ps := make([]ingest.Parcel, n)
	for i := range ps {
		ps[i] = refParcel(i%9 + 1)
		ps[i].ID = prefix + "-" + strconv.Itoa(i)
	}
	return ps
}

// TestEnqueueTimeout: a request that finds no room in the queue within
// ENQUEUE_TIMEOUT is answered 503 with Retry-After and a message naming the
// setting, having queued none of its parcels; it is counted as shed
// (queue_full). Every parcel accepted before is stored once the sink
// resumes.
func TestEnqueueTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	env, release := gatedEnv(t, timeout, Config{})
	before := env.scrape(t)

	start := time.Now()
	resp := env.do(t, request{ctype: "application/json", body: refBody})
	waited := time.Since(start)
	checkError(t, resp, fasthttp.StatusServiceUnavailable,
		"ENQUEUE_TIMEOUT", "no room for 9 parcels within 50ms", "nothing of the request was queued", "retry")
	checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
	if waited < timeout {
		t.Errorf("503 after %v; want it only once ENQUEUE_TIMEOUT %v has passed", waited, timeout)
	}
	if st := env.disp.Stats(); st.Accepted != 18 || st.Queued != 17 {
		t.Errorf("dispatcher Stats after the 503: got %+v; want 18 accepted, 17 queued: nothing of the request", st)
	}

	after := env.scrape(t)
	for _, c := range []struct {
		name string
		want float64
	}{
		{`fastingest_requests_shed_total{reason="queue_full"}`, 1},
		{`fastingest_requests_total{path="/",status="503"}`, 1},
		{mQueueWait, 1},
		{mAccepted, 0},
	} {
		if got := after.get(t, c.name) - before.get(t, c.name); got != c.want {
			t.Errorf("%s rose by %v; want %v", c.name, got, c.want)
		}
	}
	// The wait is in the histogram: at least the timeout.
	if got := after.get(t, `fastingest_queue_wait_seconds_bucket{le="0.025"}`) - before.get(t, `fastingest_queue_wait_seconds_bucket{le="0.025"}`); got != 0 {
		t.Errorf("a wait of at least %v counted in the bucket le=0.025", timeout)
	}
	if got := env.srv.Stats(); got.ServerErrors != 1 {
		t.Errorf("server Stats: got %+v, want 1 server error", got)
	}

	release()
	waitFor(t, "the 18 accepted parcels stored", func() bool { return env.sink.count() == 18 })
	if st := env.disp.Stats(); st.Accepted != 18 || st.Completed != 18 || st.Failed != 0 {
		t.Errorf("dispatcher Stats: got %+v; want 18 accepted and completed", st)
	}
	// Room again: the same request is taken at once.
	checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)
	waitFor(t, "27 parcels stored", func() bool { return env.sink.count() == 27 })
}

// TestMoreParcelsThanShard: with SHARDS, a request's parcels all go to one
// shard, so one with more than a shard's share of MAX_QUEUE gets 413 naming
// MAX_QUEUE / SHARDS, while one of exactly that share is taken, and the
// metrics add the shards up.
func TestMoreParcelsThanShard(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{ingest: ingest.Config{MaxQueue: 20, MaxWorkers: 4, Shards: 2}})
	resp := env.do(t, request{ctype: "application/json", body: parcelsJSON(numberedParcels("big", 11)...)})
	checkError(t, resp, fasthttp.StatusRequestEntityTooLarge, "11 parcels", "MAX_QUEUE / SHARDS: 10", "smaller batches")
	for range 4 { // each shard in turn, twice
		checkAccepted(t, env.do(t, request{ctype: "application/json", body: parcelsJSON(numberedParcels("fit", 10)...)}), `{"accepted":10}`)
	}
	m := env.scrape(t)
	if got := m.get(t, "fastingest_queue_capacity"); got != 20 {
		t.Errorf("fastingest_queue_capacity = %v; want MAX_QUEUE, 20, for both shards", got)
	}
	if got := m.get(t, "fastingest_workers"); got != 4 {
		t.Errorf("fastingest_workers = %v; want MAX_WORKERS, 4", got)
	}
	if got := m.get(t, "fastingest_parcels_accepted_total"); got != 40 {
		t.Errorf("fastingest_parcels_accepted_total = %v; want 40", got)
	}
}

// TestMoreParcelsThanQueue: a request with more parcels than MAX_QUEUE can
// never fit; it is answered 413 naming MAX_QUEUE at once, without waiting
// for room (ENQUEUE_TIMEOUT is 0 here: a wait would never end) and without
// counting a queue wait. A request of exactly MAX_QUEUE parcels waits and is
// taken.
func TestMoreParcelsThanQueue(t *testing.T) {
	t.Parallel()
	env, release := gatedEnv(t, 0, Config{})

	resp := env.do(t, request{ctype: "application/json", body: parcelsJSON(numberedParcels("big", 21)...)})
	checkError(t, resp, fasthttp.StatusRequestEntityTooLarge, "21 parcels", "MAX_QUEUE 20", "smaller batches")
	checkHeader(t, resp, fasthttp.HeaderRetryAfter, "")
	if got := env.disp.RecentQueueWait(); got != 0 {
		t.Errorf("RecentQueueWait after the 413: got %v, want 0: nothing waited", got)
	}
	if st := env.disp.Stats(); st.Accepted != 18 {
		t.Errorf("dispatcher accepted %d parcels; want the 18 before", st.Accepted)
	}

	exact := env.postAsync(parcelsJSON(numberedParcels("exact", 20)...))
	waitFor(t, "the request of 20 parcels to wait for room", func() bool { return env.disp.RecentQueueWait() > 0 })
	checkNotAnswered(t, exact, "while the queue was full")
	release()
	checkAccepted(t, awaitAnswer(t, exact), `{"accepted":20}`)
	waitFor(t, "38 parcels stored", func() bool { return env.sink.count() == 38 })

	s := env.scrape(t)
	if got := s.requests(t, "/", "413"); got != 1 {
		t.Errorf("requests_total{path=\"/\",status=\"413\"}: got %v, want 1", got)
	}
	if got := s.get(t, `fastingest_requests_shed_total{reason="queue_full"}`); got != 0 {
		t.Errorf("shed queue_full: got %v, want 0: a 413 is the client's to fix", got)
	}
}

// TestReadyzQueueWait: while a request waits for queue room longer than
// READY_MAX_QUEUE_WAIT, /readyz answers 503 saying so (and /healthz stays
// 200); after the wait ends it stays 503 for the recent window, then
// returns to 200.
func TestReadyzQueueWait(t *testing.T) {
	t.Parallel()
	env, release := gatedEnv(t, 0, Config{ReadyMaxQueueWait: 30 * time.Millisecond})
	get := func(path string) *fasthttp.Response {
		return env.do(t, request{method: fasthttp.MethodGet, path: path})
	}
	checkStatus(t, get("/readyz"), fasthttp.StatusOK) // the queue is full, nobody waits yet

	waiting := env.postAsync(refBody)
	var resp *fasthttp.Response
	waitFor(t, "/readyz to answer 503", func() bool {
		resp = get("/readyz")
		return resp.StatusCode() != fasthttp.StatusOK
	})
	checkError(t, resp, fasthttp.StatusServiceUnavailable, "for queue room", "READY_MAX_QUEUE_WAIT 30ms")
	checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
	if waited := env.disp.RecentQueueWait(); waited <= 30*time.Millisecond {
		t.Errorf("RecentQueueWait %v when /readyz turned 503; want over 30ms", waited)
	}
	checkStatus(t, get("/healthz"), fasthttp.StatusOK)
	checkNotAnswered(t, waiting, "while the queue was full")

	released := time.Now()
	release()
	checkAccepted(t, awaitAnswer(t, waiting), `{"accepted":9}`)
	// The wait has ended but was recent: still not ready, unless this
	// machine took longer than the window to get here.
	if resp := get("/readyz"); resp.StatusCode() != fasthttp.StatusServiceUnavailable && time.Since(released) > gatedWaitWindow*4/5 {
		t.Logf("/readyz %d %v after the release, past the window: not checked", resp.StatusCode(), time.Since(released))
	} else {
		checkError(t, resp, fasthttp.StatusServiceUnavailable, "READY_MAX_QUEUE_WAIT")
	}
	start := time.Now()
	waitFor(t, "/readyz to answer 200 once the wait is no longer recent", func() bool {
		time.Sleep(20 * time.Millisecond) // a probe's pace, well inside the window
		return get("/readyz").StatusCode() == fasthttp.StatusOK
	})
	t.Logf("/readyz 200 again %v after the wait ended", time.Since(start).Round(time.Millisecond))
	checkStatus(t, get("/readyz"), fasthttp.StatusOK)
}

// dialRaw connects to the env's TCP address, with a deadline bounding the
// whole conversation.
func dialRaw(t *testing.T, env *tunedEnv) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("SetDeadline: %v", err)
	}
	return conn
}

// TestSlowClientReadTimeout: a client that sends its headers and then its
// body one byte every 100ms, slower than READ_TIMEOUT (200ms for the whole
// request), is answered 408 and disconnected long before its body is sent;
// it never holds a dispatcher worker or a queue place, and other clients
// are served meanwhile.
func TestSlowClientReadTimeout(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{server: Config{ReadTimeout: 200 * time.Millisecond}, tcp: true})
	before := env.scrape(t)

	conn := dialRaw(t, env)
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: fastingest.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(refBody))
	var sent atomic.Int64
	stop := make(chan struct{})
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := range len(refBody) {
			if _, err := conn.Write([]byte{refBody[i]}); err != nil {
				return // the server closed the connection
			}
			sent.Add(1)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-dripped }()

	// Served while the slow request is being read.
	checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)

	br := bufio.NewReader(conn)
	var resp fasthttp.Response
	if err := resp.Read(br); err != nil {
		// A reset may overtake the answer: the connection is closed
		// either way, which is what matters.
		t.Logf("slow request: no answer read (%v)", err)
	} else {
		checkError(t, &resp, fasthttp.StatusRequestTimeout, "timed out")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("slow connection still open after the timeout")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("slow connection not closed within %v", waitTimeout)
	}
	if n := sent.Load(); n >= int64(len(refBody)) {
		t.Errorf("the whole body (%d bytes) was sent before the connection closed", n)
	}

	waitFor(t, "the other request's parcels stored", func() bool { return env.disp.Stats().InFlight() == 0 })
	if st := env.disp.Stats(); st.Accepted != 9 {
		t.Errorf("dispatcher Stats: got %+v; want only the 9 parcels of the other request", st)
	}
	checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)

	after := env.scrape(t)
	if resp.StatusCode() == fasthttp.StatusRequestTimeout {
		// The body is read by the handler, so the timeout is counted
		// under the request's route.
		if got := after.requests(t, "/", "408") - before.requests(t, "/", "408"); got != 1 {
			t.Errorf("requests_total{path=\"/\",status=\"408\"} rose by %v; want 1", got)
		}
	}
	if got := after.requests(t, "/", "202") - before.requests(t, "/", "202"); got != 2 {
		t.Errorf("requests_total{path=\"/\",status=\"202\"} rose by %v; want 2", got)
	}
}

// TestMaxHeaderBytes: a request line and headers over MAX_HEADER_BYTES are
// answered 431 and counted under "other"; headers within it are served; the
// default is 8 KiB rather than fasthttp's 4 KiB.
func TestMaxHeaderBytes(t *testing.T) {
	t.Parallel()
	t.Run("1KiB", func(t *testing.T) {
		env := startTunedEnv(t, tunedOptions{server: Config{MaxHeaderBytes: 1024}})
		big := [][2]string{{"X-Big", strings.Repeat("x", 2048)}}
		checkError(t, env.do(t, request{ctype: "application/json", body: refBody, raw: true, headers: big}),
			fasthttp.StatusRequestHeaderFieldsTooLarge, "headers too large")
		small := [][2]string{{"X-Small", strings.Repeat("x", 512)}}
		checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody, raw: true, headers: small}), `{"accepted":9}`)
		if got := env.disp.Stats().Accepted; got != 9 {
			t.Errorf("dispatcher accepted %d parcels; want the 9 of the request that fit", got)
		}
		// Under its route: the edge saw the request line go by.
		if got := env.scrape(t).requests(t, "/", "431"); got != 1 {
			t.Errorf("requests_total{path=\"/\",status=\"431\"}: got %v, want 1", got)
		}
	})
	t.Run("default", func(t *testing.T) {
		env := startTunedEnv(t, tunedOptions{})
		six := [][2]string{{"X-Big", strings.Repeat("x", 6<<10)}}
		checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody, raw: true, headers: six}), `{"accepted":9}`)
		nine := [][2]string{{"X-Big", strings.Repeat("x", 9<<10)}}
		checkError(t, env.do(t, request{ctype: "application/json", body: refBody, raw: true, headers: nine}),
			fasthttp.StatusRequestHeaderFieldsTooLarge, "headers too large")
	})
}

// TestMaxConns: with MAX_CONNS 2 and two keep-alive connections open and
// idle, the edge (edge.go) accepts a third connection and answers its
// request as every 503 is answered: JSON naming MAX_CONNS, Retry-After: 1,
// Connection: close; then it closes it. The refusal is counted in
// fastingest_connections_rejected_total, and fasthttp's own plain-text
// limit is never reached. Once a connection closes, new ones are served
// again.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{server: Config{MaxConns: 2}, tcp: true, noProbe: true})
	healthz := func(conn net.Conn, br *bufio.Reader) *fasthttp.Response {
		t.Helper()
		if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: fastingest.test\r\n\r\n")); err != nil {
			t.Fatalf("write: %v", err)
		}
		resp := &fasthttp.Response{}
		if err := resp.Read(br); err != nil {
			t.Fatalf("read: %v", err)
		}
		return resp
	}
	var idle []net.Conn
	for range 2 {
		conn := dialRaw(t, env)
		checkStatus(t, healthz(conn, bufio.NewReader(conn)), fasthttp.StatusOK)
		idle = append(idle, conn)
	}

	third := dialRaw(t, env)
	br := bufio.NewReader(third)
	resp := healthz(third, br)
	checkError(t, resp, fasthttp.StatusServiceUnavailable, "2 are open", "MAX_CONNS", "retry")
	checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
	if !resp.ConnectionClose() {
		t.Errorf("third connection: no Connection: close")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("third connection still open after the 503")
	}
	if got := env.srv.edge.refused.Load(); got != 1 {
		t.Errorf("connections refused: got %d, want 1", got)
	}
	if got := env.srv.fast.GetRejectedConnectionsCount(); got != 0 {
		t.Errorf("fasthttp refused %d connections itself; want 0: the edge refuses first", got)
	}
	// The two open connections are still served.
	for _, conn := range idle[1:] {
		checkStatus(t, healthz(conn, bufio.NewReader(conn)), fasthttp.StatusOK)
	}

	idle[0].Close()
	waitFor(t, "a new connection served after one closed", func() bool {
		conn := dialRaw(t, env)
		defer conn.Close()
		return healthz(conn, bufio.NewReader(conn)).StatusCode() == fasthttp.StatusOK
	})
}

// TestMaxQueueBytes: a request whose body does not fit in MAX_QUEUE_BYTES
// beside the bodies the queue already holds waits for bytes before its body
// is copied, and gets 503 with Retry-After after ENQUEUE_TIMEOUT, nothing
// queued (TestCompressedBodyWaitsForBytes: a compressed body's wait).
func TestMaxQueueBytes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	// Bodies of a few KiB: a small body may be counted as the pooled
	// buffer it lands in (up to 4 KiB), and this test wants the
	// arithmetic of bodies, not of the pool's history.
	body := parcelsJSON(numberedParcels("mqb", 100)...)
	maxBytes := int64(4 * len(body))
	env := startTunedEnv(t, tunedOptions{
		// ENQUEUE_TIMEOUT is what the refused request waits out.
		ingest: ingest.Config{MaxQueue: 1000, MaxQueueBytes: maxBytes, MaxWorkers: 1,
			Sink: &recordingSink{release: release}, EnqueueTimeout: 100 * time.Millisecond},
		server: Config{MaxBodyBytes: int(maxBytes)},
	})
	t.Cleanup(releaseOnce)

	// A body counts at least its length and at most twice that (a
	// pooled buffer larger still is let go): two to four fit while the
	// sink holds everything, then one waits and is refused.
	before := env.scrape(t)
	accepted := 0
	var resp *fasthttp.Response
	for range 5 {
		resp = env.do(t, request{ctype: "application/json", body: body})
		if resp.StatusCode() != fasthttp.StatusAccepted {
			break
		}
		accepted++
	}
	if accepted < 2 || accepted > 4 {
		t.Fatalf("%d requests of %d bytes accepted under MAX_QUEUE_BYTES %d; want 2 to 4", accepted, len(body), maxBytes)
	}
	checkError(t, resp, fasthttp.StatusServiceUnavailable,
		"no room for a body of "+strconv.Itoa(len(body))+" bytes", "MAX_QUEUE_BYTES", "within 100ms", "nothing of the request was queued")
	checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
	if got, want := env.disp.Stats().Accepted, uint64(100*accepted); got != want {
		t.Errorf("dispatcher accepted %d parcels; want %d, none of the refused request", got, want)
	}
	after := env.scrape(t)
	if got := after.get(t, `fastingest_requests_shed_total{reason="queue_full"}`) - before.get(t, `fastingest_requests_shed_total{reason="queue_full"}`); got != 1 {
		t.Errorf("queue_full sheds rose by %v; want 1", got)
	}
	if got, least := after.get(t, "fastingest_queue_body_bytes"), float64(accepted*len(body)); got < least || got > float64(maxBytes) {
		t.Errorf("fastingest_queue_body_bytes = %v; want from %v (the accepted bodies) to %v", got, least, maxBytes)
	}
	if got, want := after.get(t, "fastingest_queue_body_bytes_capacity"), float64(maxBytes); got != want {
		t.Errorf("fastingest_queue_body_bytes_capacity = %v; want %v", got, want)
	}
}

// TestCompressedBodyWaitsForBytes: a compressed body reserves the
// decompressed bound (MAX_BODY_BYTES) from MAX_QUEUE_BYTES; while the
// queue holds a body that leaves less, it waits, and is accepted once the
// sink catches up; every byte is given back once stored.
func TestCompressedBodyWaitsForBytes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	body := parcelsJSON(numberedParcels("cbw", 100)...) // a few KiB, as in TestMaxQueueBytes
	maxBytes := int64(4 * len(body))
	env := startTunedEnv(t, tunedOptions{
		// A long ENQUEUE_TIMEOUT: the gzip request must see the bytes
		// given back under the race detector on a loaded machine too. The
		// test waits it out only if that fails.
		ingest: ingest.Config{MaxQueue: 1000, MaxQueueBytes: maxBytes, MaxWorkers: 1,
			Sink: &recordingSink{release: release}, EnqueueTimeout: waitTimeout},
		server: Config{MaxBodyBytes: int(maxBytes)},
	})
	t.Cleanup(releaseOnce)
	checkAccepted(t, env.do(t, request{ctype: "application/json", body: body}), `{"accepted":100}`)

	gz := env.postAsync(gzipped(refBody), [2]string{"Content-Encoding", "gzip"})
	waitFor(t, "the gzip request to wait for bytes", func() bool {
		return env.scrape(t).get(t, "fastingest_requests_waiting") == 1
	})
	releaseOnce()
	checkAccepted(t, awaitAnswer(t, gz), `{"accepted":9}`)
	checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)
	waitFor(t, "every body byte given back once stored", func() bool {
		return env.scrape(t).get(t, "fastingest_queue_body_bytes") == 0
	})
}

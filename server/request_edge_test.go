package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const edgeToken = "edge-test-token-0123456789"

// rawExchange writes req on a new TCP connection to addr and returns the
// status of the answer, and the whole answer for messages.
func rawExchange(t *testing.T, addr, req string) (status, whole string) {
	t.Helper()
	resp := firstAnswer(t, addr, req)
	return strconv.Itoa(resp.StatusCode()), resp.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestExpectContinueAnswersFinalStatusFirst: a client that asks
// Expect: 100-continue gets the final answer before it sends a body the
// server would refuse (an oversize length, no or a wrong token, a wrong
// method, path or content type), and 100 Continue only for a request that
// will be read.
func TestExpectContinueAnswersFinalStatusFirst(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{tcp: true, server: Config{AuthToken: edgeToken, MaxBodyBytes: 1 << 20}})
	auth := "Authorization: Bearer " + edgeToken + "\r\n"
	tests := []struct {
		name, method, path, headers string
		length                      int
		want                        int
	}{
		{"oversize length", "POST", "/", auth + "Content-Type: application/json\r\n", 20 << 20, 413},
		{"no token", "POST", "/", "Content-Type: application/json\r\n", 100, 401},
		{"wrong token", "POST", "/", "Authorization: Bearer nope\r\nContent-Type: application/json\r\n", 100, 401},
		{"wrong method", "PUT", "/", auth + "Content-Type: application/json\r\n", 100, 405},
		{"wrong path", "POST", "/ingest", auth + "Content-Type: application/json\r\n", 100, 404},
		{"wrong content type", "POST", "/", auth + "Content-Type: text/plain\r\n", 100, 415},
		{"wrong coding", "POST", "/", auth + "Content-Type: application/json\r\nContent-Encoding: br\r\n", 100, 415},
	}
	for _, tt := range tests {
		for try := range 20 {
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
				tt.method, tt.path, tt.headers, tt.length)
			status, whole := rawExchange(t, env.addr, req)
			if status != strconv.Itoa(tt.want) {
				t.Fatalf("%s, try %d: got %s; want %d first, before any body\n%s", tt.name, try, status, tt.want, whole)
			}
		}
	}

	// A request that will be read gets 100 Continue, then its answer.
	conn, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		auth, len(refBody))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("valid request with Expect: got %q, %v; want HTTP/1.1 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after 100 Continue: got %q; want an empty line", blank)
	}
	io.WriteString(conn, refBody)
	var resp fasthttp.Response
	if err := resp.Read(br); err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, &resp, `{"accepted":9}`)
}

// TestExpectContinueGoClient: Go's net/http client, which waits for 100
// Continue before it sends a body, sends no byte of a body the server
// refuses.
func TestExpectContinueGoClient(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{tcp: true, server: Config{AuthToken: edgeToken, MaxBodyBytes: 1 << 20}})
	tr := &http.Transport{ExpectContinueTimeout: waitTimeout}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitTimeout}
	for _, tt := range []struct {
		name, token string
		size, want  int
	}{
		{"oversize", edgeToken, 2 << 20, 413},
		{"no token", "", 1000, 401},
		{"valid", edgeToken, 0, 202},
	} {
		for try := range 20 {
			body := &countingBody{data: []byte(strings.Repeat(" ", tt.size) + refBody)}
			req, err := http.NewRequest("POST", "http://"+env.addr+"/", body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(body.data))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Expect", "100-continue")
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s, try %d: %v", tt.name, try, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s, try %d: status %d; want %d", tt.name, try, resp.StatusCode, tt.want)
			}
			if sent := body.read.Load(); tt.want != 202 && sent != 0 {
				t.Fatalf("%s, try %d: the client sent %d body bytes; want none", tt.name, try, sent)
			}
		}
	}
}

// countingBody is a request body that counts the bytes the client read
// from it to send.
type countingBody struct {
	data []byte
	off  int
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.off == len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	b.read.Add(int64(n))
	return n, nil
}

// TestRoutingOnExactRawPath: only the literal paths are routes. Encoded,
// doubled, dotted forms of /metrics and of / are 404, so that a proxy rule
// on the literal path cannot be bypassed.
func TestRoutingOnExactRawPath(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{tcp: true, server: Config{MetricsPublic: true}})
	tests := []struct {
		method, target string
		want           int
	}{
		{"GET", "/metrics", 200},
		{"GET", "/metrics?x=1", 200},
		{"GET", "/healthz", 200},
		{"GET", "/%6detrics", 404},
		{"GET", "//metrics", 404},
		{"GET", "/a/../metrics", 404},
		{"GET", "/./metrics", 404},
		{"GET", "/metrics/", 404},
		{"GET", "/METRICS", 404},
		{"GET", "/%2e/healthz", 404},
		{"GET", "http://x/metrics", 404},
		{"POST", "//", 404},
		{"POST", "/.", 404},
		{"POST", "/%2F", 404},
	}
	for _, tt := range tests {
		body := ""
		if tt.method == "POST" {
			body = refBody
		}
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			tt.method, tt.target, len(body), body)
		if status, whole := rawExchange(t, env.addr, req); status != strconv.Itoa(tt.want) {
			t.Errorf("%s %s: got %s; want %d\n%s", tt.method, tt.target, status, tt.want, whole)
		}
	}
	if n := env.disp.Stats().Accepted; n != 0 {
		t.Errorf("%d parcels accepted through paths other than /; want 0", n)
	}
}

// TestHTTPVersions: HTTP/1.0 and HTTP/1.1 are served; any other version
// in the request line is answered 505.
func TestHTTPVersions(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{tcp: true})
	for _, tt := range []struct {
		version string
		want    int
	}{
		{"HTTP/1.1", 200}, {"HTTP/1.0", 200}, {"HTTP/1.2", 505}, {"HTTP/2.0", 505}, {"HTTP/0.9", 505}, {"HTTP/3.0", 505},
	} {
		req := "GET /healthz " + tt.version + "\r\nHost: x\r\nConnection: close\r\n\r\n"
		status, whole := rawExchange(t, env.addr, req)
		if status != strconv.Itoa(tt.want) {
			t.Errorf("%s: got %s; want %d\n%s", tt.version, status, tt.want, whole)
		}
	}
	body := refBody
	status, whole := rawExchange(t, env.addr, fmt.Sprintf(
		"POST / HTTP/2.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	if status != "505" {
		t.Errorf("POST / HTTP/2.0: got %s; want 505\n%s", status, whole)
	}
	if n := env.disp.Stats().Accepted; n != 0 {
		t.Errorf("%d parcels accepted from an HTTP/2.0 request line; want 0", n)
	}
}

// TestReadyzAfterShedding: with ENQUEUE_TIMEOUT shorter than
// READY_MAX_QUEUE_WAIT, requests are shed before any wait reaches the
// threshold; a shed request counts for readiness as such a wait, so that a
// load balancer stops sending traffic to a node that refuses it.
func TestReadyzAfterShedding(t *testing.T) {
	t.Parallel()
	env, release := gatedEnv(t, 20*time.Millisecond, Config{ReadyMaxQueueWait: time.Second})
	env.srv.shedWindow = 200 * time.Millisecond
	get := func(path string) *fasthttp.Response {
		return env.do(t, request{method: fasthttp.MethodGet, path: path})
	}
	checkStatus(t, get("/readyz"), fasthttp.StatusOK)
	checkError(t, env.do(t, request{ctype: "application/json", body: refBody}), fasthttp.StatusServiceUnavailable, "ENQUEUE_TIMEOUT")
	checkError(t, get("/readyz"), fasthttp.StatusServiceUnavailable, "refused for want of queue room")
	checkStatus(t, get("/healthz"), fasthttp.StatusOK)

	release()
	waitFor(t, "/readyz to answer 200 once the shedding is no longer recent", func() bool {
		time.Sleep(20 * time.Millisecond) // a probe's pace
		return get("/readyz").StatusCode() == fasthttp.StatusOK
	})
}

// TestShutdownDeadlineRefusesWaitingRequests: with ENQUEUE_TIMEOUT=0,
// requests waiting for queue room when the shutdown deadline passes are
// answered 503 with nothing queued, not dropped with their connection.
func TestShutdownDeadlineRefusesWaitingRequests(t *testing.T) {
	t.Parallel()
	env, release := gatedEnv(t, 0, Config{})
	const waiting = 5
	answers := make([]<-chan answer, waiting)
	for i := range answers {
		answers[i] = env.postAsync(refBody)
	}
	waitFor(t, "the requests to wait for room", func() bool { return env.disp.RecentQueueWait() > 0 })
	waitFor(t, "every request to wait", func() bool {
		return env.srv.fast.GetOpenConnectionsCount() >= waiting
	})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := env.srv.Shutdown(ctx); err == nil {
		t.Errorf("Shutdown returned nil with requests waiting; want the deadline's error")
	}
	for i, ch := range answers {
		resp := awaitAnswer(t, ch)
		checkError(t, resp, fasthttp.StatusServiceUnavailable, "shutting down")
		if t.Failed() {
			t.Fatalf("request %d", i)
		}
	}
	if st := env.disp.Stats(); st.Accepted != 18 {
		t.Errorf("accepted %d parcels; want only the 18 queued before the shutdown", st.Accepted)
	}
	if st := env.srv.Stats(); st.ServerErrors != waiting {
		t.Errorf("Stats().ServerErrors = %d; want %d, one per refused request", st.ServerErrors, waiting)
	}
	release()
}

func TestRouteOfRequestLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		line string
		want int
	}{
		{"POST / HTTP/1.1\r\nHost: x", routeIngest},
		{"POST /\r\nHost: x", routeIngest},
		{"POST /?a=1 HTTP/1.1", routeIngest},
		{"GET /healthz HTTP/1.1", routeHealthz},
		{"GET /metrics", routeMetrics},
		{"GET //metrics HTTP/1.1", routeOther},
		{"POST", routeOther},
		{"", routeOther},
		{"\x16\x03\x01\x02\x00", routeOther}, // a TLS record
	} {
		if got := routeOfRequestLine([]byte(tt.line)); got != tt.want {
			t.Errorf("routeOfRequestLine(%q) = %d; want %d", tt.line, got, tt.want)
		}
	}
}

package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/fastingest/fastingest/ingest"
)

// testMaxBody is MaxBodyBytes for every test server: small, so that the
// 413 cases need only a few kilobytes.
const testMaxBody = 4096

// waitTimeout bounds every wait in these tests. It is a deadline for a
// condition that should hold almost at once, never a measured duration.
const waitTimeout = 10 * time.Second

// refParcel is the i-th parcel (1..9) of the reference payload. Each parcel
// has its own time and data, so that a parcel delivered twice, or one parcel
// delivered with another's fields, is caught.
func refParcel(i int) ingest.Parcel {
	return ingest.Parcel{
		ID:   strconv.Itoa(i),
		Time: fmt.Sprintf("2017-01-01T00:00:0%dZ", i),
		Data: strings.Repeat("abc", i),
	}
}

// parcelsJSON encodes parcels as a request body {"Data":[...]}.
func parcelsJSON(parcels ...ingest.Parcel) string {
	var b strings.Builder
	b.WriteString(`{"Data":[`)
	for i, p := range parcels {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%q,"time":%q,"data":%q}`, p.ID, p.Time, p.Data)
	}
	b.WriteString("]}")
	return b.String()
}

// refParcels are the nine parcels of the reference payload, ids 1..9.
var refParcels = func() []ingest.Parcel {
	ps := make([]ingest.Parcel, 9)
	for i := range ps {
		ps[i] = refParcel(i + 1)
	}
	return ps
}()

// refBody is the reference payload:
// {"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}, ... ids 1..9]}.
var refBody = parcelsJSON(refParcels...)

// recordingSink records every parcel it is given. If release is not nil,
// Store first waits for it to be closed (or for ctx to end), which lets a
// test hold parcels, and so requests, in flight.
type recordingSink struct {
	release chan struct{}

	mu      sync.Mutex
	parcels []ingest.Parcel
}

func (s *recordingSink) Store(ctx context.Context, t ingest.Task) error {
	if s.release != nil {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The parcel's memory is reused once Store returns: keep a copy, as
	// every sink that retains parcels must.
	s.parcels = append(s.parcels, ingest.Parcel{
		ID: strings.Clone(t.Parcel.ID), Time: strings.Clone(t.Parcel.Time), Data: strings.Clone(t.Parcel.Data),
	})
	return nil
}

// stored returns a copy of the parcels stored so far.
func (s *recordingSink) stored() []ingest.Parcel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.parcels)
}

func (s *recordingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parcels)
}

// waitFor polls cond until it holds, failing the test if it does not within
// waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// envOptions configures startEnv; zero values take small defaults.
type envOptions struct {
	maxQueue   int
	maxWorkers int
	release    chan struct{} // see recordingSink.release
}

// testEnv is a running server, its dispatcher and recording sink, and a
// client connected to it through an in-memory listener.
type testEnv struct {
	srv    *Server
	disp   *ingest.Dispatcher
	sink   *recordingSink
	ln     *fasthttputil.InmemoryListener
	client *fasthttp.HostClient

	served   chan error // receives Serve's result
	stopOnce sync.Once
}

// startEnv starts a dispatcher with a recording sink and a server on an
// in-memory listener, waits until GET /healthz answers 200, and shuts both
// down when the test ends (see startTunedEnv for other configurations).
func startEnv(t *testing.T, opts envOptions) *testEnv {
	t.Helper()
	return startTunedEnv(t, tunedOptions{ingest: ingest.Config{
		MaxQueue: opts.maxQueue, MaxWorkers: opts.maxWorkers, Sink: &recordingSink{release: opts.release},
	}}).testEnv
}

// waitReady polls GET /healthz until it answers 200.
func (e *testEnv) waitReady(t *testing.T) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://fastingest.test/healthz")
	waitFor(t, "GET /healthz to answer 200", func() bool {
		err := e.client.DoTimeout(req, resp, time.Second)
		return err == nil && resp.StatusCode() == fasthttp.StatusOK
	})
}

// stop shuts the server down and checks that Serve returned nil. It may be
// called more than once.
func (e *testEnv) stop(t *testing.T) {
	t.Helper()
	e.stopOnce.Do(func() {
		// Closing the client's idle connections first spares Shutdown
		// waiting for the server to notice them.
		e.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-e.served:
			if err != nil {
				t.Errorf("Serve returned %v after Shutdown, want nil", err)
			}
		case <-ctx.Done():
			t.Errorf("Serve did not return within %v of Shutdown", waitTimeout)
		}
	})
}

// request describes one HTTP request to the test server.
type request struct {
	method  string
	path    string
	ctype   string      // Content-Type; "" sends none
	headers [][2]string // further headers
	body    string
	// raw sends the request by hand over a fresh connection, in one write,
	// instead of through the client: for chunked bodies and for bodies the
	// server refuses before reading them (the client would fail writing
	// the rest and never read the answer).
	raw     bool
	chunked bool // with raw: Transfer-Encoding: chunked instead of Content-Length
}

// do sends r and returns the response.
func (e *testEnv) do(t *testing.T, r request) *fasthttp.Response {
	t.Helper()
	if r.method == "" {
		r.method = fasthttp.MethodPost
	}
	if r.path == "" {
		r.path = "/"
	}
	if r.raw {
		return e.doRaw(t, r)
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(r.method)
	req.SetRequestURI("http://fastingest.test" + r.path)
	// Without this the client sends Content-Type: application/octet-stream
	// for a body without one, and "absent" would not be tested.
	req.Header.SetNoDefaultContentType(true)
	if r.ctype != "" {
		req.Header.SetContentType(r.ctype)
	}
	for _, h := range r.headers {
		req.Header.Add(h[0], h[1])
	}
	if r.body != "" {
		req.SetBodyString(r.body)
	}
	resp := &fasthttp.Response{}
	if err := e.client.DoTimeout(req, resp, waitTimeout); err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	return resp
}

// doRaw writes r by hand on a new connection and reads the response.
func (e *testEnv) doRaw(t *testing.T, r request) *fasthttp.Response {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: fastingest.test\r\n", r.method, r.path)
	if r.ctype != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", r.ctype)
	}
	for _, h := range r.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if r.chunked {
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for body := r.body; len(body) > 0; {
			n := min(len(body), 1000)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		b.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(r.body), r.body)
	}

	conn, err := e.ln.Dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("SetDeadline: %v", err)
	}
	// One write: the in-memory pipe buffers it whole, so it succeeds even
	// if the server answers and closes without reading the body.
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("%s %s: read response: %v", r.method, r.path, err)
	}
	return resp
}

// checkStatus checks the status code and the Content-Type application/json.
func checkStatus(t *testing.T, resp *fasthttp.Response, want int) {
	t.Helper()
	if got := resp.StatusCode(); got != want {
		t.Errorf("status: got %d, want %d (body %q)", got, want, resp.Body())
	}
	if got, want := string(resp.Header.ContentType()), "application/json"; got != want {
		t.Errorf("Content-Type: got %q, want %q", got, want)
	}
}

// errorMessage checks that resp's body is exactly {"error": non-empty
// string} and returns the message.
func errorMessage(t *testing.T, resp *fasthttp.Response) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resp.Body(), &m); err != nil {
		t.Errorf("error body %q is not JSON: %v", resp.Body(), err)
		return ""
	}
	msg, ok := m["error"].(string)
	if len(m) != 1 || !ok || msg == "" {
		t.Errorf("error body: got %s, want {\"error\": non-empty string}", resp.Body())
	}
	return msg
}

// checkError checks an error response: its status, its JSON content type,
// its {"error":"..."} body and that the message contains every word.
func checkError(t *testing.T, resp *fasthttp.Response, wantStatus int, words ...string) {
	t.Helper()
	checkStatus(t, resp, wantStatus)
	msg := errorMessage(t, resp)
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("error message: got %q, want it to contain %q", msg, w)
		}
	}
}

// checkHeader checks the value of header name; want "" wants it absent.
func checkHeader(t *testing.T, resp *fasthttp.Response, name, want string) {
	t.Helper()
	if got := string(resp.Header.Peek(name)); got != want {
		t.Errorf("%s header: got %q, want %q", name, got, want)
	}
}

func TestStatusCodes(t *testing.T) {
	t.Parallel()
	const goodEntry = `{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}`
	// exactly MaxBodyBytes: the reference payload padded with spaces.
	atLimit := refBody + strings.Repeat(" ", testMaxBody-len(refBody))
	overLimit := refBody + strings.Repeat(" ", testMaxBody+1-len(refBody))
	// many small valid entries, well over the limit
	var big []ingest.Parcel
	for i := 0; len(parcelsJSON(big...)) <= 2*testMaxBody; i++ {
		big = append(big, refParcel(i%9+1))
	}
	bigBody := parcelsJSON(big...)

	tests := []struct {
		name   string
		req    request
		status int
		body   string   // for 2xx: the exact body wanted; "" checks nothing
		words  []string // for errors: words the message must contain
		allow  string   // the Allow header wanted; "" wants none
	}{
		// 202
		{name: "reference payload without Content-Type", req: request{body: refBody},
			status: 202, body: `{"accepted":9}`},
		{name: "reference payload application/json", req: request{ctype: "application/json", body: refBody},
			status: 202, body: `{"accepted":9}`},
		{name: "reference payload with charset", req: request{ctype: "application/json; charset=utf-8", body: refBody},
			status: 202, body: `{"accepted":9}`},
		{name: "reference payload +json suffix", req: request{ctype: "application/vnd.x+json", body: refBody},
			status: 202, body: `{"accepted":9}`},
		{name: "media type is case-insensitive", req: request{ctype: "Application/JSON", body: refBody},
			status: 202, body: `{"accepted":9}`},
		{name: "Content-Encoding identity", req: request{body: refBody, headers: [][2]string{{"Content-Encoding", "identity"}}},
			status: 202, body: `{"accepted":9}`},
		{name: "query string ignored", req: request{path: "/?source=test", body: refBody},
			status: 202, body: `{"accepted":9}`},
		{name: "chunked body", req: request{body: refBody, raw: true, chunked: true},
			status: 202, body: `{"accepted":9}`},
		{name: "body of exactly MaxBodyBytes", req: request{body: atLimit, raw: true},
			status: 202, body: `{"accepted":9}`},
		{name: "chunked body of exactly MaxBodyBytes", req: request{body: atLimit, raw: true, chunked: true},
			status: 202, body: `{"accepted":9}`},
		{name: "empty Data", req: request{body: `{"Data":[]}`},
			status: 202, body: `{"accepted":0}`},
		{name: "case-insensitive field names",
			req:    request{body: `{"data":[{"ID":"1","Time":"2017-01-01T00:00:01Z","DATA":"x"}]}`},
			status: 202, body: `{"accepted":1}`},
		{name: "unknown fields ignored",
			req:    request{body: `{"client":"x","Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc","extra":{"a":[1,2]}}],"n":3}`},
			status: 202, body: `{"accepted":1}`},
		{name: "data empty or null", req: request{body: `{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":""},{"id":"2","time":"2017-01-01T00:00:01Z","data":null},{"id":"3","time":"2017-01-01T00:00:01Z"}]}`},
			status: 202, body: `{"accepted":3}`},
		{name: "time with offset and fraction", req: request{body: `{"Data":[{"id":"1","time":"2017-01-01T01:00:01.123+01:00","data":"abc"}]}`},
			status: 202, body: `{"accepted":1}`},

		// 400
		{name: "malformed JSON", req: request{body: `{"Data":[` + goodEntry},
			status: 400, words: []string{"malformed JSON at byte"}},
		{name: "malformed JSON mid-entry", req: request{body: `{"Data":[{"id":"1",,}]}`},
			status: 400, words: []string{"malformed JSON at byte"}},
		{name: "empty body", req: request{},
			status: 400, words: []string{"malformed JSON at byte 0"}},
		{name: "body not an object", req: request{body: `[` + goodEntry + `]`},
			status: 400, words: []string{"must be a JSON object", "array"}},
		{name: "body null", req: request{body: `null`},
			status: 400, words: []string{"must be a JSON object", "null"}},
		{name: "Data missing", req: request{body: `{"Parcels":[` + goodEntry + `]}`},
			status: 400, words: []string{`"Data" is missing`}},
		{name: "Data not an array", req: request{body: `{"Data":` + goodEntry + `}`},
			status: 400, words: []string{`"Data" must be an array, got object`}},
		{name: "Data a string", req: request{body: `{"Data":"x"}`},
			status: 400, words: []string{`"Data" must be an array, got string`}},
		{name: "Data null", req: request{body: `{"Data":null}`},
			status: 400, words: []string{`"Data" must be an array, got null`}},
		{name: "entry not an object", req: request{body: `{"Data":[` + goodEntry + `,"x"]}`},
			status: 400, words: []string{"Data[1] must be an object", "string"}},
		{name: "entry missing id", req: request{body: `{"Data":[{"time":"2017-01-01T00:00:01Z","data":"abc"}]}`},
			status: 400, words: []string{"Data[0]", `"id"`, "missing"}},
		{name: "entry with empty id", req: request{body: `{"Data":[` + goodEntry + `,{"id":"","time":"2017-01-01T00:00:01Z","data":"abc"}]}`},
			status: 400, words: []string{"Data[1]", `"id"`, "missing or empty"}},
		{name: "entry missing time", req: request{body: `{"Data":[{"id":"1","data":"abc"}]}`},
			status: 400, words: []string{"Data[0]", `"time"`, "missing"}},
		{name: "time not RFC 3339", req: request{body: `{"Data":[{"id":"1","time":"2017-01-01 00:00:01","data":"abc"}]}`},
			status: 400, words: []string{"Data[0]", `"time"`, "RFC 3339", "2017-01-01 00:00:01"}},
		{name: "id a number", req: request{body: `{"Data":[{"id":1,"time":"2017-01-01T00:00:01Z","data":"abc"}]}`},
			status: 400, words: []string{"Data[0]", `"id" must be a string`, "number"}},
		{name: "time a boolean", req: request{body: `{"Data":[{"id":"1","time":true,"data":"abc"}]}`},
			status: 400, words: []string{"Data[0]", `"time" must be a string`, "boolean"}},
		{name: "data an object", req: request{body: `{"Data":[` + goodEntry + `,{"id":"2","time":"2017-01-01T00:00:01Z","data":{"a":1}}]}`},
			status: 400, words: []string{"Data[1]", `"data" must be a string`, "object"}},
		{name: "data a number", req: request{body: `{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":42}]}`},
			status: 400, words: []string{"Data[0]", `"data" must be a string`, "number"}},

		// 413
		{name: "body over MaxBodyBytes with Content-Length", req: request{body: overLimit, raw: true},
			status: 413, words: []string{"MAX_BODY_BYTES", strconv.Itoa(testMaxBody)}},
		{name: "large body with Content-Length", req: request{ctype: "application/json", body: bigBody, raw: true},
			status: 413, words: []string{"MAX_BODY_BYTES"}},
		{name: "chunked body over MaxBodyBytes", req: request{body: overLimit, raw: true, chunked: true},
			status: 413, words: []string{"MAX_BODY_BYTES", strconv.Itoa(testMaxBody)}},
		{name: "Expect 100-continue with Content-Length over MaxBodyBytes",
			req:    request{body: overLimit, raw: true, headers: [][2]string{{"Expect", "100-continue"}}},
			status: 413, words: []string{"MAX_BODY_BYTES"}},
		{name: "large chunked body", req: request{ctype: "application/json", body: bigBody, raw: true, chunked: true},
			status: 413, words: []string{"MAX_BODY_BYTES"}},

		// 415
		{name: "text/plain", req: request{ctype: "text/plain", body: refBody},
			status: 415, words: []string{"Content-Type", "text/plain"}},
		{name: "form-urlencoded", req: request{ctype: "application/x-www-form-urlencoded", body: refBody},
			status: 415, words: []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{name: "octet-stream", req: request{ctype: "application/octet-stream", body: refBody},
			status: 415, words: []string{"Content-Type"}},
		{name: "json-like but not json", req: request{ctype: "application/json-seq", body: refBody},
			status: 415, words: []string{"Content-Type"}},
		{name: "Content-Encoding identity then gzip", req: request{ctype: "application/json", body: gzipped(refBody), headers: [][2]string{{"Content-Encoding", "identity"}, {"Content-Encoding", "gzip"}}},
			status: 202, body: `{"accepted":9}`},
		{name: "empty Content-Encoding then gzip", req: request{ctype: "application/json", body: gzipped(refBody), headers: [][2]string{{"Content-Encoding", ""}, {"Content-Encoding", "gzip"}}},
			status: 202, body: `{"accepted":9}`},
		{name: "empty Content-Encoding then br", req: request{ctype: "application/json", body: refBody, headers: [][2]string{{"Content-Encoding", ""}, {"Content-Encoding", "br"}}},
			status: 415, words: []string{"Content-Encoding", "br"}},
		{name: "Content-Encoding list", req: request{ctype: "application/json", body: refBody, headers: [][2]string{{"Content-Encoding", "identity, br"}}},
			status: 415, words: []string{"Content-Encoding", "br"}},
		{name: "Content-Encoding gzip on an uncompressed body", req: request{ctype: "application/json", body: refBody, headers: [][2]string{{"Content-Encoding", "gzip"}}},
			status: 400, words: []string{"Content-Encoding gzip"}},

		// 405
		{name: "GET /", req: request{method: "GET"}, status: 405, words: []string{"method not allowed", "POST"}, allow: "POST"},
		{name: "PUT /", req: request{method: "PUT", body: refBody}, status: 405, words: []string{"POST"}, allow: "POST"},
		{name: "DELETE /", req: request{method: "DELETE"}, status: 405, words: []string{"POST"}, allow: "POST"},
		{name: "POST /healthz", req: request{path: "/healthz", body: refBody}, status: 405, words: []string{"GET, HEAD"}, allow: "GET, HEAD"},
		{name: "POST /readyz", req: request{path: "/readyz"}, status: 405, words: []string{"GET, HEAD"}, allow: "GET, HEAD"},

		// 404
		{name: "GET /nope", req: request{method: "GET", path: "/nope"}, status: 404, words: []string{"not found"}},
		{name: "POST /nope", req: request{path: "/nope", body: refBody}, status: 404, words: []string{"not found"}},
		{name: "GET /healthz/", req: request{method: "GET", path: "/healthz/"}, status: 404, words: []string{"not found"}},

		// 200
		{name: "GET /healthz", req: request{method: "GET", path: "/healthz"}, status: 200, body: `{"status":"ok"}`},
		{name: "GET /readyz", req: request{method: "GET", path: "/readyz"}, status: 200, body: `{"status":"ok"}`},
		{name: "HEAD /healthz", req: request{method: "HEAD", path: "/healthz"}, status: 200},
		{name: "HEAD /readyz", req: request{method: "HEAD", path: "/readyz"}, status: 200},

		// 431: fasthttp's header buffer (4 KiB by default) cannot hold it
		{name: "headers too large", req: request{body: refBody, raw: true, headers: [][2]string{{"X-Big", strings.Repeat("x", 8192)}}},
			status: 431, words: []string{"headers too large"}},
	}

	env := startEnv(t, envOptions{})
	var wantAccepted, wantClientErrors uint64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.do(t, tt.req)
			checkHeader(t, resp, fasthttp.HeaderAllow, tt.allow)
			if tt.status >= 400 {
				checkError(t, resp, tt.status, tt.words...)
				return
			}
			checkStatus(t, resp, tt.status)
			if tt.body != "" {
				if got := string(resp.Body()); got != tt.body {
					t.Errorf("body: got %q, want %q", got, tt.body)
				}
			}
		})
		// Stats counts ingestion requests only: not the answers on
		// health paths or unknown ones.
		ingestion := tt.req.path == "" || tt.req.path == "/"
		switch {
		case tt.status == fasthttp.StatusAccepted:
			wantAccepted++
		case tt.status >= 400 && tt.status < 500 && ingestion:
			wantClientErrors++
		}
	}

	got := env.srv.Stats()
	want := Stats{Accepted: wantAccepted, ClientErrors: wantClientErrors}
	if got != want {
		t.Errorf("Stats: got %+v, want %+v", got, want)
	}
}

func TestIsJSONMediaType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ct   string
		want bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"application/json;charset=utf-8", true},
		{" application/json ", true},
		{"APPLICATION/JSON", true},
		{"application/vnd.x+json", true},
		{"application/problem+JSON; q=1", true},
		{"application/+json", false},
		{"application/", false},
		{"application/jsonl", false},
		{"application/x-www-form-urlencoded", false},
		{"text/json", false},
		{"text/plain", false},
		{"json", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isJSONMediaType([]byte(tt.ct)); got != tt.want {
			t.Errorf("isJSONMediaType(%q): got %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func TestHandleParseError(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, queueFunc(func(time.Time, *ingest.Batch) error { return nil }))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	timeoutErr := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name   string
		err    error
		status int
		word   string
	}{
		{"body too large", fasthttp.ErrBodyTooLarge, 413, "MAX_BODY_BYTES"},
		{"wrapped body too large", fmt.Errorf("reading: %w", fasthttp.ErrBodyTooLarge), 413, "MAX_BODY_BYTES"},
		{"small buffer", &fasthttp.ErrSmallBuffer{}, 431, "headers too large"},
		{"read timeout", timeoutErr, 408, "timed out"},
		{"wrapped read timeout", fmt.Errorf("error when reading request headers: %w", timeoutErr), 408, "timed out"},
		{"timeout with only Timeout()", fmt.Errorf("reading: %w", onlyTimeout{}), 408, "timed out"},
		{"other", errors.New(`invalid header value "Bearer t0k3n\r"`), 400, "cannot parse the HTTP request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			srv.handleParseError(&ctx, tt.err)
			checkError(t, &ctx.Response, tt.status, tt.word)
		})
	}
}

// TestReadTimeout checks, over real TCP, that a client that stops in the
// middle of its headers is answered 408 once ReadTimeout passes.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{MaxBodyBytes: testMaxBody, ReadTimeout: 100 * time.Millisecond},
		queueFunc(func(time.Time, *ingest.Batch) error { return nil }))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after Shutdown, want nil", err)
		}
	})

	conn, err := net.DialTimeout("tcp", ln.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("SetDeadline: %v", err)
	}
	if _, err := conn.Write([]byte("POST / HTTP/1.1\r\nHost: fastingest.test\r\nContent-Le")); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("read response: %v", err)
	}
	checkError(t, resp, fasthttp.StatusRequestTimeout, "timed out")
}

// queueFunc adapts a function to Queue.
type queueFunc func(time.Time, *ingest.Batch) error

func (f queueFunc) ReserveBody(*ingest.Batch, int) error { return nil }

func (f queueFunc) RefuseWaiting() {}

// Submit calls f, then releases the batch, as the queue owns it.
func (f queueFunc) Submit(received time.Time, parcels *ingest.Batch) error {
	defer ingest.ReleaseBatch(parcels)
	return f(received, parcels)
}

func (f queueFunc) SubmitAndWait(received time.Time, parcels *ingest.Batch, _ time.Duration) error {
	return f.Submit(received, parcels)
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	q := queueFunc(func(time.Time, *ingest.Batch) error { return nil })
	if _, err := New(Config{MaxBodyBytes: 0}, q); err == nil {
		t.Errorf("New with MaxBodyBytes 0: got nil error, want one")
	}
	if _, err := New(Config{MaxBodyBytes: 1}, nil); err == nil {
		t.Errorf("New with a nil queue: got nil error, want one")
	}
}

// TestReferencePayloadReachesSink checks that the nine reference parcels
// reach the sink as nine distinct parcels, each with its own fields.
func TestReferencePayloadReachesSink(t *testing.T) {
	t.Parallel()
	env := startEnv(t, envOptions{})
	resp := env.do(t, request{ctype: "application/json", body: refBody})
	checkStatus(t, resp, fasthttp.StatusAccepted)
	if got, want := string(resp.Body()), `{"accepted":9}`; got != want {
		t.Fatalf("body: got %q, want %q", got, want)
	}

	waitFor(t, "9 parcels in the sink", func() bool { return env.sink.count() >= 9 })
	waitFor(t, "9 completed parcels", func() bool { return env.disp.Stats().Completed >= 9 })

	got := env.sink.stored()
	slices.SortFunc(got, func(a, b ingest.Parcel) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(got, refParcels) {
		t.Errorf("stored parcels:\ngot  %+v\nwant %+v", got, refParcels)
	}
	if got, want := env.disp.Stats(), (ingest.Stats{Accepted: 9, Completed: 9, QueueCap: 64, Workers: 4, Shards: min(ingest.DefaultShards(), 4)}); got != want {
		t.Errorf("dispatcher Stats: got %+v, want %+v", got, want)
	}
}

// TestAllOrNothing checks that a body with one invalid entry queues none of
// its parcels.
func TestAllOrNothing(t *testing.T) {
	t.Parallel()
	env := startEnv(t, envOptions{})
	bad := make([]ingest.Parcel, 9)
	for i := range bad {
		bad[i] = ingest.Parcel{ID: strconv.Itoa(11 + i), Time: "2017-01-01T00:00:01Z", Data: "bad batch"}
	}
	bad[4].Time = "yesterday"

	resp := env.do(t, request{body: parcelsJSON(bad...)})
	checkError(t, resp, fasthttp.StatusBadRequest, "Data[4]", `"time"`, "yesterday")
	// Submit runs before the answer, so nothing can arrive later.
	if got := env.disp.Stats().Accepted; got != 0 {
		t.Fatalf("dispatcher accepted %d parcels of a refused body, want 0", got)
	}

	// The pipeline works: a valid body that follows arrives, alone.
	resp = env.do(t, request{body: refBody})
	checkStatus(t, resp, fasthttp.StatusAccepted)
	waitFor(t, "9 parcels in the sink", func() bool { return env.sink.count() >= 9 })
	waitFor(t, "9 completed parcels", func() bool { return env.disp.Stats().Completed >= 9 })
	got := env.sink.stored()
	slices.SortFunc(got, func(a, b ingest.Parcel) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(got, refParcels) {
		t.Errorf("stored parcels:\ngot  %+v\nwant only the valid batch %+v", got, refParcels)
	}
	if got, want := env.disp.Stats().Accepted, uint64(9); got != want {
		t.Errorf("dispatcher Accepted: got %d, want %d", got, want)
	}
}

// TestConcurrentRequests sends many requests at once over keep-alive
// connections and checks that every parcel arrives intact: parcels must not
// alias request buffers that fasthttp reuses once the handler returns.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	const clients, requests, perRequest = 8, 25, 4
	env := startEnv(t, envOptions{maxQueue: 8, maxWorkers: 2})

	want := make(map[string]ingest.Parcel)
	bodies := make([][]string, clients)
	for c := range clients {
		for r := range requests {
			ps := make([]ingest.Parcel, perRequest)
			for k := range ps {
				id := fmt.Sprintf("c%d-r%d-p%d", c, r, k)
				ps[k] = ingest.Parcel{
					ID:   id,
					Time: fmt.Sprintf("2017-01-01T00:%02d:%02dZ", r%60, k),
					Data: "payload of " + id,
				}
				want[id] = ps[k]
			}
			bodies[c] = append(bodies[c], parcelsJSON(ps...))
		}
	}

	errs := make(chan error, clients*requests)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			req := fasthttp.AcquireRequest()
			defer fasthttp.ReleaseRequest(req)
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			for _, body := range bodies[c] {
				req.Reset()
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI("http://fastingest.test/")
				req.Header.SetContentType("application/json")
				req.SetBodyString(body)
				if err := env.client.DoTimeout(req, resp, waitTimeout); err != nil {
					errs <- err
					return
				}
				if got, want := string(resp.Body()), fmt.Sprintf(`{"accepted":%d}`, perRequest); resp.StatusCode() != 202 || got != want {
					errs <- fmt.Errorf("got %d %q, want 202 %q", resp.StatusCode(), got, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	total := clients * requests * perRequest
	waitFor(t, strconv.Itoa(total)+" parcels in the sink", func() bool { return env.sink.count() >= total })
	got := env.sink.stored()
	if len(got) != total {
		t.Errorf("sink holds %d parcels, want %d", len(got), total)
	}
	seen := make(map[string]bool)
	for _, p := range got {
		if seen[p.ID] {
			t.Errorf("parcel %q stored twice", p.ID)
		}
		seen[p.ID] = true
		if w, ok := want[p.ID]; !ok || p != w {
			t.Errorf("stored parcel: got %+v, want %+v", p, w)
		}
	}
	if got, want := env.srv.Stats().Accepted, uint64(clients*requests); got != want {
		t.Errorf("server Accepted: got %d, want %d", got, want)
	}
}

// TestDecoderPanic checks that a decoder panic is answered 500, counted, and
// does not stop the server.
func TestDecoderPanic(t *testing.T) {
	t.Parallel()
	env := startEnv(t, envOptions{})
	// The request below is sent after this write, over a channel the
	// server's goroutine receives from: no race.
	env.srv.decode = func(*ingest.Batch, []byte) error { panic("decoder bug") }

	resp := env.do(t, request{body: refBody})
	checkError(t, resp, fasthttp.StatusInternalServerError, "internal error", "retry")
	if got, want := env.srv.Stats(), (Stats{ServerErrors: 1, DecoderPanics: 1}); got != want {
		t.Errorf("Stats after a panic: got %+v, want %+v", got, want)
	}
	if got := env.disp.Stats().Accepted; got != 0 {
		t.Errorf("dispatcher accepted %d parcels, want 0", got)
	}

	env.srv.decode = (*ingest.Batch).Decode
	resp = env.do(t, request{body: refBody})
	checkStatus(t, resp, fasthttp.StatusAccepted)
	if got, want := string(resp.Body()), `{"accepted":9}`; got != want {
		t.Errorf("body after a panic: got %q, want %q", got, want)
	}
	if got, want := env.srv.Stats(), (Stats{Accepted: 1, ServerErrors: 1, DecoderPanics: 1}); got != want {
		t.Errorf("Stats: got %+v, want %+v", got, want)
	}
}

// TestDispatcherClosed checks that a POST after the dispatcher has shut down
// is answered 503 with Retry-After, and queues nothing.
func TestDispatcherClosed(t *testing.T) {
	t.Parallel()
	env := startEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := env.disp.Shutdown(ctx); err != nil {
		t.Fatalf("dispatcher Shutdown: %v", err)
	}

	resp := env.do(t, request{ctype: "application/json", body: refBody})
	checkError(t, resp, fasthttp.StatusServiceUnavailable, "shutting down")
	checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
	if got, want := env.srv.Stats(), (Stats{ServerErrors: 1}); got != want {
		t.Errorf("Stats: got %+v, want %+v", got, want)
	}
	if got := env.disp.Stats().Accepted; got != 0 {
		t.Errorf("dispatcher accepted %d parcels after Shutdown, want 0", got)
	}

	// The health endpoints still answer: the server itself is not draining.
	checkStatus(t, env.do(t, request{method: "GET", path: "/readyz"}), fasthttp.StatusOK)
}

// handleDirect runs srv.handle on a request built in memory.
func handleDirect(srv *Server, method, uri string) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	srv.handle(ctx)
	return ctx
}

// TestReadinessAfterShutdown checks that after Shutdown /readyz answers 503
// and /healthz still 200, and that Shutdown may be called again.
func TestReadinessAfterShutdown(t *testing.T) {
	t.Parallel()
	env := startEnv(t, envOptions{})
	if env.srv.draining.Load() {
		t.Fatalf("draining set before Shutdown")
	}
	ctx := handleDirect(env.srv, "GET", "/readyz")
	checkStatus(t, &ctx.Response, fasthttp.StatusOK)

	env.stop(t)
	if !env.srv.draining.Load() {
		t.Fatalf("draining not set after Shutdown")
	}
	ctx = handleDirect(env.srv, "GET", "/readyz")
	checkError(t, &ctx.Response, fasthttp.StatusServiceUnavailable, "shutting down")
	checkHeader(t, &ctx.Response, fasthttp.HeaderRetryAfter, "1")

	ctx = handleDirect(env.srv, "GET", "/healthz")
	checkStatus(t, &ctx.Response, fasthttp.StatusOK)
	if got, want := string(ctx.Response.Body()), `{"status":"ok"}`; got != want {
		t.Errorf("/healthz body: got %q, want %q", got, want)
	}

	sctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := env.srv.Shutdown(sctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := env.ln.Dial(); err == nil {
		t.Errorf("dial after Shutdown: got nil error, want the listener closed")
	}
}

// TestShutdownWaitsForRequestInFlight holds a request in Submit (the sink
// blocks, the queue is full), shuts the server down, and checks that the
// server reports not ready meanwhile, and that the request is still answered
// 202 and its parcels stored before Shutdown returns.
func TestShutdownWaitsForRequestInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	env := startEnv(t, envOptions{maxQueue: 9, maxWorkers: 1, release: release})
	// Registered after startEnv's cleanups, so it runs before them: if the
	// test fails early, the server and dispatcher can still drain.
	t.Cleanup(releaseOnce)
	// A first request fills the worker and 8 of the 9 places.
	checkStatus(t, env.do(t, request{method: "POST", path: "/", body: refBody}), fasthttp.StatusAccepted)

	type result struct {
		status int
		body   string
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("http://fastingest.test/")
		req.Header.SetContentType("application/json")
		req.SetBodyString(refBody)
		err := env.client.DoTimeout(req, resp, waitTimeout)
		answered <- result{resp.StatusCode(), string(resp.Body()), err}
	}()

	// The first request's parcels are in the sink and the queue, and the
	// second waits for room for its 9: in flight, unable to finish on its
	// own.
	waitFor(t, "Submit to wait for queue room", func() bool {
		s := env.disp.Stats()
		return s.Accepted == 9 && s.BusyWorkers == 1 && s.Queued == 8 && env.disp.RecentQueueWait() > 0
	})

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		shutdownErr <- env.srv.Shutdown(ctx)
	}()
	waitFor(t, "draining to be set", env.srv.draining.Load)

	ctx := handleDirect(env.srv, "GET", "/readyz")
	checkError(t, &ctx.Response, fasthttp.StatusServiceUnavailable, "shutting down")
	ctx = handleDirect(env.srv, "GET", "/healthz")
	checkStatus(t, &ctx.Response, fasthttp.StatusOK)

	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	case r := <-answered:
		t.Fatalf("request answered (%d %q, %v) while its parcels could not be queued", r.status, r.body, r.err)
	default:
	}

	releaseOnce()
	r := <-answered
	if r.err != nil || r.status != fasthttp.StatusAccepted || r.body != `{"accepted":9}` {
		t.Errorf("in-flight request: got %d %q (err %v), want 202 %q", r.status, r.body, r.err, `{"accepted":9}`)
	}
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	waitFor(t, "18 parcels in the sink", func() bool { return env.sink.count() >= 18 })
}

// onlyTimeout is a timeout error with Timeout but not the rest of net.Error,
// like fasthttputil's.
type onlyTimeout struct{}

func (onlyTimeout) Error() string { return "timeout" }
func (onlyTimeout) Timeout() bool { return true }

// TestShutdownBeforeServe: a Serve that starts after Shutdown must return at
// once instead of serving forever.
func TestShutdownBeforeServe(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, queueFunc(func(time.Time, *ingest.Batch) error { return nil }))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Shutdown = %v; want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve after Shutdown did not return")
	}
}

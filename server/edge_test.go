package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
)

// startEdgeEnv starts a tuned env on 127.0.0.1:0 (opts.tcp) whose client
// makes no connection of its own (opts.noProbe): the edge tests count every
// connection against MAX_CONNS.
func startEdgeEnv(t *testing.T, opts tunedOptions) *tunedEnv {
	t.Helper()
	opts.tcp, opts.noProbe = true, true
	return startTunedEnv(t, opts)
}

// metric returns the value of one series of the env's exposition, written
// without a connection (one may not be available past MAX_CONNS).
func (e *tunedEnv) metric(t *testing.T, series string) float64 {
	t.Helper()
	s, err := scrapeSet(e.set)
	if err != nil {
		t.Fatal(err)
	}
	return s.get(t, series)
}

// holdRefusers takes every gentle refuser of env's edge, as a flood past
// MAX_CONNS would, and gives them back when the test ends; free gives one
// back at once.
func holdRefusers(t *testing.T, env *tunedEnv) (free func()) {
	for range refuseDrainers {
		env.srv.edge.drainers <- struct{}{}
	}
	held := refuseDrainers
	t.Cleanup(func() {
		for ; held > 0; held-- {
			<-env.srv.edge.drainers
		}
	})
	return func() {
		held--
		<-env.srv.edge.drainers
	}
}

// failingListener returns the errors of fail, in turn, before it accepts
// from the listener it wraps; with forever set, it returns the last one
// without end (until closed).
type failingListener struct {
	net.Listener
	forever bool

	mu     sync.Mutex
	fail   []error
	closed bool
	calls  int
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	if l.closed {
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}
	}
	if len(l.fail) > 0 {
		err := l.fail[0]
		if len(l.fail) > 1 || !l.forever {
			l.fail = l.fail[1:]
		}
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func (l *failingListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

// acceptErr is an accept error as the net package returns it.
func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// newHTTPClient returns a net/http client that opens a connection per
// request, and closes its idle ones when the test ends.
func newHTTPClient(t *testing.T, tlsConfig *tls.Config) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConfig}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}

// TestAcceptRetriesTemporaryErrors: EMFILE, ENFILE, ECONNABORTED and a
// timeout from accept are retried after a backoff, counted, and logged once
// (the rest suppressed); the server goes on serving.
func TestAcceptRetriesTemporaryErrors(t *testing.T) {
	t.Parallel()
	var fail []error
	for range 3 {
		fail = append(fail, acceptErr(syscall.EMFILE), acceptErr(syscall.ECONNABORTED))
	}
	fail = append(fail, acceptErr(syscall.ENFILE), acceptErr(syscall.ENOBUFS), &net.OpError{Op: "accept", Net: "tcp", Err: os.ErrDeadlineExceeded})
	env := startEdgeEnv(t, tunedOptions{
		wrap: func(ln net.Listener) net.Listener { return &failingListener{Listener: ln, fail: fail} },
		// 5 ms doubling to 20 ms rather than to a second: the test
		// needs the retries, not the wait.
		tune: func(s *Server) { s.edge.backoffMax = 20 * time.Millisecond },
	})
	client := newHTTPClient(t, nil)
	for i := range 3 {
		resp, err := client.Post("http://"+env.addr+"/", "application/json", strings.NewReader(refBody))
		if err != nil {
			t.Fatalf("POST #%d after accept errors: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || string(body) != `{"accepted":9}` {
			t.Errorf("POST #%d = %d %s; want 202 {\"accepted\":9}", i+1, resp.StatusCode, body)
		}
	}
	if got, want := env.metric(t, "fastingest_accept_errors_total"), float64(len(fail)); got != want {
		t.Errorf("fastingest_accept_errors_total = %v; want %v", got, want)
	}
	log := env.log.String()
	if n := strings.Count(log, "cannot accept a connection"); n != 1 {
		t.Errorf("%d accept error lines; want 1 (at most one per interval):\n%s", n, log)
	}
	for _, want := range []string{"level=WARN", "out of file descriptors", "LimitNOFILE", "too many open files", "retry_in=5ms"} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not contain %q:\n%s", want, log)
		}
	}
}

// TestAcceptPermanentErrorStopsServe: an accept error that is not
// temporary still ends Serve with that error, as net/http's does.
func TestAcceptPermanentErrorStopsServe(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	disp, err := ingest.New(ingest.Config{MaxQueue: 1, MaxWorkers: 1, Sink: &recordingSink{}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, disp)
	if err != nil {
		t.Fatal(err)
	}
	boom := acceptErr(syscall.EINVAL)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(&failingListener{Listener: ln, fail: []error{boom}}) }()
	select {
	case err := <-served:
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Serve = %v; want the accept error %v", err, boom)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Serve still running %v after a permanent accept error", waitTimeout)
	}
}

// TestShutdownEndsAcceptBackoff: Shutdown during a backoff after an accept
// error wakes the wait at once: with a backoff of an hour, Serve and
// Shutdown still return within the test's bound.
func TestShutdownEndsAcceptBackoff(t *testing.T) {
	t.Parallel()
	fl := &failingListener{fail: []error{acceptErr(syscall.EMFILE)}, forever: true}
	env := startEdgeEnv(t, tunedOptions{
		wrap: func(ln net.Listener) net.Listener { fl.Listener = ln; return fl },
		tune: func(s *Server) { s.edge.backoffMin, s.edge.backoffMax = time.Hour, time.Hour },
	})
	waitFor(t, "an accept error", func() bool { return env.srv.edge.acceptErrors.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := env.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown during an accept backoff: %v", err)
	}
	select {
	case err := <-env.served:
		env.served <- err // for the cleanup's check
	case <-ctx.Done():
		t.Fatalf("Serve still waiting after Shutdown")
	}
	if got := env.srv.edge.acceptErrors.Load(); got != 1 {
		t.Errorf("accept errors = %d; want 1: the wait was not cut short", got)
	}
}

// holdConns opens n connections to addr and has each served one GET
// /healthz, so that each holds a place within MAX_CONNS; they are closed
// when the test ends.
func holdConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: fastingest.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("held connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("held connection: GET /healthz = %d; want 200", resp.StatusCode)
		}
		conns = append(conns, c)
	}
	return conns
}

// checkBusy checks a response to a connection past MAX_CONNS: 503 in JSON
// naming MAX_CONNS, with Retry-After: 1 and Connection: close.
func checkBusy(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%s: status %d; want 503", what, resp.StatusCode)
	}
	for _, h := range [][2]string{{"Retry-After", "1"}, {"Content-Type", "application/json"}} {
		if got := resp.Header.Get(h[0]); got != h[1] {
			t.Errorf("%s: %s %q; want %q", what, h[0], got, h[1])
		}
	}
	if !resp.Close {
		t.Errorf("%s: no Connection: close", what)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, "MAX_CONNS") || !strings.Contains(e.Error, "retry") {
		t.Errorf("%s: body %q; want {\"error\":...} naming MAX_CONNS and saying to retry", what, body)
	}
}

// TestMaxConnsAnswersRealClients: past MAX_CONNS, Go's net/http client gets
// the JSON 503 with Retry-After for a GET and for a POST whose body the
// server never reads, in every one of 20 tries, counted in
// fastingest_connections_rejected_total; the held connections are still
// served, and a place freed is taken again.
func TestMaxConnsAnswersRealClients(t *testing.T) {
	t.Parallel()
	env := startEdgeEnv(t, tunedOptions{server: Config{MaxConns: 2}})
	held := holdConns(t, env.addr, 2)
	client := newHTTPClient(t, nil)
	body := bytes.Repeat([]byte("x"), 256<<10) // sent in full while the server answers
	const tries = 20
	for i := range tries {
		var resp *http.Response
		var err error
		if i%2 == 0 {
			resp, err = client.Get("http://" + env.addr + "/healthz")
		} else {
			resp, err = client.Post("http://"+env.addr+"/", "application/json", bytes.NewReader(body))
		}
		if err != nil {
			t.Fatalf("try %d past MAX_CONNS: %v", i+1, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("try %d: reading the 503: %v", i+1, err)
		}
		checkBusy(t, fmt.Sprintf("try %d", i+1), resp, b)
	}
	if got := env.metric(t, "fastingest_connections_rejected_total"); got != tries {
		t.Errorf("fastingest_connections_rejected_total = %v; want %d", got, tries)
	}
	if got := env.metric(t, "fastingest_connections_max"); got != 2 {
		t.Errorf("fastingest_connections_max = %v; want 2", got)
	}
	if log := env.log.String(); strings.Count(log, "connection refused with 503") != 1 || !strings.Contains(log, "max_conns=2") {
		t.Errorf("want one WARN line for the refused connections naming max_conns=2:\n%s", log)
	}
	held[0].Close()
	waitFor(t, "a place freed", func() bool { return env.srv.edge.open.Load() == 1 })
	resp, err := client.Post("http://"+env.addr+"/", "application/json", strings.NewReader(refBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST once a place was freed = %d; want 202", resp.StatusCode)
	}
}

// TestMaxConnsAnswersWithoutDrainers: with every gentle refuser busy for
// longer than refuseRequestWait, a connection past MAX_CONNS is still
// answered the JSON 503, without waiting for its request, and closed.
func TestMaxConnsAnswersWithoutDrainers(t *testing.T) {
	t.Parallel()
	env := startEdgeEnv(t, tunedOptions{server: Config{MaxConns: 1}})
	holdConns(t, env.addr, 1)
	holdRefusers(t, env)
	c, err := net.DialTimeout("tcp", env.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil) // nothing sent
	if err != nil {
		t.Fatalf("reading the 503 without sending a request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	checkBusy(t, "no drainer free", resp, b)
}

// TestMaxConnsTLS: over TLS a connection past MAX_CONNS is closed without
// an answer (none can be sent before a handshake), and counted; the
// connection within it is served over TLS through the edge.
func TestMaxConnsTLS(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := testTLS(t)
	env := startEdgeEnv(t, tunedOptions{server: Config{MaxConns: 1, TLSConfig: serverTLS}})
	first, err := tls.Dial("tcp", env.addr, clientTLS)
	if err != nil {
		t.Fatalf("first TLS connection: %v", err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(first, "GET /healthz HTTP/1.1\r\nHost: fastingest.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(first), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over TLS: %v %v; want 200", resp, err)
	}
	resp.Body.Close()

	d := &net.Dialer{Timeout: waitTimeout}
	second, err := tls.DialWithDialer(d, "tcp", env.addr, clientTLS)
	if err == nil {
		second.Close()
		t.Fatalf("second TLS connection past MAX_CONNS 1: handshake succeeded; want it closed")
	}
	if got := env.metric(t, "fastingest_connections_rejected_total"); got != 1 {
		t.Errorf("fastingest_connections_rejected_total = %v; want 1", got)
	}
}

// testTLS returns a server configuration with a self-signed certificate
// for 127.0.0.1 and a client configuration that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	der, key, pool := testutil.SelfSignedCert(t)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	return server, &tls.Config{RootCAs: pool}
}

// TestLingerOnCloseMarksOnlyEdgeConns: lingerOnClose marks an edge
// connection, through a *tls.Conn too, and does nothing to any other.
func TestLingerOnCloseMarksOnlyEdgeConns(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	lingerOnClose(a) // not the edge's: nothing to mark, no panic

	e := &edge{}
	ec := &edgeConn{Conn: a, e: e}
	lingerOnClose(tls.Server(ec, &tls.Config{}))
	if !ec.linger.Load() {
		t.Errorf("an edge connection under TLS was not marked")
	}
	// A pipe cannot be half-closed: Close closes at once.
	e.open.Store(1)
	if err := ec.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := e.open.Load(); got != 0 {
		t.Errorf("open connections after Close = %d; want 0", got)
	}
	if err := ec.Close(); err == nil || e.open.Load() != 0 {
		t.Errorf("second Close = %v, open %d; want an error and no second release", err, e.open.Load())
	}
}

// oversizeBodies are the bodies the lingering-close tests post against
// MAX_BODY_BYTES 1 MiB: the sizes issue 11 measured resets at.
var oversizeBodies = []int{1<<20 + 1000, 2 << 20, 4 << 20}

const lingerTries = 20

// lingerEnv starts a server with MAX_BODY_BYTES 1 MiB for the
// lingering-close tests.
func lingerEnv(t *testing.T, tlsConfig *tls.Config) *tunedEnv {
	return startEdgeEnv(t, tunedOptions{server: Config{MaxBodyBytes: 1 << 20, TLSConfig: tlsConfig}})
}

// checkLingered waits until every connection is closed and checks that
// each of n was closed gently, none cut short by a bound. With strictEOF,
// the client closed first every time; without, a client may also have
// reset its side after reading the answer (Go's TLS client does, leaving
// the server's close_notify unread), which is counted as an error.
func checkLingered(t *testing.T, env *tunedEnv, n int, strictEOF bool) {
	t.Helper()
	waitFor(t, "every connection closed", func() bool { return env.srv.edge.open.Load() == 0 })
	var ends [numLingerEnds]float64
	for end, label := range lingerEndLabels {
		ends[end] = env.metric(t, `fastingest_lingering_closes_total{end="`+label+`"}`)
	}
	if ends[lingerEOF]+ends[lingerLimit]+ends[lingerError] != float64(n) || ends[lingerLimit] != 0 ||
		(strictEOF && ends[lingerEOF] != float64(n)) {
		t.Errorf("lingering closes by end %v %v; want all %d eof%s", lingerEndLabels, ends, n,
			map[bool]string{false: " or error", true: ""}[strictEOF])
	}
}

// TestLingeringCloseGoClient: Go's net/http client posting bodies over
// MAX_BODY_BYTES with Content-Length gets 413 in every try, over HTTP and
// over HTTPS (the edge sits under TLS).
func TestLingeringCloseGoClient(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			var serverTLS, clientTLS *tls.Config
			if scheme == "https" {
				serverTLS, clientTLS = testTLS(t)
			}
			env := lingerEnv(t, serverTLS)
			client := newHTTPClient(t, clientTLS)
			n := 0
			for _, size := range oversizeBodies {
				body := bytes.Repeat([]byte("x"), size)
				for i := range lingerTries {
					resp, err := client.Post(scheme+"://"+env.addr+"/", "application/json", bytes.NewReader(body))
					if err != nil {
						t.Errorf("POST of %d bytes, try %d: %v; want 413", size, i+1, err)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusRequestEntityTooLarge {
						t.Errorf("POST of %d bytes, try %d: %d; want 413", size, i+1, resp.StatusCode)
					}
					n++
				}
			}
			checkLingered(t, env, n, scheme == "http")
		})
	}
}

// TestMaxConnsWaitsForADrainer: a refuser freed while a connection past
// MAX_CONNS waits for one answers it after its request, so that Go's
// net/http reads the 503 rather than dropping it as an unsolicited answer
// on an idle connection (seen in CI when a flood held every refuser).
func TestMaxConnsWaitsForADrainer(t *testing.T) {
	t.Parallel()
	env := startEdgeEnv(t, tunedOptions{server: Config{MaxConns: 1}})
	holdConns(t, env.addr, 1)
	freeRefuser := holdRefusers(t, env)
	client := newHTTPClient(t, nil)
	got := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + env.addr + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			checkBusy(t, "a refuser freed while waiting", resp, b)
		}
		got <- err
	}()
	// Once the accept loop waits for a refuser, one comes free.
	waitFor(t, "the connection refused", func() bool { return env.srv.edge.refused.Load() == 1 })
	time.Sleep(20 * time.Millisecond)
	freeRefuser()
	if err := <-got; err != nil {
		t.Fatalf("GET /healthz past MAX_CONNS, a refuser freed meanwhile: %v", err)
	}
}

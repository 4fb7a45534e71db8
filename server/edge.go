package server

// The edge is what happens to a TCP connection before fasthttp reads a
// request from it and after fasthttp is done with it: accepting, counting
// against MAX_CONNS, refusing past it, and closing. fasthttp's own handling
// of these breaks fastingest's promises (issue 11): it stops serving on
// "too many open files", answers past its Concurrency in plain text without
// Retry-After, and closes a connection with an unread body at once, so that
// the kernel resets it and the client often never reads its 413
// (fasthttp#1348). Server.Serve wraps every listener in an edgeListener,
// under TLS when the server serves HTTPS.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/fastingest/fastingest/internal/ratelog"
)

const (
	// acceptBackoffMin and acceptBackoffMax bound the wait after a
	// temporary accept error, doubling from one to the other as
	// net/http's Server.Serve does: short enough that a freed descriptor
	// is used at once, long enough that a full file table does not spin
	// a CPU.
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second

	// refuseDrainers bounds the goroutines refusing connections past
	// MAX_CONNS gently (refuseGently): each holds a descriptor for up to
	// refuseRequestWait + refuseWait. With all of them busy, the accept
	// loop waits up to refuseRequestWait for one, then answers the
	// connection at once and closes it, which may reset it.
	refuseDrainers = 32
	// refuseRequestWait is how long a refused connection is given to
	// start its request: a client sends it as soon as it is connected,
	// which the server sees within a round trip of the accept, so this
	// bounds how long an idle connection holds a drainer, and how long
	// the accept loop waits for a drainer when all are busy.
	refuseRequestWait = 250 * time.Millisecond
	// refuseWait is how long a refused connection is given to finish
	// sending its request after the answer: as long as a lingering close.
	refuseWait = lingerTimeout
	// refuseWriteTimeout bounds writing the 503 on the accept loop when
	// no drainer is free. A new connection's empty send buffer takes the
	// 300 bytes at once: the deadline only makes sure a stalled write
	// cannot hold up accepting for long. It must outlast a scheduling
	// delay between setting it and writing, which on a loaded host (CI
	// with the race detector) exceeded 10 ms and lost the answer.
	refuseWriteTimeout = 250 * time.Millisecond

	// ConnsBeyondMax is how many connections past MAX_CONNS the server
	// may hold open at once: those being refused gently, and the one the
	// accept loop holds while it waits for a drainer. Each is a file
	// descriptor, which the open-file reserve must count
	// (internal/fdlimit).
	ConnsBeyondMax = refuseDrainers + 1

	// lingerTimeout bounds a lingering close (lingerOnClose): nginx's
	// lingering_timeout. A client that writes its whole body before it
	// reads has sent it by then over any link worth serving, and the
	// connection keeps its MAX_CONNS place meanwhile.
	lingerTimeout = 5 * time.Second
	// lingerBodies × MAX_BODY_BYTES, at least lingerMinBytes, bounds what
	// a lingering close reads and discards: an oversize body many times
	// the limit still gets its 413 (4 MiB bodies against 1 MiB are
	// tested), while a client streaming without end is cut off after a
	// bounded amount of bandwidth.
	lingerBodies   = 8
	lingerMinBytes = 1 << 20
)

// How a lingering close ended, the label of fastingest_lingering_closes_total.
const (
	lingerEOF   = iota // the client closed its side: it has read the answer
	lingerLimit        // lingerTimeout or the byte bound passed: the close may reset
	lingerError        // a read failed, typically a reset by the client
	numLingerEnds
)

var lingerEndLabels = [numLingerEnds]string{"eof", "limit", "error"}

// edge holds a Server's connection counts, shared by every listener it
// serves.
type edge struct {
	maxConns    int64
	lingerBytes int64 // see lingerBodies
	refuseBytes int64 // most a gently refused connection is drained of: its headers and what a lingering close reads
	busy        []byte

	// drainers holds a token per refuseGently goroutine.
	drainers chan struct{}
	// backoffMin and backoffMax are acceptBackoffMin and acceptBackoffMax;
	// tests lengthen them.
	backoffMin, backoffMax time.Duration

	log       *slog.Logger
	acceptLog *ratelog.Limiter // one "accept failed" line per interval
	refuseLog *ratelog.Limiter // one "connection refused" line per interval

	open         atomic.Int64 // connections accepted and not yet closed, lingering ones included
	acceptErrors atomic.Uint64
	refused      atomic.Uint64
	lingered     [numLingerEnds]atomic.Uint64
}

// newEdge builds the edge for cfg, whose defaults are set, and registers
// its metrics in set.
func newEdge(cfg Config, log *slog.Logger, set *metrics.Set) *edge {
	e := &edge{
		maxConns:    int64(cfg.MaxConns),
		lingerBytes: max(lingerBodies*int64(cfg.MaxBodyBytes), lingerMinBytes),
		// As much as a lingering close reads, and the request's headers:
		// a refused client that writes its whole body first still reads
		// the 503 rather than a reset.
		refuseBytes: int64(cfg.MaxHeaderBytes) + max(lingerBodies*int64(cfg.MaxBodyBytes), lingerMinBytes),
		busy:        busyResponse(cfg.MaxConns),
		drainers:    make(chan struct{}, refuseDrainers),
		backoffMin:  acceptBackoffMin,
		backoffMax:  acceptBackoffMax,
		log:         log,
		acceptLog:   ratelog.New(10 * time.Second),
		refuseLog:   ratelog.New(10 * time.Second),
	}
	set.RegisterMetricsWriter(e.writeMetrics)
	return e
}

// busyResponse is the answer to a connection past MAX_CONNS: a 503 like
// every other, in JSON with Retry-After, and Connection: close.
func busyResponse(maxConns int) []byte {
	body := errorBody("too many connections: " + strconv.Itoa(maxConns) +
		" are open, the most the server serves at once (MAX_CONNS); retry in a second")
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Server: fastingest\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		"\r\n" + string(body))
}

func (e *edge) writeMetrics(w io.Writer) {
	fmt.Fprintf(w, "# HELP fastingest_connections_open Connections open now, those being closed gently included.\n"+
		"# TYPE fastingest_connections_open gauge\nfastingest_connections_open %d\n", e.open.Load())
	fmt.Fprintf(w, "# HELP fastingest_connections_max Most connections served at once: MAX_CONNS, or less when lowered to fit the open-file limit.\n"+
		"# TYPE fastingest_connections_max gauge\nfastingest_connections_max %d\n", e.maxConns)
	fmt.Fprintf(w, "# HELP fastingest_connections_rejected_total Connections refused past MAX_CONNS: answered 503 on HTTP, closed on HTTPS.\n"+
		"# TYPE fastingest_connections_rejected_total counter\nfastingest_connections_rejected_total %d\n", e.refused.Load())
	fmt.Fprintf(w, "# HELP fastingest_accept_errors_total Temporary errors accepting a connection (too many open files, no buffers, ...), each retried after a backoff.\n"+
		"# TYPE fastingest_accept_errors_total counter\nfastingest_accept_errors_total %d\n", e.acceptErrors.Load())
	fmt.Fprint(w, "# HELP fastingest_lingering_closes_total Connections closed after an error answer by half-closing and discarding what the client still sent, by how that ended: eof (the client closed), limit (the time or byte bound passed), error.\n"+
		"# TYPE fastingest_lingering_closes_total counter\n")
	for i, label := range lingerEndLabels {
		fmt.Fprintf(w, "fastingest_lingering_closes_total{end=%q} %d\n", label, e.lingered[i].Load())
	}
}

// edgeListener accepts connections for fasthttp: it retries temporary
// errors, and refuses connections past MAX_CONNS itself.
type edgeListener struct {
	net.Listener
	e *edge
	// tls: a TLS listener wraps this one, so a refused connection gets no
	// HTTP answer: none can be spoken before a handshake.
	tls bool

	done      chan struct{} // closed by Close: ends a backoff wait
	closeOnce sync.Once
}

// listen wraps ln; tls says a TLS listener will wrap the result.
func (e *edge) listen(ln net.Listener, tls bool) *edgeListener {
	return &edgeListener{Listener: ln, e: e, tls: tls, done: make(chan struct{})}
}

// Close closes the listener, ending an Accept waiting after an error at
// once: Shutdown stays prompt. Only the first call closes; a listener
// closed before reports no error, so that fasthttp's Shutdown reports
// none for a listener the server's Shutdown closed first.
func (l *edgeListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil // closed before: there is nothing to report
	}
	return err
}

// Accept returns the next connection within MAX_CONNS. It refuses those
// past it, and retries temporary errors after a backoff, counted and logged
// at most once per interval: fasthttp stops serving on any accept error
// but a timeout, and "too many open files" would otherwise stop the server.
// After Close it returns an error wrapping net.ErrClosed, which fasthttp's
// Serve takes for the end.
func (l *edgeListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if l.closed() {
				return nil, l.errClosed()
			}
			if !temporaryAcceptError(err) {
				return nil, err
			}
			delay = min(max(2*delay, l.e.backoffMin), l.e.backoffMax)
			l.e.acceptFailed(err, delay)
			if !l.wait(delay) {
				return nil, l.errClosed()
			}
			continue
		}
		delay = 0
		if l.e.open.Add(1) > l.e.maxConns {
			l.e.open.Add(-1)
			l.e.refuse(c, l.tls || isTLS(c), l.done)
			continue
		}
		return &edgeConn{Conn: c, e: l.e, sniff: !l.tls && !isTLS(c), atStart: true}, nil
	}
}

func (l *edgeListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *edgeListener) errClosed() error {
	return &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
}

// wait waits for d, or until Close; it reports whether d passed.
func (l *edgeListener) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// temporaryAcceptError reports whether accept may succeed if tried again:
// the process or the system is out of descriptors or memory for now, a
// connection failed before it was accepted (accept(2) passes on its
// pending network error), or a timeout.
func temporaryAcceptError(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR,
			syscall.ECONNABORTED, syscall.EPROTO, syscall.ENETDOWN, syscall.ENOPROTOOPT, syscall.EHOSTDOWN,
			syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH:
			return true
		}
	}
	return isTimeout(err)
}

// isTimeout reports whether err is a timeout. Not net.Error: some
// listeners' errors (fasthttputil's) only have Timeout.
func isTimeout(err error) bool {
	var timeout interface{ Timeout() bool }
	return errors.As(err, &timeout) && timeout.Timeout()
}

// isTLS reports whether c is a TLS connection: a TLS listener under the
// edge (a caller's own), so that no plain HTTP may be written to it.
func isTLS(c net.Conn) bool {
	_, ok := c.(interface{ Handshake() error })
	return ok
}

func (e *edge) acceptFailed(err error, retry time.Duration) {
	e.acceptErrors.Add(1)
	ok, suppressed := e.acceptLog.Allow()
	if !ok {
		return
	}
	msg := "cannot accept a connection; retrying"
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		msg = "cannot accept a connection: out of file descriptors; retrying. Raise the open-file limit (LimitNOFILE=) or lower MAX_CONNS"
	}
	e.log.Warn(msg, "err", err, "retry_in", retry.String(), "suppressed_since_last", suppressed)
}

// refuse answers a connection past MAX_CONNS and closes it; on TLS it only
// closes it. The answer waits for the request in one of a bounded number
// of goroutines; with all of them busy past refuseRequestWait, it is
// written at once under a short deadline. Once done (the listener's) is
// closed, a connection still waiting for a drainer is closed at once, so
// that Shutdown does not wait on it.
func (e *edge) refuse(c net.Conn, tls bool, done <-chan struct{}) {
	e.refused.Add(1)
	if ok, suppressed := e.refuseLog.Allow(); ok {
		e.log.Warn("connection refused with 503: MAX_CONNS connections are open; raise MAX_CONNS if the host has room for more",
			"max_conns", e.maxConns, "tls", tls, "remote", c.RemoteAddr().String(), "suppressed_since_last", suppressed)
	}
	if tls {
		_ = c.Close()
		return
	}
	select {
	case e.drainers <- struct{}{}:
		go e.refuseGently(c)
		return
	default:
	}
	// Every drainer is busy: wait a little for one rather than answer
	// before the request, which a client may drop as a stale answer.
	// Accepting pauses meanwhile: the kernel's backlog holds the next
	// connections, and a place freed within MAX_CONNS meanwhile is taken
	// by the next of them.
	wait := time.NewTimer(refuseRequestWait)
	defer wait.Stop()
	select {
	case e.drainers <- struct{}{}:
		go e.refuseGently(c)
	case <-done:
		_ = c.Close()
	case <-wait.C:
		_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		_, _ = c.Write(e.busy)
		_ = c.Close()
	}
}

// refuseGently waits for the request to begin, answers 503 and closes the
// connection gently (drainAndClose). The answer follows the request because
// a client that finds bytes on a connection before it wrote its request
// may take them for a stale answer and drop them (Go's net/http does:
// "Unsolicited response received on idle HTTP channel").
func (e *edge) refuseGently(c net.Conn) {
	defer func() { <-e.drainers }()
	_ = c.SetDeadline(time.Now().Add(refuseRequestWait))
	var first [1]byte
	if _, err := c.Read(first[:]); err != nil && !isTimeout(err) {
		_ = c.Close() // the client left
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(refuseWait))
	if _, err := c.Write(e.busy); err != nil {
		_ = c.Close()
		return
	}
	if _, ok := c.(closeWriter); !ok {
		_ = c.Close()
		return
	}
	drainAndClose(c, refuseWait, e.refuseBytes)
}

// closeWriter is a connection whose write side can be shut down alone:
// *net.TCPConn (and *tls.Conn, which sends close_notify).
type closeWriter interface {
	CloseWrite() error
}

// drainAndClose closes c gently, as nginx's lingering close and net/http's
// closeWriteAndWait do: it shuts down the write side, so that the client
// reads the answer and then EOF, reads and discards what the client still
// sends until it closes its side, for at most timeout and maxBytes, and
// then closes. A close with unread bytes in the receive buffer makes the
// kernel send a reset, and a reset can destroy the answer in the client's
// receive buffer before the client reads it, or fail the client's write
// (ECONNRESET, EPIPE) before it reads at all.
func drainAndClose(c net.Conn, timeout time.Duration, maxBytes int64) (end int) {
	defer c.Close()
	if err := c.(closeWriter).CloseWrite(); err != nil {
		return lingerError
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return lingerError
	}
	n, err := io.CopyN(io.Discard, c, maxBytes)
	switch {
	case errors.Is(err, io.EOF):
		return lingerEOF
	case err == nil && n == maxBytes, isTimeout(err):
		return lingerLimit
	default:
		return lingerError
	}
}

// edgeConn is a connection accepted within MAX_CONNS. It keeps its place
// until it is closed, lingering included.
type edgeConn struct {
	net.Conn
	e      *edge
	linger atomic.Bool // set by lingerOnClose
	closed atomic.Bool

	// The route of the request line the connection last began, sniffed
	// from the first read after each response (see Read), for requests
	// fasthttp refuses before the handler: by then it has forgotten the
	// line, and a 431 or a malformed header on POST / must be counted
	// under "/". Plain HTTP only: under TLS these bytes are ciphertext.
	// Read and Write run on the connection's one serving goroutine.
	sniff     bool
	atStart   bool // the next read begins a request
	lineRoute int
}

// Read reads from the connection, noting the route of a request line that
// begins the bytes read. A request pipelined behind another is not seen:
// its errors count under the route of the one before.
func (c *edgeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.atStart && n > 0 {
		c.atStart = false
		c.lineRoute = routeOfRequestLine(p[:n])
	}
	return n, err
}

// Write writes to the connection; after a response the next read begins
// a request.
func (c *edgeConn) Write(p []byte) (int, error) {
	c.atStart = c.sniff
	return c.Conn.Write(p)
}

// routeOfRequestLine returns the route named by the request line at the
// start of b ("METHOD SP target SP ..."), routeOther when there is none.
func routeOfRequestLine(b []byte) int {
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return routeOther
	}
	target := b[sp+1:]
	if end := bytes.IndexAny(target, " \r\n"); end >= 0 {
		target = target[:end]
	}
	return routeOf(target)
}

// sniffedRoute returns the route of the request line c last began, when c
// is a plain edge connection.
func sniffedRoute(c net.Conn) (int, bool) {
	ec, ok := c.(*edgeConn)
	if !ok || !ec.sniff {
		return routeOther, false
	}
	return ec.lineRoute, true
}

// Close closes the connection, gently when lingerOnClose marked it and it
// can be half-closed: then it returns at once, and the lingering goes on
// in a goroutine of its own (at most one per connection, so at most
// MAX_CONNS), so that no caller waits for it, fasthttp's worker or
// Shutdown's sweep of idle connections.
func (c *edgeConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if _, ok := c.Conn.(closeWriter); ok && c.linger.Load() {
		go c.e.lingerClose(c.Conn)
		return nil
	}
	err := c.Conn.Close()
	c.e.open.Add(-1)
	return err
}

func (e *edge) lingerClose(c net.Conn) {
	end := drainAndClose(c, lingerTimeout, e.lingerBytes)
	e.lingered[end].Add(1)
	e.open.Add(-1)
}

// waitClosed waits until every connection the edge accepted is closed,
// lingering ones included, or ctx ends.
func (e *edge) waitClosed(ctx context.Context) error {
	if e.open.Load() <= 0 {
		return nil
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for e.open.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// lingerOnClose marks c, a connection the server is about to close after an
// error answer while the client may still be sending a request body nobody
// will read, to be closed gently: its write side is shut down after the
// answer, and what the client still sends is read and discarded, for at
// most lingerTimeout (5 s) and 8 × MAX_BODY_BYTES (at least 1 MiB), before
// it is closed. Without it the close resets the connection, and a client
// that writes its whole body before reading (Python's http.client, curl
// without Expect, Go's net/http, Node) sees ECONNRESET or EPIPE instead of
// the answer, and a retrying client resends the same body forever.
//
// It is for connections the server closes: the caller's answer must say
// Connection: close. c may be a *tls.Conn over an edge connection; on any
// other connection it does nothing.
func lingerOnClose(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if ec, ok := c.(*edgeConn); ok {
		ec.linger.Store(true)
	}
}

// Package server is fastingest's HTTP layer: it reads a POSTed batch, has it
// decoded and validated, submits its parcels to the ingest queue and answers.
// It also serves the health endpoints and owns graceful shutdown of the
// listener.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/ratelog"
)

// Queue is what the server needs from the ingest side: somewhere to submit a
// request's parcels. *ingest.Dispatcher satisfies it.
type Queue interface {
	// ReserveBody reserves memory for the n body bytes b is about to
	// copy, waiting while the queue's requests hold too many; on error
	// the request is refused. Releasing b gives the reservation back.
	ReserveBody(b *ingest.Batch, n int) error
	// Submit queues every parcel of b, blocking while the queue is full,
	// or returns an error and queues none. b is the queue's from the
	// call on, whatever the outcome: the caller never releases it.
	Submit(received time.Time, b *ingest.Batch) error
	// SubmitAndWait queues like Submit and then waits, at most timeout,
	// until every parcel is stored (ACK=persisted). b is the queue's, as
	// with Submit.
	SubmitAndWait(received time.Time, b *ingest.Batch, timeout time.Duration) error
	// RefuseWaiting makes requests waiting for room in ReserveBody or
	// Submit, and any that would wait, return ingest.ErrClosed.
	RefuseWaiting()
}

// Ack says when a request's 202 goes out.
type Ack int

const (
	// AckEnqueued answers 202 once every parcel of the request is in the
	// task queue (the reference behaviour): fast, but a parcel still in
	// memory is lost if the process dies.
	AckEnqueued Ack = iota
	// AckPersisted answers 202 only once the sink has stored every parcel
	// of the request (written and fsynced to disk, acknowledged by
	// JetStream); otherwise 503, and the client retries.
	AckPersisted
)

// String returns the ACK setting's value for the mode.
func (a Ack) String() string {
	if a == AckPersisted {
		return "persisted"
	}
	return "enqueued"
}

// Config configures a Server. A zero timeout, MaxConns or MaxHeaderBytes
// takes its default (settings.go); New refuses any other value that the
// setting's Validate function refuses.
type Config struct {
	// MaxBodyBytes is the largest request body accepted (MAX_BODY_BYTES).
	MaxBodyBytes int
	// ReadTimeout bounds reading one whole request, body included, so a
	// slow client cannot hold a connection forever (READ_TIMEOUT).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response (WRITE_TIMEOUT).
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection may wait for its
	// next request (IDLE_TIMEOUT).
	IdleTimeout time.Duration
	// Ack says when a request is answered 202 (ACK).
	Ack Ack
	// AckTimeout bounds how long an AckPersisted request waits for its
	// parcels to be stored before it is answered 503 (ACK_TIMEOUT).
	AckTimeout time.Duration
	// SinkHealth, when set, reports whether the sink can store parcels:
	// while it returns an error, /readyz answers 503 and so does POST /,
	// taking nothing, rather than queueing parcels that cannot be written.
	SinkHealth func() error
	// QueueWait, when set with ReadyMaxQueueWait, reports how long
	// requests have recently waited for queue room
	// (ingest.Dispatcher.RecentQueueWait).
	QueueWait func() time.Duration
	// ReadyMaxQueueWait turns /readyz to 503 while QueueWait exceeds it
	// (READY_MAX_QUEUE_WAIT), so that a load balancer sends new traffic
	// elsewhere before clients here see 503s. Zero disables the check.
	ReadyMaxQueueWait time.Duration
	// MaxConns bounds the connections served at once (MAX_CONNS); more
	// are refused with 503 (edge.go).
	MaxConns int
	// MaxHeaderBytes bounds a request's line and headers
	// (MAX_HEADER_BYTES); larger get 431.
	MaxHeaderBytes int
	// AuthToken, when not empty, is the bearer token POST / and /metrics
	// require (AUTH_TOKEN); the health endpoints stay open.
	AuthToken string
	// MetricsPublic serves /metrics without the token (METRICS_PUBLIC).
	MetricsPublic bool
	// Metrics is where the server registers its metrics, and what
	// /metrics writes (with the process metrics). Nil: a private set.
	Metrics *metrics.Set
	// TLSConfig, when set, serves HTTPS: Serve wraps the listener it is
	// given in TLS, above the edge (edge.go), which counts, refuses and
	// closes the TCP connections underneath.
	TLSConfig *tls.Config
	// Logger receives errors and, at debug level, a line per parcel. Nil
	// discards everything.
	Logger *slog.Logger
}

// Server serves the fastingest HTTP API on top of fasthttp.
type Server struct {
	cfg   Config
	queue Queue
	log   *slog.Logger
	trace bool // log every parcel (LOG_LEVEL=debug)
	fast  *fasthttp.Server
	edge  *edge // accepts, counts, refuses and closes connections for fast

	// decode is (*ingest.Batch).DecodeFilled; tests replace it to
	// exercise panic recovery.
	decode func(b *ingest.Batch, body []byte) error

	draining atomic.Bool  // set by Shutdown: /readyz answers 503
	lastShed atomic.Int64 // Unix nanoseconds of the last request refused for want of queue room
	// shedWindow is how long a request refused for want of queue room
	// keeps /readyz at 503 (with ReadyMaxQueueWait set).
	shedWindow time.Duration
	unready    atomic.Bool // set by Unready: /readyz answers 503, POST / still served

	// mu orders Serve against Shutdown: fasthttp's Shutdown does nothing
	// for a listener its Serve has not registered yet, so Shutdown closes
	// the listeners itself, and a Serve called after Shutdown returns at
	// once. serving counts the Serve calls under way.
	mu        sync.Mutex
	listeners []net.Listener
	serving   sync.WaitGroup

	accepted      atomic.Uint64 // requests answered 202
	clientErrors  atomic.Uint64 // requests answered 4xx
	serverErrors  atomic.Uint64 // requests answered 5xx
	decoderPanics atomic.Uint64

	rejectLog *ratelog.Limiter // one "rejected request" line per interval
	panicLog  *ratelog.Limiter // one "decoder panicked" line per interval

	authToken []byte // AuthToken; empty: no authentication
	metrics   *serverMetrics

	// zstdDecoders lends zstd decoders (nil until first used), one per
	// zstd body being decoded: a bounded set, see zstdDecoderSlots.
	zstdDecoders chan *zstd.Decoder
}

// New builds a Server that submits parcels to queue. It warms the JSON
// decoder so that the first requests do not pay for compiling it.
func New(cfg Config, queue Queue) (*Server, error) {
	if err := ValidateMaxBodyBytes(cfg.MaxBodyBytes); err != nil {
		return nil, fmt.Errorf("server: MaxBodyBytes %d: %w", cfg.MaxBodyBytes, err)
	}
	if queue == nil {
		return nil, errors.New("server: a queue is required")
	}
	if err := ingest.WarmDecoder(); err != nil {
		return nil, fmt.Errorf("server: cannot warm the decoder: %w", err)
	}
	if err := setDefaults(&cfg); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		queue:     queue,
		log:       log,
		trace:     log.Enabled(context.Background(), slog.LevelDebug),
		decode:    (*ingest.Batch).DecodeFilled,
		rejectLog: ratelog.New(10 * time.Second),
		panicLog:  ratelog.New(10 * time.Second),
		authToken: []byte(cfg.AuthToken),

		shedWindow: 5 * time.Second,
	}
	s.metrics = newServerMetrics(cfg.Metrics, s)
	s.edge = newEdge(cfg, log, cfg.Metrics)
	s.zstdDecoders = make(chan *zstd.Decoder, zstdDecoderSlots())
	for range cap(s.zstdDecoders) {
		s.zstdDecoders <- nil // made on first use
	}
	s.fast = &fasthttp.Server{
		Handler:       s.handle,
		ErrorHandler:  s.handleParseError,
		ExpectHandler: s.expectContinue,
		// The body is read by the handler, once the request is
		// authorized and its bytes reserved (see ingest).
		StreamRequestBody: true,
		Name:              "fastingest",
		// With StreamRequestBody this is only how much of the body
		// fasthttp reads ahead before the handler runs (the handler
		// enforces MaxBodyBytes): one byte, so that a connection that
		// declares a large body holds no buffer for it before the
		// request is authorized. 0 would mean fasthttp's 4 MiB default.
		MaxRequestBodySize: 1,
		// The edge enforces MaxConns and answers past it like every
		// other 503; fasthttp's own limit, which answers in plain text,
		// must never be reached. A worker is free again a moment after
		// its connection's Close, hence the room.
		Concurrency: 2 * cfg.MaxConns,
		// fasthttp reads a request's line and headers into this buffer
		// and answers 431 when they do not fit.
		ReadBufferSize:               cfg.MaxHeaderBytes,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		DisablePreParseMultipartForm: true,
		// Parse errors would otherwise quote the raw request, which
		// can hold an Authorization header, into logs and 400 bodies.
		SecureErrorLogMessage: true,
		NoDefaultContentType:  true,
		Logger:                fasthttpLogger{log: log, limit: ratelog.New(10 * time.Second)},
	}
	return s, nil
}

// setDefaults gives each zero field of cfg its default (settings.go) and
// checks the others with the validator of their setting.
func setDefaults(cfg *Config) error {
	for _, f := range []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"ReadTimeout", &cfg.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &cfg.WriteTimeout, DefaultWriteTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
		{"AckTimeout", &cfg.AckTimeout, DefaultAckTimeout},
	} {
		if *f.d == 0 {
			*f.d = f.def
		} else if err := ValidateTimeout(*f.d); err != nil {
			return fmt.Errorf("server: %s %v: %w", f.name, *f.d, err)
		}
	}
	if err := ValidateReadyMaxQueueWait(cfg.ReadyMaxQueueWait); err != nil {
		return fmt.Errorf("server: ReadyMaxQueueWait %v: %w", cfg.ReadyMaxQueueWait, err)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	} else if err := ValidateMaxConns(cfg.MaxConns); err != nil {
		return fmt.Errorf("server: MaxConns %d: %w", cfg.MaxConns, err)
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	} else if err := ValidateMaxHeaderBytes(cfg.MaxHeaderBytes); err != nil {
		return fmt.Errorf("server: MaxHeaderBytes %d: %w", cfg.MaxHeaderBytes, err)
	}
	if err := ValidateAuthToken(cfg.AuthToken); err != nil {
		return fmt.Errorf("server: AuthToken: %w", err)
	}
	return nil
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// Shutdown and the listener's error otherwise. Temporary accept errors,
// such as too many open files, are retried (edge.go).
func (s *Server) Serve(ln net.Listener) error {
	ln = s.edge.listen(ln, s.cfg.TLSConfig != nil)
	if s.cfg.TLSConfig != nil {
		ln = tls.NewListener(ln, s.cfg.TLSConfig)
	}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return ln.Close()
	}
	s.listeners = append(s.listeners, ln)
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	err := s.fast.Serve(ln)
	if s.draining.Load() {
		return nil
	}
	return err
}

// Unready turns /readyz to 503 while the server goes on serving: the first
// step of a graceful shutdown behind a load balancer, which stops sending
// new requests once its health check fails (DRAIN_DELAY), before Shutdown
// closes the listener.
func (s *Server) Unready() {
	s.unready.Store(true)
}

// Shutdown turns /readyz to 503, closes the listener, closes idle
// connections and waits for requests in progress to finish (including those
// waiting for queue room), or for ctx to end. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	listeners := s.listeners
	s.mu.Unlock()
	// Close the listeners first, fasthttp's registered or not, and let
	// the accept loops return: fasthttp counts each as an open connection
	// and, finding one, checks again only 100 ms later, so every shutdown
	// would take that long. An edge listener closes once; fasthttp's
	// closing it again is a no-op.
	for _, ln := range listeners {
		_ = ln.Close()
	}
	s.awaitServeReturned(ctx)
	err := s.fast.ShutdownWithContext(ctx)
	if err != nil {
		// The deadline passed with requests in progress. Those waiting
		// for queue room (ENQUEUE_TIMEOUT=0 waits without end) are
		// refused now, and given a moment to send their 503: the
		// process is about to exit, and a dropped connection would
		// leave the client guessing.
		s.queue.RefuseWaiting()
		grace, cancel := context.WithTimeout(context.Background(), refuseGrace)
		defer cancel()
		_ = s.fast.ShutdownWithContext(grace)
		return err
	}
	// Connections closing gently after an error answer (lingerOnClose)
	// are still open: once the process exits, the kernel would reset
	// them, and their clients could lose the answer.
	return s.edge.waitClosed(ctx)
}

// awaitServeReturned waits until every Serve call has returned, or ctx
// ends.
func (s *Server) awaitServeReturned(ctx context.Context) {
	returned := make(chan struct{})
	go func() {
		s.serving.Wait()
		close(returned)
	}()
	select {
	case <-returned:
	case <-ctx.Done():
	}
}

// refuseGrace is how long Shutdown waits, once its deadline has passed,
// for the requests it refused to be answered.
const refuseGrace = time.Second

// Stats counts the answers to ingestion requests: those to POST / (any
// method), and requests fasthttp could not parse, which are not routed.
// Health probes, metrics scrapes and unknown paths are not counted here;
// the per-path request counters of /metrics count every request.
type Stats struct {
	Accepted      uint64 // answered 202
	ClientErrors  uint64 // answered 4xx
	ServerErrors  uint64 // answered 5xx
	DecoderPanics uint64 // decoder panics recovered (each also a 500)
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted:      s.accepted.Load(),
		ClientErrors:  s.clientErrors.Load(),
		ServerErrors:  s.serverErrors.Load(),
		DecoderPanics: s.decoderPanics.Load(),
	}
}

// handle routes a request and turns the error its handler returns, if any,
// into a response.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	route := routeOf(ctx.Request.Header.RequestURI())
	err := checkVersion(&ctx.Request.Header)
	if err == nil {
		switch route {
		case routeIngest:
			err = s.ingest(ctx)
		case routeHealthz:
			err = s.health(ctx, true)
		case routeReadyz:
			err = s.ready(ctx)
		case routeMetrics:
			if !s.cfg.MetricsPublic {
				err = s.authorize(ctx)
			}
			if err == nil {
				err = s.serveMetrics(ctx)
			}
		default:
			err = errNotFound
		}
	}
	if err != nil {
		s.refuse(ctx, route, err)
	}
	s.metrics.observe(ctx, route)
}

// refuse answers a request with err. An ingestion request is counted as
// refused, and its connection, if the server closes it, is closed gently:
// the client may still be sending a body nobody will read, and a close with
// unread bytes would reset the connection before the client reads why
// (lingerOnClose).
func (s *Server) refuse(ctx *fasthttp.RequestCtx, route int, err error) {
	s.writeError(ctx, err)
	// Not health probes, scrapes or unknown paths: a load balancer's 503
	// probes would read as failed ingestion.
	if route != routeIngest {
		return
	}
	lingerOnClose(ctx.Conn())
	s.countRefused(ctx.Response.StatusCode())
	if s.metrics.shed(err) == shedQueueFull {
		s.lastShed.Store(time.Now().UnixNano())
	}
}

// routeOf maps a request-target to its route: only the exact raw paths are
// routes, with any query string. fasthttp's normalized path would serve
// /metrics for /%6detrics, //metrics or /a/../metrics, bypassing a proxy's
// rule on the literal path; those are 404 here, as is an absolute-form
// target.
func routeOf(uri []byte) int {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	switch string(uri) { // no allocation: the compiler compares in place
	case "/":
		return routeIngest
	case "/healthz":
		return routeHealthz
	case "/readyz":
		return routeReadyz
	case "/metrics":
		return routeMetrics
	}
	return routeOther
}

// errVersion is the 505 for a request line with a version other than
// HTTP/1.0 or HTTP/1.1 (fasthttp reads any HTTP/d.d as 1.0).
var errVersion = &httpError{status: fasthttp.StatusHTTPVersionNotSupported,
	msg: "HTTP version not supported: use HTTP/1.1 or HTTP/1.0"}

func checkVersion(h *fasthttp.RequestHeader) error {
	if h.IsHTTP11() || string(h.Protocol()) == "HTTP/1.0" {
		return nil
	}
	return errVersion
}

// checkIngest refuses a POST / that fastingest would refuse whatever its
// body: unauthorized, not POST, a content type or coding it cannot read, a
// Content-Length over MAX_BODY_BYTES, or a sink that cannot store now. It
// runs before any of the body is read, and before a 100 Continue
// (expectContinue). It returns how to read the body.
func (s *Server) checkIngest(ctx *fasthttp.RequestCtx) (bodyFormat, error) {
	if err := s.authorize(ctx); err != nil {
		return bodyFormat{}, err
	}
	if !ctx.IsPost() {
		return bodyFormat{}, errMethodNotAllowed("POST")
	}
	format, err := checkContentHeaders(&ctx.Request.Header)
	if err != nil {
		return format, err
	}
	if ctx.Request.Header.ContentLength() > s.cfg.MaxBodyBytes {
		return format, errBodyOverLimit(s.cfg.MaxBodyBytes)
	}
	return format, s.sinkHealth()
}

// expectContinue answers a request that sent Expect: 100-continue and
// waits before sending its body (fasthttp's ExpectHandler): 100 only for a
// POST / that checkIngest lets through, so that a client never uploads a
// body that will be refused; any other request gets its final answer now,
// from the handler, and the connection is closed after it.
func (s *Server) expectContinue(ctx *fasthttp.RequestCtx) int {
	if routeOf(ctx.Request.Header.RequestURI()) == routeIngest && checkVersion(&ctx.Request.Header) == nil {
		if _, err := s.checkIngest(ctx); err == nil {
			return fasthttp.StatusContinue
		}
	}
	s.handle(ctx) // refuses without reading the body
	// The client may send its body anyway once it tires of waiting.
	lingerOnClose(ctx.Conn())
	return ctx.Response.StatusCode()
}

// ingest serves POST /: decode and validate the whole body, queue every
// parcel, answer 202 {"accepted":N}.
func (s *Server) ingest(ctx *fasthttp.RequestCtx) error {
	format, err := s.checkIngest(ctx)
	if err != nil {
		return err
	}
	b := ingest.AcquireBatch()
	// Memory for the body first, while the connection holds only
	// fasthttp's buffers: under overload requests wait here, before
	// their bodies are read, so that waiting for memory also bounds it.
	if err := s.queue.ReserveBody(b, s.bodyBound(ctx.Request.Header.ContentLength(), format)); err != nil {
		ingest.ReleaseBatch(b)
		return err
	}
	s.renewReadDeadline(ctx, b)
	if err := s.decodeBody(b, &ctx.Request, format); err != nil {
		ingest.ReleaseBatch(b)
		return err
	}
	n := len(b.Parcels) // b is not ours to read once submitted
	if s.trace {
		for i := range b.Parcels {
			s.log.Debug("Handler: Received Parcel " + b.Parcels[i].ID)
		}
	}
	if err := s.submit(ctx.Time(), b); err != nil {
		return err
	}
	s.accepted.Add(1)
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	var buf [32]byte
	body := append(buf[:0], `{"accepted":`...)
	body = strconv.AppendInt(body, int64(n), 10)
	body = append(body, '}')
	ctx.SetBody(body)
	return nil
}

// renewReadDeadline gives the body READ_TIMEOUT from now when the request
// waited for memory: READ_TIMEOUT bounds a slow client, and the wait was
// the server's. The reservation measured its own wait, so the request path
// reads no clock for this.
func (s *Server) renewReadDeadline(ctx *fasthttp.RequestCtx, b *ingest.Batch) {
	if b.BodyWait() > time.Second {
		_ = ctx.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	}
}

// submit hands b to the queue as the ACK mode asks; b is the queue's
// whatever the outcome.
func (s *Server) submit(received time.Time, b *ingest.Batch) error {
	if s.cfg.Ack == AckPersisted {
		return s.queue.SubmitAndWait(received, b, s.cfg.AckTimeout)
	}
	return s.queue.Submit(received, b)
}

// sinkHealth returns a 503 error while the sink cannot store parcels.
func (s *Server) sinkHealth() error {
	if s.cfg.SinkHealth == nil {
		return nil
	}
	if err := s.cfg.SinkHealth(); err != nil {
		return fmt.Errorf("%w (%v); nothing was accepted, retry later", errSinkUnavailable, err)
	}
	return nil
}

// ready answers /readyz: 503 while shutting down (from Unready on), while
// the sink cannot store, or while requests have recently waited for queue
// room longer than READY_MAX_QUEUE_WAIT, so that a load balancer sends new
// traffic elsewhere.
func (s *Server) ready(ctx *fasthttp.RequestCtx) error {
	if s.draining.Load() || s.unready.Load() {
		return s.health(ctx, false)
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		return errMethodNotAllowed("GET, HEAD")
	}
	if err := s.sinkHealth(); err != nil {
		return err
	}
	if max := s.cfg.ReadyMaxQueueWait; max > 0 {
		// A request refused for want of room waited longer than it
		// could (ENQUEUE_TIMEOUT, which may be shorter than max): it
		// counts as a wait over the threshold.
		if last := s.lastShed.Load(); last != 0 && time.Since(time.Unix(0, last)) < s.shedWindow {
			return errShedRecently
		}
		if s.cfg.QueueWait != nil {
			if waited := s.cfg.QueueWait(); waited > max {
				return &httpError{status: fasthttp.StatusServiceUnavailable,
					msg: "requests wait " + waited.Round(time.Millisecond).String() +
						" for queue room, more than READY_MAX_QUEUE_WAIT " + max.String() + "; send new traffic elsewhere"}
			}
		}
	}
	return s.health(ctx, true)
}

var errShedRecently = &httpError{status: fasthttp.StatusServiceUnavailable,
	msg: "requests were refused for want of queue room in the last seconds (ENQUEUE_TIMEOUT); send new traffic elsewhere"}

// health answers a health probe: 200 when ok, 503 otherwise.
func (s *Server) health(ctx *fasthttp.RequestCtx, ok bool) error {
	if !ctx.IsGet() && !ctx.IsHead() {
		return errMethodNotAllowed("GET, HEAD")
	}
	ctx.SetContentType("application/json")
	if !ok {
		return errShuttingDown
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString(`{"status":"ok"}`)
	return nil
}

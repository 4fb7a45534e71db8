package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/ratelog"
)

// httpError is an error that carries the status it is answered with.
type httpError struct {
	status    int
	msg       string
	allow     string // Allow header for 405
	challenge string // WWW-Authenticate header for 401
	// acceptEncoding sends Accept-Encoding with the codings the server
	// reads, as RFC 9110 §15.5.16 asks of a 415 caused by the coding.
	acceptEncoding bool
}

func (e *httpError) Error() string { return e.msg }

var (
	errNotFound     = &httpError{status: fasthttp.StatusNotFound, msg: "not found: POST parcels to /"}
	errDecoderPanic = &httpError{status: fasthttp.StatusInternalServerError, msg: "internal error while decoding the body; the request was not accepted, retry it"}
	errShuttingDown = &httpError{status: fasthttp.StatusServiceUnavailable, msg: "shutting down, not accepting parcels"}
	// errSinkUnavailable is wrapped with the sink's reason.
	errSinkUnavailable = &httpError{status: fasthttp.StatusServiceUnavailable, msg: "the sink cannot store parcels now"}
)

func errMethodNotAllowed(allow string) error {
	return &httpError{status: fasthttp.StatusMethodNotAllowed, msg: "method not allowed: use " + allow, allow: allow}
}

// statusOf is the one place that maps an error to a status and a message
// for the client.
func statusOf(err error) (int, *httpError) {
	var he *httpError
	var de *ingest.DecodeError
	var ns *ingest.NotStoredError
	var full *ingest.QueueFullError
	var large *ingest.TooLargeError
	switch {
	case errors.As(err, &he):
		if err != error(he) { // wrapped with details: the message is the whole chain
			return he.status, &httpError{msg: err.Error(), allow: he.allow, challenge: he.challenge, acceptEncoding: he.acceptEncoding}
		}
		return he.status, he
	case errors.As(err, &de):
		return fasthttp.StatusBadRequest, &httpError{msg: de.Msg}
	case errors.Is(err, ingest.ErrClosed):
		return errShuttingDown.status, errShuttingDown
	case errors.As(err, &full):
		return fasthttp.StatusServiceUnavailable, &httpError{
			msg: full.Error() + " (ENQUEUE_TIMEOUT): nothing of the request was queued; retry later"}
	case errors.As(err, &large) && large.Bytes > 0:
		return fasthttp.StatusRequestEntityTooLarge, &httpError{
			msg: "the body's " + strconv.Itoa(large.Bytes) + " bytes are more than the queue can ever hold (MAX_QUEUE_BYTES " +
				strconv.FormatInt(large.MaxBytes, 10) + "); send smaller batches"}
	case errors.As(err, &large):
		limit := "MAX_QUEUE "
		if large.Shards > 1 {
			limit = "MAX_QUEUE / SHARDS: "
		}
		limit += strconv.Itoa(large.MaxQueue)
		return fasthttp.StatusRequestEntityTooLarge, &httpError{
			msg: "the request has " + strconv.Itoa(large.Parcels) + " parcels, more than the queue can ever hold (" +
				limit + "); send smaller batches"}
	case errors.As(err, &ns):
		return fasthttp.StatusServiceUnavailable, &httpError{
			msg: ns.Error() + " (ACK=persisted); retry the request: its parcels may then be stored twice, never lost"}
	default:
		return fasthttp.StatusInternalServerError, &httpError{msg: "internal error"}
	}
}

// writeError answers a request with err's status and {"error":"..."}, and
// logs it at most once per interval.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	status, he := statusOf(err)
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	if he.allow != "" {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, he.allow)
	}
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	}
	if he.challenge != "" {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, he.challenge)
	}
	if he.acceptEncoding {
		ctx.Response.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip, zstd, deflate")
	}
	ctx.SetBody(errorBody(he.msg))

	if status == fasthttp.StatusNotFound || errors.Is(err, errDecoderPanic) {
		return // not worth a line: scanners; panics have their own
	}
	if ok, suppressed := s.rejectLog.Allow(); ok {
		s.log.Warn("rejected request", "status", status, "error", he.msg,
			"remote", ctx.RemoteAddr().String(), "suppressed_since_last", suppressed)
	}
}

// countRefused counts an ingestion request answered with an error status
// in Stats.
func (s *Server) countRefused(status int) {
	if status >= 500 {
		s.serverErrors.Add(1)
	} else {
		s.clientErrors.Add(1)
	}
}

// errorBody encodes {"error":msg}.
func errorBody(msg string) []byte {
	b, err := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	if err != nil { // cannot happen for a string; stay valid JSON anyway
		return []byte(`{"error":"internal error"}`)
	}
	return b
}

// handleParseError answers requests fasthttp could not read, with a fixed
// message for each kind of error (readErrorKind). fasthttp's errors quote
// what the client sent: header values, and for some (a request line without
// a version) the whole raw request, headers and body, whatever
// SecureErrorLogMessage says; a bearer token among them must reach neither
// the answer nor the log. Its default handler would also answer 400 for a
// body over MaxRequestBodySize, where the client needs to know the body was
// too large (413), not malformed.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	var plain tls.RecordHeaderError
	if errors.As(err, &plain) && plain.Conn != nil {
		// Plain HTTP sent to the TLS port: no TLS connection exists to
		// answer on, so say so in plain text, as net/http does, and
		// count it as nothing else: it never was a request.
		_, _ = io.WriteString(plain.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		return
	}
	kind := readErrorKind(err)
	switch kind {
	case kindBodyTooLarge:
		s.writeError(ctx, errBodyOverLimit(s.cfg.MaxBodyBytes))
	case kindHeadersTooLarge:
		s.writeError(ctx, &httpError{status: fasthttp.StatusRequestHeaderFieldsTooLarge,
			msg: "request headers too large: the request line and headers exceed MAX_HEADER_BYTES (" +
				strconv.Itoa(s.cfg.MaxHeaderBytes) + " bytes)"})
	case kindTimeout:
		s.writeError(ctx, errReadTimeout)
	case kindBrokenChunk:
		s.writeError(ctx, errBadChunk)
	case kindBadRequestLine:
		s.writeError(ctx, errBadRequestLine)
	case kindBadFraming:
		s.writeError(ctx, errBadFraming)
	default:
		s.writeError(ctx, errUnparsable)
	}
	switch kind {
	case kindTimeout, kindClosed:
		// Nothing more is coming, or not soon enough to wait for.
	default:
		// The rest of the request (headers, a body) is still unread:
		// closing now would reset the connection, and the client
		// might lose the answer before reading it.
		lingerOnClose(ctx.Conn())
	}
	s.countRefused(ctx.Response.StatusCode())
	s.metrics.observeUnparsed(ctx)
}

// The fixed answers to requests fasthttp could not read; none quotes the
// request.
var (
	errReadTimeout = &httpError{status: fasthttp.StatusRequestTimeout,
		msg: "timed out reading the request (READ_TIMEOUT)"}
	errBadChunk = &httpError{status: fasthttp.StatusBadRequest,
		msg: "cannot parse the HTTP request: its chunked body is malformed"}
	errBadRequestLine = &httpError{status: fasthttp.StatusBadRequest,
		msg: "cannot parse the HTTP request: its request line is malformed; send METHOD /path HTTP/1.1"}
	errBadFraming = &httpError{status: fasthttp.StatusBadRequest,
		msg: "cannot parse the HTTP request: its Content-Length or Transfer-Encoding is invalid, repeated or conflicting"}
	errUnparsable = &httpError{status: fasthttp.StatusBadRequest,
		msg: "cannot parse the HTTP request: its request line or a header is malformed " +
			"(header names are tokens; values hold no control characters such as CR or NUL)"}
)

// Kinds of errors fasthttp reports while reading a request, as
// readErrorKind tells them apart; the strings are what logs say.
const (
	kindBodyTooLarge    = "body_too_large"
	kindHeadersTooLarge = "headers_too_large"
	kindTimeout         = "timeout"
	kindBrokenChunk     = "broken_chunk"
	kindBadRequestLine  = "bad_request_line"
	kindBadFraming      = "bad_framing"
	kindClosed          = "connection_closed"
	kindTLS             = "tls"
	kindOther           = "other" // malformed headers among others: not told apart by type
)

// readErrorKind classifies an error fasthttp returned while reading or
// serving a request, by its type or sentinel alone, never by its text, which
// can quote the request.
func readErrorKind(err error) string {
	var small *fasthttp.ErrSmallBuffer
	var chunk fasthttp.ErrBrokenChunk
	// Not net.Error: some listeners' timeout errors (fasthttputil's) only
	// have Timeout, and that is all fasthttp itself checks.
	var timeout interface{ Timeout() bool }
	var record tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return kindBodyTooLarge
	case errors.As(err, &small):
		return kindHeadersTooLarge
	case errors.As(err, &timeout) && timeout.Timeout():
		return kindTimeout
	case errors.As(err, &chunk):
		return kindBrokenChunk
	case errors.Is(err, fasthttp.ErrMissingRequestMethod), errors.Is(err, fasthttp.ErrUnsupportedRequestMethod),
		errors.Is(err, fasthttp.ErrEmptyRequestURI), errors.Is(err, fasthttp.ErrExtraWhitespaceInRequestLine),
		errors.Is(err, fasthttp.ErrorInvalidURI):
		return kindBadRequestLine
	case errors.Is(err, fasthttp.ErrDuplicateContentLength), errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding),
		errors.Is(err, fasthttp.ErrNonNumericChars):
		return kindBadFraming
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return kindClosed
	case errors.As(err, &record), errors.As(err, &alert):
		return kindTLS
	}
	return kindOther
}

// checkContentHeaders says how to read the request body, or refuses one the
// server cannot read with a 415. Content-Type: JSON (an absent one is taken
// as JSON, as the reference client sends none) or NDJSON. Content-Encoding:
// at most one of gzip, deflate and zstd; "identity" entries change nothing
// and are skipped. Codings applied on top of one another ("deflate, gzip")
// are refused rather than undone in turn: no common client sends them, and
// each layer would need its own bounded buffer.
func checkContentHeaders(h *fasthttp.RequestHeader) (bodyFormat, error) {
	var f bodyFormat
	if ct := h.ContentType(); len(ct) > 0 {
		switch {
		case isJSONMediaType(ct):
		case isNDJSONMediaType(ct):
			f.ndjson = true
		default:
			return f, &httpError{status: fasthttp.StatusUnsupportedMediaType,
				msg: fmt.Sprintf("Content-Type %q is not JSON: send application/json, or application/x-ndjson for one parcel per line (curl -d sends a form type unless given -H 'Content-Type: application/json')", ct)}
		}
	}
	// Every Content-Encoding header, and every coding listed in each: not
	// only the first header, which may be empty while a later one names a
	// coding. A walk over the few headers a request has, rather than
	// PeekAll, which normalizes its key on every call: 16 against 45 ns.
	var first []byte
	for key, values := range h.All() {
		if len(key) != len(fasthttp.HeaderContentEncoding) || !bytes.EqualFold(key, strContentEncoding) {
			continue
		}
		for token := range bytes.SplitSeq(values, []byte(",")) {
			token = bytes.TrimSpace(token)
			if len(token) == 0 {
				continue
			}
			c, ok := parseCoding(token)
			switch {
			case !ok:
				return f, errUnsupportedCoding(token)
			case c == codingIdentity:
			case f.coding != codingIdentity:
				return f, errStackedCodings(first, token)
			default:
				f.coding, first = c, token
			}
		}
	}
	return f, nil
}

var strContentEncoding = []byte(fasthttp.HeaderContentEncoding)

func errUnsupportedCoding(token []byte) error {
	return &httpError{status: fasthttp.StatusUnsupportedMediaType, acceptEncoding: true,
		msg: fmt.Sprintf("unsupported Content-Encoding %q: send gzip, zstd, deflate or identity", token)}
}

func errStackedCodings(first, second []byte) error {
	return &httpError{status: fasthttp.StatusUnsupportedMediaType, acceptEncoding: true,
		msg: fmt.Sprintf("Content-Encoding applies %q then %q: only one coding is supported; compress the body once, with gzip, zstd or deflate", first, second)}
}

// errDecompressedTooLarge is the 413 for a body that inflates past
// MAX_BODY_BYTES.
func errDecompressedTooLarge(c coding, limit int) error {
	return &httpError{status: fasthttp.StatusRequestEntityTooLarge,
		msg: "decompressed body exceeds MAX_BODY_BYTES (" + strconv.Itoa(limit) +
			" bytes): the limit applies to the body after Content-Encoding " + c.String() + " is undone; send smaller batches"}
}

// errCorruptBody is the 400 for a body that is not valid data of its
// Content-Encoding.
func errCorruptBody(c coding, err error) error {
	switch {
	case errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF // the body ended before the compressed data did
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		// The decoder reports a frame window over its limit with either.
		err = fmt.Errorf("the zstd frame needs a window over %d MiB, more than RFC 9659 allows for HTTP", zstdMaxWindow>>20)
	}
	return &httpError{status: fasthttp.StatusBadRequest,
		msg: fmt.Sprintf("cannot decompress the body as Content-Encoding %s says: %v", c, err)}
}

// isJSONMediaType reports whether a Content-Type value names JSON:
// application/json or application/<something>+json, any parameters.
func isJSONMediaType(ct []byte) bool {
	sub, ok := applicationSubtype(ct)
	return ok && (bytes.EqualFold(sub, []byte("json")) ||
		(len(sub) > len("+json") && bytes.EqualFold(sub[len(sub)-len("+json"):], []byte("+json"))))
}

// isNDJSONMediaType reports whether a Content-Type value names
// newline-delimited JSON, any parameters: application/x-ndjson (the usual
// name, as in Elasticsearch's bulk API), application/ndjson (the same
// without x-) and application/jsonl (JSON Lines, the same format under
// another name). None is registered with IANA, so all three are taken.
func isNDJSONMediaType(ct []byte) bool {
	sub, ok := applicationSubtype(ct)
	return ok && (bytes.EqualFold(sub, []byte("x-ndjson")) ||
		bytes.EqualFold(sub, []byte("ndjson")) ||
		bytes.EqualFold(sub, []byte("jsonl")))
}

// applicationSubtype returns the subtype of an application/... media type,
// without parameters or spaces.
func applicationSubtype(ct []byte) ([]byte, bool) {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	const app = "application/"
	if len(ct) <= len(app) || !bytes.EqualFold(ct[:len(app)], []byte(app)) {
		return nil, false
	}
	return ct[len(app):], true
}

// fasthttpLogger routes fasthttp's own messages (connection errors and the
// like) to slog, at most one line per interval: a flood of broken
// connections must not flood the log. It never formats fasthttp's
// arguments: they include errors whose text quotes header values or the
// whole raw request, token included, which SecureErrorLogMessage does not
// prevent everywhere. The message is the format itself, a constant of
// fasthttp's, and each argument is reduced to what cannot carry the
// request's bytes: an error to its kind, a number to itself, an address to
// itself, anything else to its type.
type fasthttpLogger struct {
	log   interface{ Warn(string, ...any) }
	limit *ratelog.Limiter
}

// serveConnFormat is the format of fasthttp's line for a connection that
// ended with an error (workerpool.go): local and remote address, the error.
const serveConnFormat = "error when serving connection %q<->%q: %v"

func (l fasthttpLogger) Printf(format string, args ...any) {
	ok, suppressed := l.limit.Allow()
	if !ok {
		return
	}
	attrs := make([]any, 0, 2*len(args)+2)
	msg := format
	if format == serveConnFormat && len(args) == 3 {
		msg = "error when serving connection"
		attrs = append(attrs, "local", safeLogArg(args[0]), "remote", safeLogArg(args[1]), "error_kind", safeLogArg(args[2]))
	} else {
		for i, arg := range args {
			attrs = append(attrs, "arg"+strconv.Itoa(i), safeLogArg(arg))
		}
	}
	attrs = append(attrs, "suppressed_since_last", suppressed)
	l.log.Warn("fasthttp: "+msg, attrs...)
}

// safeLogArg returns what may be logged of one of fasthttp's arguments.
func safeLogArg(arg any) any {
	switch v := arg.(type) {
	case error:
		return readErrorKind(v)
	case net.Addr:
		return v.String()
	case int, int32, int64, uint, uint32, uint64, float64, bool, time.Duration:
		return v
	}
	return fmt.Sprintf("%T", arg) // the type, never the value
}

package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"

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
		return fasthttp.StatusRequestEntityTooLarge, &httpError{
			msg: "the request has " + strconv.Itoa(large.Parcels) + " parcels, more than the queue can ever hold (MAX_QUEUE " +
				strconv.Itoa(large.MaxQueue) + "); send smaller batches"}
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

// handleParseError answers requests fasthttp could not read. Its default
// handler answers 400 for a body over MaxRequestBodySize; the client needs to
// know the body was too large (413), not malformed.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	var plain tls.RecordHeaderError
	if errors.As(err, &plain) && plain.Conn != nil {
		// Plain HTTP sent to the TLS port: no TLS connection exists to
		// answer on, so say so in plain text, as net/http does, and
		// count it as nothing else: it never was a request.
		_, _ = io.WriteString(plain.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		return
	}
	defer func() {
		status := ctx.Response.StatusCode()
		s.countRefused(status)
		s.metrics.observeUnparsed(status)
	}()
	var small *fasthttp.ErrSmallBuffer
	// Not net.Error: some listeners' timeout errors (fasthttputil's) only
	// have Timeout, and that is all fasthttp itself checks.
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.writeError(ctx, &httpError{status: fasthttp.StatusRequestEntityTooLarge,
			msg: "body exceeds MAX_BODY_BYTES (" + strconv.Itoa(s.cfg.MaxBodyBytes) + " bytes); send smaller batches"})
	case errors.As(err, &small):
		s.writeError(ctx, &httpError{status: fasthttp.StatusRequestHeaderFieldsTooLarge, msg: "request headers too large"})
	case errors.As(err, &timeout) && timeout.Timeout():
		s.writeError(ctx, &httpError{status: fasthttp.StatusRequestTimeout, msg: "timed out reading the request"})
	default:
		s.writeError(ctx, &httpError{status: fasthttp.StatusBadRequest, msg: "cannot parse the HTTP request: " + err.Error()})
	}
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
// connections must not flood the log.
type fasthttpLogger struct {
	log   interface{ Warn(string, ...any) }
	limit *ratelog.Limiter
}

func (l fasthttpLogger) Printf(format string, args ...any) {
	if ok, suppressed := l.limit.Allow(); ok {
		l.log.Warn("fasthttp: "+fmt.Sprintf(format, args...), "suppressed_since_last", suppressed)
	}
}

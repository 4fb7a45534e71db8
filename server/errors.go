package server

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/ratelog"
)

// httpError is an error that carries the status it is answered with.
type httpError struct {
	status int
	msg    string
	allow  string // Allow header for 405
}

func (e *httpError) Error() string { return e.msg }

var (
	errNotFound     = &httpError{status: fasthttp.StatusNotFound, msg: "not found: POST parcels to /"}
	errDecoderPanic = &httpError{status: fasthttp.StatusInternalServerError, msg: "internal error while decoding the body; the request was not accepted, retry it"}
	errShuttingDown = &httpError{status: fasthttp.StatusServiceUnavailable, msg: "shutting down, not accepting parcels"}
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
	switch {
	case errors.As(err, &he):
		return he.status, he
	case errors.As(err, &de):
		return fasthttp.StatusBadRequest, &httpError{msg: de.Msg}
	case errors.Is(err, ingest.ErrClosed):
		return errShuttingDown.status, errShuttingDown
	case errors.As(err, &ns):
		return fasthttp.StatusServiceUnavailable, &httpError{
			msg: ns.Error() + " (ACK=persisted); retry the request: its parcels may then be stored twice, never lost"}
	default:
		return fasthttp.StatusInternalServerError, &httpError{msg: "internal error"}
	}
}

// writeError answers a request with err's status and {"error":"..."}, counts
// it, and logs it at most once per interval.
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
	ctx.SetBody(errorBody(he.msg))

	if status >= 500 {
		s.serverErrors.Add(1)
	} else {
		s.clientErrors.Add(1)
	}
	if status == fasthttp.StatusNotFound || errors.Is(err, errDecoderPanic) {
		return // not worth a line: scanners; panics have their own
	}
	if ok, suppressed := s.rejectLog.Allow(); ok {
		s.log.Warn("rejected request", "status", status, "error", he.msg,
			"remote", ctx.RemoteAddr().String(), "suppressed_since_last", suppressed)
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

// checkContentHeaders refuses bodies the decoder cannot read: a Content-Type
// that is not JSON (an absent one is taken as JSON, as the reference client
// sends none) and any Content-Encoding but identity.
func checkContentHeaders(h *fasthttp.RequestHeader) error {
	if ct := h.ContentType(); len(ct) > 0 && !isJSONMediaType(ct) {
		return &httpError{status: fasthttp.StatusUnsupportedMediaType,
			msg: fmt.Sprintf("Content-Type %q is not JSON: send application/json (curl -d sends a form type unless given -H 'Content-Type: application/json')", ct)}
	}
	if len(h.ContentEncoding()) == 0 {
		return nil // the usual case: no Content-Encoding header at all
	}
	// Every Content-Encoding header, and every coding listed in each.
	for _, values := range h.PeekAll(fasthttp.HeaderContentEncoding) {
		for coding := range bytes.SplitSeq(values, []byte(",")) {
			if coding = bytes.TrimSpace(coding); len(coding) > 0 && !bytes.EqualFold(coding, []byte("identity")) {
				return &httpError{status: fasthttp.StatusUnsupportedMediaType,
					msg: fmt.Sprintf("Content-Encoding %q is not supported: send the body uncompressed", coding)}
			}
		}
	}
	return nil
}

// isJSONMediaType reports whether a Content-Type value names JSON:
// application/json or application/<something>+json, any parameters.
func isJSONMediaType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	const app = "application/"
	if len(ct) <= len(app) || !bytes.EqualFold(ct[:len(app)], []byte(app)) {
		return false
	}
	sub := ct[len(app):]
	return bytes.EqualFold(sub, []byte("json")) ||
		(len(sub) > len("+json") && bytes.EqualFold(sub[len(sub)-len("+json"):], []byte("+json")))
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

package server

import (
	"bytes"
	"crypto/subtle"

	"github.com/valyala/fasthttp"
)

var (
	errNoToken = &httpError{status: fasthttp.StatusUnauthorized,
		msg: "authentication required: send the bearer token as Authorization: Bearer TOKEN", challenge: `Bearer realm="fastingest"`}
	errBadToken = &httpError{status: fasthttp.StatusUnauthorized,
		msg: "invalid bearer token", challenge: `Bearer realm="fastingest", error="invalid_token"`}
)

// authorize checks the request's bearer token when the server has one.
// The comparison takes the same time whatever the token's content, so that
// response times do not reveal how much of a guess was right (only its
// length can show).
func (s *Server) authorize(ctx *fasthttp.RequestCtx) error {
	if len(s.authToken) == 0 {
		return nil
	}
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(h) == 0 {
		return errNoToken
	}
	scheme, token, ok := bytes.Cut(bytes.TrimSpace(h), []byte(" "))
	if !ok || !asciiEqualFold(scheme, "bearer") {
		return errNoToken
	}
	if subtle.ConstantTimeCompare(bytes.TrimSpace(token), s.authToken) != 1 {
		return errBadToken
	}
	return nil
}

// asciiEqualFold reports whether b equals lower, a lower-case ASCII word,
// ignoring case: auth schemes are case-insensitive (RFC 9110).
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

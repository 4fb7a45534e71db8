package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/internal/ratelog"
	"github.com/fastingest/fastingest/internal/testutil"
)

// leakToken is the bearer token the tests below look for in answers and
// logs.
const leakToken = "s3cr3tT0kenValue"

// sendRaw writes raw to a new TCP connection to addr in one write and reads
// until the server closes the connection, which it does after every answer
// to a request it could not read: by then fasthttp has logged the
// connection's error too.
func sendRaw(t *testing.T, addr, raw string) []byte {
	t.Helper()
	conn := dialAndWrite(t, addr, raw)
	defer conn.Close()
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read until the server closes: %v (read %q)", err, answer)
	}
	return answer
}

// dialAndWrite connects to addr, with a deadline bounding the whole
// conversation, and writes raw in one write.
func dialAndWrite(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		conn.Close()
		t.Fatalf("SetDeadline: %v", err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		conn.Close()
		t.Fatalf("write: %v", err)
	}
	return conn
}

// parseAnswer reads the HTTP response in answer.
func parseAnswer(t *testing.T, answer []byte) *fasthttp.Response {
	t.Helper()
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(bytes.NewReader(answer))); err != nil {
		t.Fatalf("read response %q: %v", answer, err)
	}
	return resp
}

// checkFixedError checks that resp is status with the JSON body
// {"error":want}, and nothing else.
func checkFixedError(t *testing.T, resp *fasthttp.Response, status int, want string) {
	t.Helper()
	if got := resp.StatusCode(); got != status {
		t.Errorf("status: got %d, want %d", got, status)
	}
	if got := string(resp.Header.ContentType()); got != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", got)
	}
	var body map[string]string
	if err := json.Unmarshal(resp.Body(), &body); err != nil || len(body) != 1 {
		t.Fatalf("body %q: want {\"error\":\"...\"} (%v)", resp.Body(), err)
	}
	if got := body["error"]; got != want {
		t.Errorf("error: got %q, want %q", got, want)
	}
}

// TestParseErrorsDoNotLeakToken sends requests with a valid token that
// fasthttp cannot parse, each of which once quoted the token in the 400 and
// in two WARN lines: a CR inside the Authorization value (a token file with
// Windows line endings), a NUL after the token, an invalid header name after
// the token's header, and a request line without a version, which fasthttp
// answers by quoting the whole raw request, body included. Neither the
// answer nor the log at debug level may carry the token; the answer is the
// fixed JSON 400.
func TestParseErrorsDoNotLeakToken(t *testing.T) {
	t.Parallel()
	body := `{"Data":[],"note":"` + leakToken + `"}`
	tail := fmt.Sprintf("Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	tests := []struct {
		name, raw string
	}{
		{"CR inside the value", "POST / HTTP/1.1\r\nHost: fastingest.test\r\nAuthorization: Bearer " + leakToken + "\r\r\n" + tail},
		{"NUL after the token", "POST / HTTP/1.1\r\nHost: fastingest.test\r\nAuthorization: Bearer " + leakToken + "\x00\r\n" + tail},
		{"invalid header name after the token", "POST / HTTP/1.1\r\nHost: fastingest.test\r\nAuthorization: Bearer " + leakToken + "\r\nX(Bad): 1\r\n" + tail},
		{"request line without a version", "POST /\r\nHost: fastingest.test\r\nAuthorization: Bearer " + leakToken + "\r\n" + tail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A server per request: each logs its first rejection,
			// later ones in the interval are only counted.
			var logs testutil.SyncBuffer
			env := startTunedEnv(t, tunedOptions{tcp: true, server: Config{
				AuthToken: leakToken,
				Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}})
			answer := sendRaw(t, env.addr, tt.raw)
			if bytes.Contains(answer, []byte(leakToken)) {
				t.Errorf("answer quotes the token:\n%s", answer)
			}
			checkFixedError(t, parseAnswer(t, answer), fasthttp.StatusBadRequest, errUnparsable.msg)

			log := logs.String()
			if strings.Contains(log, leakToken) {
				t.Errorf("log quotes the token:\n%s", log)
			}
			// Both paths that once leaked have run: the rejection
			// (handleParseError) and fasthttp's connection error.
			for _, want := range []string{`msg="rejected request" status=400`, `msg="fasthttp: error when serving connection"`} {
				if !strings.Contains(log, want) {
					t.Errorf("log has no %s line:\n%s", want, log)
				}
			}
		})
	}
}

// TestFasthttpLoggerRedacts: fasthttp's own lines keep their format and the
// arguments that cannot carry request bytes (addresses, numbers), and reduce
// errors to their kind and anything else to its type.
func TestFasthttpLoggerRedacts(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	l := fasthttpLogger{log: slog.New(slog.NewTextHandler(&logs, nil)), limit: ratelog.New(0)}
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4711}
	headerErr := fmt.Errorf("error when reading request headers: %w",
		fmt.Errorf("invalid header value %q", "Bearer "+leakToken+"\r"))
	l.Printf(serveConnFormat, addr, addr, headerErr)
	l.Printf("cannot serve %q: %d of %v, %s", []byte("Bearer "+leakToken), 3, errors.New(leakToken), leakToken)
	l.Printf(serveConnFormat, addr, addr, &fasthttp.ErrSmallBuffer{})

	log := logs.String()
	if strings.Contains(log, leakToken) {
		t.Errorf("log quotes the token:\n%s", log)
	}
	for _, want := range []string{
		`msg="fasthttp: error when serving connection" local=192.0.2.1:4711 remote=192.0.2.1:4711 error_kind=other`,
		`msg="fasthttp: cannot serve %q: %d of %v, %s" arg0=[]uint8 arg1=3 arg2=other arg3=string`,
		`error_kind=headers_too_large`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %s:\n%s", want, log)
		}
	}
}

// TestReadErrorKind: fasthttp's errors are told apart by type and sentinel,
// wrapped as fasthttp wraps them.
func TestReadErrorKind(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error {
		return fmt.Errorf("error when reading request headers: %w: buffer size=12", err)
	}
	tests := []struct {
		err  error
		want string
	}{
		{fasthttp.ErrBodyTooLarge, kindBodyTooLarge},
		{&fasthttp.ErrSmallBuffer{}, kindHeadersTooLarge},
		{wrap(onlyTimeout{}), kindTimeout},
		{fasthttp.ErrBrokenChunk{}, kindBrokenChunk},
		{wrap(fasthttp.ErrMissingRequestMethod), kindBadRequestLine},
		{wrap(fasthttp.ErrorInvalidURI), kindBadRequestLine},
		{wrap(fasthttp.ErrDuplicateContentLength), kindBadFraming},
		{wrap(fmt.Errorf("cannot parse content-length: %w", fasthttp.ErrNonNumericChars)), kindBadFraming},
		{wrap(io.ErrUnexpectedEOF), kindClosed},
		{wrap(errors.New(`invalid header key "X(Bad)"`)), kindOther},
	}
	for _, tt := range tests {
		if got := readErrorKind(tt.err); got != tt.want {
			t.Errorf("readErrorKind(%T %v): got %q, want %q", tt.err, tt.err, got, tt.want)
		}
	}
}

// TestParseErrorRoutes: a request fasthttp refuses is counted under the
// route its request line named, whether fasthttp still holds the line (a
// Host that is no host: the line and headers were read) or discarded it
// (a malformed header, headers over MAX_HEADER_BYTES: the edge saw the line
// go by), and POST / is then in the latency histogram.
func TestParseErrorRoutes(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{tcp: true, server: Config{MaxHeaderBytes: 1024}})
	before := env.scrape(t)

	badHost := "POST / HTTP/1.1\r\nHost: [::1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	checkFixedError(t, parseAnswer(t, sendRaw(t, env.addr, badHost)), fasthttp.StatusBadRequest, errUnparsable.msg)
	badHostHealth := "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n"
	checkFixedError(t, parseAnswer(t, sendRaw(t, env.addr, badHostHealth)), fasthttp.StatusBadRequest, errUnparsable.msg)
	badHeader := "POST / HTTP/1.1\r\nHost: fastingest.test\r\nX(Bad): 1\r\nContent-Length: 2\r\n\r\n{}"
	checkFixedError(t, parseAnswer(t, sendRaw(t, env.addr, badHeader)), fasthttp.StatusBadRequest, errUnparsable.msg)
	tooLarge := "POST / HTTP/1.1\r\nHost: fastingest.test\r\nX-Pad: " + strings.Repeat("p", 2048) + "\r\nContent-Length: 2\r\n\r\n{}"
	resp := parseAnswer(t, sendRaw(t, env.addr, tooLarge))
	checkError(t, resp, fasthttp.StatusRequestHeaderFieldsTooLarge, "MAX_HEADER_BYTES (1024 bytes)")

	after := env.scrape(t)
	for _, c := range []struct {
		name string
		want float64
	}{
		{`fastingest_requests_total{path="/",status="400"}`, 2},
		{`fastingest_requests_total{path="/healthz",status="400"}`, 1},
		{`fastingest_requests_total{path="other",status="400"}`, 0},
		{`fastingest_requests_total{path="/",status="431"}`, 1},
		{`fastingest_requests_total{path="other",status="431"}`, 0},
		{mDuration, 3},
	} {
		if got := after.get(t, c.name) - before.get(t, c.name); got != c.want {
			t.Errorf("%s rose by %v; want %v", c.name, got, c.want)
		}
	}
	if got, want := env.srv.Stats().ClientErrors, uint64(4); got != want {
		t.Errorf("Stats().ClientErrors: got %d, want %d", got, want)
	}
}
